/**
 * The Redis connection of one guard in Distributed mode: one ioredis client (the user's, or one
 * made from `redis` / LLM_GUARD_REDIS_URL), its health, the key prefix, and the pub/sub channel
 * that shares a provider 429 pause with every process of the same guard name.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { GuardConfigError } from '../errors';
import type { GuardEmitter } from '../events';
import type { Logger } from '../logger';
import { redactUrl, redactUrls } from '../internal/redact';


type IORedisCtor = new (url: string, options: RedisOptions) => Redis;

/** ioredis is an optional peer: only Distributed mode needs it. */
function loadIORedis(): IORedisCtor {
  try {
    const mod = require('ioredis') as { default?: IORedisCtor; Redis?: IORedisCtor } & IORedisCtor;
    return mod.Redis ?? mod.default ?? mod;
  } catch {
    throw new GuardConfigError('redis', 'a redis:// URL', 'a URL only once the optional peer "ioredis" (5 or 6) is installed: npm install ioredis');
  }
}

/**
 * Options for a client made from a URL: commands fail fast while disconnected (the guard then
 * falls back at once instead of queueing calls behind a dead connection) and reconnects go on
 * every second at most, forever. `rediss://` turns TLS on; user and password come from the URL.
 */
const CLIENT_OPTIONS: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
  commandTimeout: 2000,
  retryStrategy: (times) => Math.min(100 * times, 1000),
};

export type RedisState = 'connecting' | 'up' | 'down';

export interface SharedStoreDeps {
  redis: string | object;
  name: string;
  emitter: GuardEmitter;
  logger: () => Logger;
}

/** How long a shared pause key outlives its pause, so a late reader never sees a stale one. */
const PAUSE_CHANNEL = 'pause';

export class SharedStore {
  readonly client: Redis;
  /** Every key of this guard lives under it; the hash tag keeps them in one Redis Cluster slot. */
  readonly prefix: string;
  private readonly owned: boolean;
  private subscriber: Redis | undefined;
  private state: RedisState = 'connecting';
  private readonly upListeners = new Set<() => void>();
  private readonly downListeners = new Set<() => void>();
  private pauseListener: ((untilMs: number) => void) | undefined;
  private closed = false;
  readonly where: string;

  constructor(private readonly deps: SharedStoreDeps) {
    this.prefix = `guarded-llm:{${deps.name}}:`;
    if (typeof deps.redis === 'string') {
      const IORedis = loadIORedis();
      this.client = new IORedis(deps.redis, CLIENT_OPTIONS);
      this.owned = true;
      this.where = redactUrl(deps.redis);
    } else {
      this.client = deps.redis as Redis;
      this.owned = false;
      this.where = '[client]';
    }
    this.client.on('ready', this.onReady);
    this.client.on('close', this.onClose);
    this.client.on('end', this.onClose);
    // ioredis emits 'error' on every failed reconnect; without a listener Node would throw.
    this.client.on('error', this.onError);
    if (this.client.status === 'ready') this.onReady();
  }

  get healthy(): boolean {
    return this.state === 'up' && this.client.status === 'ready';
  }

  get status(): RedisState {
    return this.state;
  }

  /** Runs `fn` each time the connection comes (back) up; returns a disposer. */
  onUp(fn: () => void): () => void {
    this.upListeners.add(fn);
    return () => this.upListeners.delete(fn);
  }

  onDown(fn: () => void): () => void {
    this.downListeners.add(fn);
    return () => this.downListeners.delete(fn);
  }

