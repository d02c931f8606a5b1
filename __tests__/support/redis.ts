import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, Socket } from 'node:net';

/**
 * A real redis-server for the Distributed-mode tests: REDIS_URL when set, else one started on a
 * free port when `redis-server` is installed, else the tests are skipped with a message — unless
 * GUARDED_LLM_REQUIRE_REDIS=1 (set by .ci/run), where a missing Redis fails them.
 */
export interface RedisServer {
  url: string;
  /** Whether this run started the server (and so may kill and restart it). */
  owned: boolean;
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function findRedisServer(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const binary = findRedisServer();
export const redisAvailable = Boolean(process.env.REDIS_URL) || binary !== undefined;
const required = process.env.GUARDED_LLM_REQUIRE_REDIS === '1';

/** `describe` when Redis is available; fails when it is required and missing; else a visible skip. */
export function describeWithRedis(name: string, fn: () => void): void {
  if (redisAvailable) {
    describe(name, fn);
  } else if (required) {
    describe(name, () => {
      it('has a Redis to run against', () => {
        throw new Error('GUARDED_LLM_REQUIRE_REDIS=1 but there is no Redis: set REDIS_URL or install redis-server');
      });
    });
  } else {
    process.stderr.write(`[guarded-llm tests] SKIPPED "${name}": no Redis (set REDIS_URL or install redis-server)\n`);
    describe.skip(name, fn);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('connect', () => {
        socket.write('PING\r\n');
        socket.once('data', (d) => {
          socket.destroy();
          resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
        });
      });
      socket.once('error', () => resolve(false));
      socket.connect(port, '127.0.0.1');
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not answer on port ${port}`);
}

/** A Redis server; `args` are extra redis-server flags (e.g. `--requirepass`), for a server of our own. */
export async function startRedis(args: string[] = []): Promise<RedisServer> {
  if (!binary) {
    if (args.length) throw new Error('this test configures its own Redis: it needs redis-server installed, not REDIS_URL');
    const url = process.env.REDIS_URL!;
    const unsupported = async () => {
      throw new Error('this test kills Redis: it needs redis-server installed, not REDIS_URL');
    };
    return { url, owned: false, kill: unsupported, restart: unsupported, stop: async () => {} };
  }
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
    await waitForPort(port);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, owned: true, kill, restart: start, stop: kill };
}

/** A Redis for the enclosing describe: started before its tests, stopped after. */
export function useRedisServer(): () => RedisServer {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => server!;
}
