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

export async function freePort(): Promise<number> {
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
export async function startRedis(args: string[] = [], at?: { port: number }): Promise<RedisServer> {
  if (!binary) {
    if (args.length) throw new Error('this test configures its own Redis: it needs redis-server installed, not REDIS_URL');
    const url = process.env.REDIS_URL!;
    const unsupported = async () => {
      throw new Error('this test kills Redis: it needs redis-server installed, not REDIS_URL');
    };
    return { url, owned: false, kill: unsupported, restart: unsupported, stop: async () => {} };
  }
  const port = at?.port ?? (await freePort());
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

export interface RedisCluster {
  nodes: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/**
 * A real 3-node Redis Cluster (masters only): redis-server processes with `cluster-enabled yes`
 * in a temporary directory each, joined with `redis-cli --cluster create`, stopped after.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  if (!binary) throw new Error('a Redis Cluster test needs redis-server and redis-cli installed');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'guarded-llm-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      ports.push(port);
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir];
      children.push(spawn(binary, args, { stdio: 'ignore' }));
      await waitForPort(port);
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore', timeout: 20_000 });
    // Every node must agree that all slots are served before a client is pointed at it.
    const deadline = Date.now() + 10_000;
    while (!ports.every((p) => /cluster_state:ok/.test(execFileSync('redis-cli', ['-p', String(p), 'cluster', 'info'], { encoding: 'utf8' })))) {
      if (Date.now() > deadline) throw new Error('the Redis Cluster did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop };
}