  /** Resolves when the connection is up (at once if it is), or after `ms` with false. */
  whenUp(ms: number): Promise<boolean> {
    if (this.healthy) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(false);
      }, ms);
      timer.unref();
      const off = this.onUp(() => {
        clearTimeout(timer);
        off();
        resolve(true);
      });
    });
  }

  private readonly onReady = () => {
    if (this.closed || this.state === 'up') return;
    const wasDown = this.state === 'down';
    this.state = 'up';
    if (wasDown) {
      this.deps.logger().warn({ redis: this.where }, 'Redis is back: shared limits and budgets are in use again');
      this.deps.emitter.emit('redis', { state: 'up', redis: this.where });
    }
    for (const fn of [...this.upListeners]) fn();
    void this.readPause();
  };

  private lastError: string | undefined;
  private readonly onError = (error: Error) => {
    this.lastError = redactUrls(error.message);
  };

  private readonly onClose = () => {
    if (this.closed || this.state === 'down') return;
    const wasUp = this.state === 'up';
    this.state = 'down';
    if (!wasUp) return;
    const message = `Redis is unreachable (${this.lastError ?? 'connection closed'}): limits and budgets are kept in this process until it is back`;
    this.deps.logger().warn({ redis: this.where }, message);
    this.deps.emitter.emit('redis', { state: 'down', redis: this.where, error: this.lastError ?? 'connection closed' });
    this.deps.emitter.emit('warning', { message, code: 'redis_down' });
    for (const fn of [...this.downListeners]) fn();
  };

  /** Marks the connection down after a command failed on it (a timeout says more than its status). */
  commandFailed(error: unknown): void {
    this.lastError = redactUrls(error instanceof Error ? error.message : String(error));
    if (this.client.status !== 'ready') this.onClose();
  }

  /**
   * Shares a provider 429 pause: every process of this guard name stops dispatching until
   * `untilMs`. Kept in a key too, so a process that connects during the pause honours it.
   */
  async publishPause(untilMs: number): Promise<void> {
    if (!this.healthy) return;
    const ms = Math.ceil(untilMs - Date.now());
    if (ms <= 0) return;
    try {
      await this.client.set(`${this.prefix}pause`, String(untilMs), 'PX', ms);
      await this.client.publish(`${this.prefix}${PAUSE_CHANNEL}`, String(untilMs));
    } catch (error) {
      this.commandFailed(error);
    }
  }

  /** Listens for pauses published by other processes (the subscriber is a second connection). */
  onPause(listener: (untilMs: number) => void): void {
    this.pauseListener = listener;
    if (this.subscriber) return;
    // A subscriber queues while disconnected: ioredis re-subscribes on reconnect, and without an
    // offline queue that re-subscription is an unhandled rejection.
    const subscriber = (this.subscriber = this.client.duplicate({ enableOfflineQueue: true }));
    subscriber.on('error', () => {});
    subscriber.on('message', (_channel: string, message: string) => {
      const until = Number(message);
      if (Number.isFinite(until)) this.pauseListener?.(until);
    });
    subscriber.subscribe(`${this.prefix}${PAUSE_CHANNEL}`).catch(() => {});
    void this.readPause();
  }

  private async readPause(): Promise<void> {
    if (!this.pauseListener || !this.healthy) return;
    try {
      const until = Number(await this.client.get(`${this.prefix}pause`));
      if (until > Date.now()) this.pauseListener(until);
    } catch (error) {
      this.commandFailed(error);
    }
  }

  /** This process's id among the replicas (for the breaker states the CLI shows). */
  readonly instanceId = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  /**
   * Records this process's breaker state for `guarded-llm status` (breakers stay per process:
   * each replica's own connection to the provider may fail on its own).
   */
  publishBreaker(state: string): void {
    if (!this.healthy) return;
    const key = `${this.prefix}breakers`;
    this.client
      .multi()
      .hset(key, this.instanceId, JSON.stringify({ state, at: Date.now() }))
      .pexpire(key, 86_400_000)
      .exec()
      .catch((error: unknown) => this.commandFailed(error));
  }

  /** Ends the connections this guard made; a user's own client is left open for its owner. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.off('ready', this.onReady);
    this.client.off('close', this.onClose);
    this.client.off('end', this.onClose);
    this.subscriber?.disconnect();
    if (this.owned) {
      // QUIT lets pending replies arrive; without a connection there is nothing to wait for.
      if (this.client.status !== 'ready') this.client.disconnect();
      else await this.client.quit().catch(() => this.client.disconnect());
    } else {
      this.client.off('error', this.onError);
    }
  }
}
