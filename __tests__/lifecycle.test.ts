import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { useFakeProvider } from './support/clients';

const fake = useFakeProvider();

describe('process lifecycle', () => {
  it('a script that makes calls and never calls close() exits by itself, at once', async () => {
    fake().fault({ status: 429, headers: { 'retry-after': '0' } });
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'support', 'no-close-script.ts')], {
      env: { ...process.env, FAKE_ANTHROPIC_URL: fake().anthropicBaseURL },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const exitedAt = Date.now();
    expect(code).toBe(0);
    const doneAt = Number(/done (\d+)/.exec(out)?.[1]);
    expect(doneAt).toBeGreaterThan(0);
    // No timer of ours held it: it ended right after its last call.
    expect(exitedAt - doneAt).toBeLessThan(1000);
    expect(fake().stats.requests).toBe(14);
  });
});
