// Collected only by the compat pass (GUARDED_LLM_NEWEST=1, Node 22: see jest.config.js), as the AI SDK 7 needs Node 22.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

interface Checked {
  jsonText: number;
  streamText: number;
  charges: number;
  charged: number;
  billed: number;
  endpoints: string[];
  running: number;
}

test('the Vercel AI SDK 7 on createGuardedFetch: JSON and streams charged exactly what the provider billed; a budget refusal sends nothing', () => {
  // A plain Node ESM program, as users run the AI SDK 7 (ESM only).
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(__dirname, 'ai-sdk-7.mts')], { encoding: 'utf8', timeout: 60_000 });
  const report = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, Checked> & { refused: { guardError: boolean; status: number; requests: number } };
  const expected: Record<string, string> = { 'openai responses': 'responses', 'openai chat': 'chat', anthropic: 'messages' };
  for (const [name, endpoint] of Object.entries(expected)) {
    const r = report[name]!;
    expect(r.jsonText).toBeGreaterThan(0);
    expect(r.streamText).toBe(r.jsonText);
    expect(r.endpoints).toEqual([endpoint, endpoint]);
    expect(r.charges).toBe(2);
    expect(r.charged).toBeGreaterThan(0);
    expect(r.charged).toBeCloseTo(r.billed, 12);
    expect(r.running).toBe(0);
  }
  expect(report.refused).toEqual({ guardError: true, status: 402, requests: 0 });
});
