/**
 * Each replica's entry in the guard name's `breakers` hash, for `guarded-llm status`: its
 * breaker state, since when, and when Redis last heard from it. A replica rewrites its entry
 * every PRESENCE_MS while connected and deletes it on `close()`; entries not heard from for
 * REPLICA_DROPPED_MS (a crashed or cut-off replica) are dropped by the others' next write, so the
 * list shows the fleet as it is, not every process ever started.
 */
import type { Redis } from 'ioredis';
import { redisScript, runScript } from '../internal/redis-script';

/** How often a live replica rewrites its entry. */
export const PRESENCE_MS = 60_000;
/** An entry not rewritten for this long is shown as not seen (a replica stopped, or cut off from Redis). */
export const REPLICA_LIVE_MS = 2.5 * PRESENCE_MS;
/** An entry not rewritten for this long is dropped. */
export const REPLICA_DROPPED_MS = 10 * 60_000;
/** The hash goes when no replica has written for a day. */
const BREAKERS_TTL_MS = 86_400_000;

/**
 * KEYS = the breakers hash; ARGV = this replica, its breaker state, since (ms), drop after (ms),
 * hash ttl (ms). Writes this replica's entry with Redis's clock as `seen` (replicas' clocks may
 * differ), drops the entries of replicas not seen for the drop time (an entry of an older version
 * without `seen` counts from `at`).
 */
const WRITE = redisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, me = KEYS[1], ARGV[1]
redis.call('HSET', key, me, cjson.encode({ state = ARGV[2], at = tonumber(ARGV[3]), seen = now }))
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  if all[i] ~= me then
    local ok, v = pcall(cjson.decode, all[i + 1])
    local seen = ok and type(v) == 'table' and tonumber(v.seen or v.at) or 0
    if seen < now - tonumber(ARGV[4]) then redis.call('HDEL', key, all[i]) end
  end
end
redis.call('PEXPIRE', key, tonumber(ARGV[5]))
return 1
`);

export interface PresenceDeps {
  client: Redis;
  key: string;
  replica: string;
  /** Whether Redis can be written now. */
  healthy: () => boolean;
  failed: (error: unknown) => void;
  /** PRESENCE_MS unless a test shortens it. */
  intervalMs?: number;
}

export class ReplicaPresence {
  private entry: { state: string; since: number } | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly deps: PresenceDeps) {}

  /** This replica's breaker state now (written at once, then kept fresh). */
  publish(state: string): void {
    if (this.entry?.state !== state) this.entry = { state, since: Date.now() };
    this.write();
    if (!this.timer) {
      this.timer = setInterval(() => this.write(), this.deps.intervalMs ?? PRESENCE_MS);
      this.timer.unref();
    }
  }

  private write(): void {
    const entry = this.entry;
    if (!entry || !this.deps.healthy()) return;
    const args = [this.deps.replica, entry.state, String(entry.since), String(REPLICA_DROPPED_MS), String(BREAKERS_TTL_MS)];
    runScript(this.deps.client, WRITE, [this.deps.key], args).catch((error: unknown) => this.deps.failed(error));
  }

  /** Stops the rewrites and takes this replica off the list (best effort: a crashed one is dropped later). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (!this.entry || !this.deps.healthy()) return;
    this.entry = undefined;
    await this.deps.client.hdel(this.deps.key, this.deps.replica).catch(() => {});
  }
}
