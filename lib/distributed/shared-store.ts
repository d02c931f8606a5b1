/**
 * The Redis connection of one guard in Distributed mode: one ioredis client (the user's, or one
 * made from `redis` / LLM_GUARD_REDIS_URL), its health, the key prefix, and the pub/sub channel
 * that shares a provider 429 pause with every process of the same guard name.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { GuardConfigError } from '../errors';
import type { GuardEmitter } from '../events';
import type { Logger } from '../logger';
import { redactUrl, redactUrls } from '../internal/redact';
import { endClients } from '../internal/end-client';
import { ReplicaPresence } from './replica-presence';

type IORedisCtor = new (url: string, options: RedisOptions) => Redis;

/**
 * A second connection like `client` (a subscriber, Bottleneck's own). ioredis' own re-subscription
 * after a reconnect sends SUBSCRIBE without handling its failure — an unhandled rejection when the
 * connection drops again at that moment (Redis restarting, the guard closing) — so it is off, and
 * `resubscribeOnReady` does it with the failure handled. A Cluster client is duplicated with its
 * own signature (startup nodes first) and keeps its own re-subscription.
 */
export function duplicateClient(client: Redis): Redis {
  if ((client as { isCluster?: boolean }).isCluster) {
    return (client as unknown as Cluster).duplicate(undefined, { enableOfflineQueue: true }) as unknown as Redis;
  }
  return client.duplicate({ enableOfflineQueue: true, autoResubscribe: false });
}

/** Subscribes `subscriber` to `channels()` each time it (re)connects, failures handled. */
export function resubscribeOnReady(subscriber: Redis, channels: () => string[]): void {
  if ((subscriber as { isCluster?: boolean }).isCluster) return;
  subscriber.on('ready', () => {
    const list = channels();
    if (list.length) subscriber.subscribe(...list).catch(() => {});
  });
}

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
  /** How long calls made before the first connection wait for it (redisConnectTimeoutMs). */
  connectTimeoutMs: number;
  /** How often this replica rewrites its entry for `guarded-llm status` (PRESENCE_MS unless a test shortens it). */
  presenceMs?: number;
}

/** The pub/sub channel (under the prefix) that shares a provider 429 pause. */
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
  /** When this store was made: calls made before the first connection wait until connectTimeoutMs after it. */
  private readonly createdAt = Date.now();
  private connectTimer: ReturnType<typeof setTimeout> | undefined;

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
    this.client.on('end', this.onEnd);
    // ioredis emits 'error' on every failed reconnect; without a listener Node would throw.
    this.client.on('error', this.onError);
    if (this.client.status === 'ready') this.onReady();
    else {
      // Process start is not an outage, but a first connection that takes too long is one.
      this.connectTimer = setTimeout(() => this.startTimedOut(), deps.connectTimeoutMs);
      this.connectTimer.unref();
    }
  }

  /** The first connection did not come up within redisConnectTimeoutMs: from now on it is an outage. */
  private startTimedOut(): void {
    if (this.closed || this.state !== 'connecting') return;
    this.lastError ??= `no answer within redisConnectTimeoutMs = ${this.deps.connectTimeoutMs} ms`;
    this.outage();
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

  /**
   * Whether the shared state can be used for a call now. Before the first connection has answered
   * (process start) this waits for it, up to redisConnectTimeoutMs after the guard was made; once
   * the connection failed or timed out, it answers false at once (the outage policy applies).
   */
  ready(): boolean | Promise<boolean> {
    if (this.healthy) return true;
    if (this.state !== 'connecting' || this.closed) return false;
    // A call that stopped waiting at the deadline finds the outage declared (its timer and the store's may fire in either order).
    return this.whenUp(Math.max(0, this.createdAt + this.deps.connectTimeoutMs - Date.now())).then((up) => {
      if (!up) this.startTimedOut();
      return up;
    });
  }

  /** Resolves when the connection is up (at once if it is), with false after `ms` or when it fails. */
  whenUp(ms: number): Promise<boolean> {
    if (this.healthy) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (up: boolean) => {
        clearTimeout(timer);
        offUp();
        offDown();
        resolve(up);
      };
      const timer = setTimeout(() => done(false), ms);
      timer.unref();
      const offUp = this.onUp(() => done(true));
      const offDown = this.onDown(() => done(false));
    });
  }

  private readonly onReady = () => {
    if (this.closed || this.state === 'up') return;
    clearTimeout(this.connectTimer);
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
    // While the first connection comes up, ioredis retries: only the connect timeout ends the wait.
    if (this.closed || this.state !== 'up') return;
    this.outage();
  };

  /** ioredis gave up reconnecting: no point waiting out the connect timeout. */
  private readonly onEnd = () => {
    if (this.closed || this.state === 'down') return;
    this.outage();
  };

  /** The connection failed (or never came up in time): callers stop waiting for it. */
  private outage(): void {
    clearTimeout(this.connectTimer);
    const wasUp = this.state === 'up';
    this.state = 'down';
    const message =
      wasUp ?
        `Redis is unreachable (${this.lastError ?? 'connection closed'}): limits and budgets are kept in this process until it is back`
      : `Redis did not answer at start (${this.lastError ?? 'connection failed'}): limits and budgets are kept in this process until it does`;
    this.deps.logger().warn({ redis: this.where }, message);
    this.deps.emitter.emit('redis', { state: 'down', redis: this.where, error: this.lastError ?? 'connection closed' });
    this.deps.emitter.emit('warning', { message, code: 'redis_down' });
    for (const fn of [...this.downListeners]) fn();
  }

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
    const subscriber = (this.subscriber = duplicateClient(this.client));
    subscriber.on('error', () => {});
    subscriber.on('message', (_channel: string, message: string) => {
      const until = Number(message);
      if (Number.isFinite(until)) this.pauseListener?.(until);
    });
    const channel = `${this.prefix}${PAUSE_CHANNEL}`;
    resubscribeOnReady(subscriber, () => [channel]);
    if ((subscriber as { isCluster?: boolean }).isCluster) subscriber.subscribe(channel).catch(() => {});
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

  private presence: ReplicaPresence | undefined;

  /**
   * Records this process's breaker state for `guarded-llm status` (breakers stay per process:
   * each replica's own connection to the provider may fail on its own), kept fresh while it lives.
   */
  publishBreaker(state: string): void {
    if (this.closed) return;
    this.presence ??= new ReplicaPresence({
      client: this.client,
      key: `${this.prefix}breakers`,
      replica: this.instanceId,
      healthy: () => this.healthy,
      failed: (error) => this.commandFailed(error),
      intervalMs: this.deps.presenceMs,
    });
    this.presence.publish(state);
  }

  /** Ends the connections this guard made; a user's own client is left open for its owner. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.connectTimer);
    this.client.off('ready', this.onReady);
    this.client.off('close', this.onClose);
    this.client.off('end', this.onEnd);
    await this.presence?.close();
    // QUIT lets pending replies arrive; without a connection there is nothing to wait for.
    await endClients([this.subscriber, this.owned ? this.client : undefined], { quit: true });
    if (!this.owned) this.client.off('error', this.onError);
  }
}
