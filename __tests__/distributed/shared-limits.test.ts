import Bottleneck from 'bottleneck';
import Redis, { Cluster } from 'ioredis';
import { endClients } from '../../lib/internal/end-client';
import { createGuardedClient, SharedStateUnavailableError, type GuardEventMap } from '../../lib';
import { SharedBucket, sharedConnection } from '../../lib/distributed/shared-bucket';
import { configuredPlan } from '../../lib/limiter/bucket';
import { ANTHROPIC_KEY, anthropicFor, CLAUDE, hello, useFakeProvider } from '../support/clients';
import { describeWithRedis, freePort, startRedis, startRedisCluster, useRedisServer, type RedisCluster } from '../support/redis';
import { runReplicas } from '../support/replicas';
import { steadyRate } from '../support/arrivals';

jest.setTimeout(30_000);

/** Guards made by a test are closed after it, pass or fail: an open Redis connection would keep jest alive. */
const made: Array<{ guard: { close(): Promise<void> } }> = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((c) => c.guard.close()));
});
function track<T extends { guard: { close(): Promise<void> } }>(client: T): T {
  made.push(client);
  return client;
}

const call = (client: { messages: { create: ReturnType<typeof anthropicFor>['messages']['create'] } }) => client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello });

const until = async (check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describeWithRedis('shared limits through Redis', () => {
  const fake = useFakeProvider();
  const server = useRedisServer();
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis(server().url);
  });
  afterAll(() => {
    return endClients([admin], { quit: true });
  });

  const guarded = (name: string, options: Parameters<typeof createGuardedClient>[1] = {}) =>
    track(createGuardedClient(anthropicFor(fake()), { name, redis: server().url, ...options }));

  it("recovers when its Redis keys vanish (Bottleneck's Redis-7 bug, fixed on our connection)", async () => {
    const id = `guarded-llm:{vanish-${Date.now()}}:requests`;
    const connection = sharedConnection(admin);
    const bucket = new SharedBucket('requests', configuredPlan(6000), connection, id);
    await expect(bucket.take(1)).resolves.toBe(1);
    await admin.flushall();
    await expect(bucket.take(1)).resolves.toBe(1);
    expect(await admin.exists(`b_${id}_settings`)).toBe(1);
    await bucket.close();
    await Promise.resolve(connection.disconnect(false));
  });

  it('the stock Bottleneck on this Redis really has the bug the fix is for (Redis 7+)', async () => {
    const major = Number(/redis_version:(\d+)/.exec(await admin.info('server'))![1]);
    const raw = new Bottleneck({ datastore: 'ioredis', clientOptions: { host: '127.0.0.1', port: Number(new URL(server().url).port) }, id: `raw-${Date.now()}` });
    raw.on('error', () => {});
    await raw.schedule(() => Promise.resolve());
    await admin.flushall();
    const again = raw.schedule(() => Promise.resolve());
    if (major >= 7) await expect(again).rejects.toThrow(/SETTINGS_KEY_NOT_FOUND/);
    else await expect(again).resolves.toBeUndefined();
    await raw.disconnect(false);
  });

  it('keeps enforcing the shared rate after its keys are deleted mid-run', async () => {
    fake().configure({ limits: { requestsPerMinute: 600 } });
    const name = `midrun-${Date.now()}`;
    const a = guarded(name, { limits: { requestsPerMinute: 600 } });
    const b = guarded(name, { limits: { requestsPerMinute: 600 } });
    const calls = Array.from({ length: 40 }, (_, i) => call(i % 2 ? a : b));
    await until(() => fake().stats.requests >= 15);
    await admin.flushall();
    await Promise.all(calls);
    expect(fake().stats.byStatus[429]).toBeUndefined();
    // Two guards on local limits alone would go at twice the rate.
    const arrivals = fake().stats.arrivals;
    const steady = arrivals.filter((t) => t >= arrivals[0]! + 1000);
    expect((steady.length - 1) / ((steady[steady.length - 1]! - steady[0]!) / 1000)).toBeLessThanOrEqual(10.5);
    await Promise.all([a.guard.close(), b.guard.close()]);
  });

  it('a 429 seen by one process pauses the others until its Retry-After', async () => {
    const name = `pause-${Date.now()}`;
    const a = guarded(name, { limits: { requestsPerMinute: 6000 } });
    const b = guarded(name, { limits: { requestsPerMinute: 6000 } });
    await until(() => a.guard.status().shared?.redis === 'up' && b.guard.status().shared?.redis === 'up');
    const seen: Array<GuardEventMap['rate-limited']> = [];
    b.guard.on('rate-limited', (e) => seen.push(e));
    fake().fault({ status: 429, headers: { 'retry-after': '1' } });
    const first = call(a);
    await until(() => fake().stats.byStatus[429] === 1);
    const limitedAt = fake().stats.arrivals[0]!;
    await until(() => b.guard.status().limiter.paused, 1000);
    await call(b);
    await first;
    const bArrival = fake().records.filter((r) => r.status === 200).map((r) => r.at).sort((x, y) => x - y)[0]!;
    expect(bArrival - limitedAt).toBeGreaterThanOrEqual(900);
    expect(seen.some((e) => e.source === 'provider' && /another process/.test(e.reason ?? ''))).toBe(true);
    await Promise.all([a.guard.close(), b.guard.close()]);
  });

  it('connects as an ACL user with a password from the URL, and never shows the password', async () => {
    const secured = await startRedis(['--user', 'default', 'off', '--user', 'app', 'on', '>acl-pass-71', '~*', '&*', '+@all']);
    try {
      const url = secured.url.replace('redis://', 'redis://app:acl-pass-71@');
      const name = `acl-${Date.now()}`;
      const client = track(createGuardedClient(anthropicFor(fake()), { name, redis: url, cost: { budgets: [{ scope: 'global', limitUsd: 1, window: '1h' }] } }));
      await call(client);
      await until(() => (client.guard.status().budgets[0]?.spentUsd ?? 0) > 0);
      const check = new Redis(url);
      expect(await check.exists(`guarded-llm:{${name}}:budget:global`)).toBe(1);
      await endClients([check], { quit: true });
      expect(JSON.stringify(client.guard.status())).not.toContain('acl-pass-71');
      await client.guard.close();
    } finally {
      await secured.stop();
    }
  });

  it('shows a Redis URL without its password', async () => {
    const client = track(createGuardedClient(anthropicFor(fake()), { redis: 'redis://app:hunter2@127.0.0.1:1', logLevel: 'silent' }));
    const status = JSON.stringify(client.guard.status());
    expect(status).not.toContain('hunter2');
    expect(status).toContain('redis://***@127.0.0.1:1');
    await client.guard.close();
  });
});

describeWithRedis('when Redis goes away', () => {
  const fake = useFakeProvider();
  const server = useRedisServer();

  it("carries on in process, then replays the outage's charges into Redis once when it is back", async () => {
    const name = `outage-${Date.now()}`;
    const client = track(createGuardedClient(anthropicFor(fake()), {
      name,
      redis: server().url,
      logLevel: 'silent',
      limits: { requestsPerMinute: 6000 },
      cost: { budgets: [{ scope: 'global', limitUsd: 1, window: '1h' }] },
    }));
    const states: string[] = [];
    client.guard.on('redis', (e) => states.push(e.state));
    let outageCost = 0;
    let inOutage = false;
    client.guard.on('cost', (e) => {
      if (inOutage) outageCost += e.usd;
    });
    await until(() => client.guard.status().shared?.redis === 'up');
    await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello });
    await until(() => (client.guard.status().budgets[0]?.spentUsd ?? 0) > 0); // settled in Redis

    await server().kill();
    await until(() => client.guard.status().shared?.redis === 'down');
    inOutage = true;
    for (let i = 0; i < 5; i++) await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello });
    inOutage = false;
    expect(fake().stats.requests).toBe(6);
    expect(client.guard.status().shared?.unsyncedCharges).toBe(5);
    expect(client.guard.status().budgets[0]!.spentUsd).toBeGreaterThanOrEqual(outageCost);

    await server().restart();
    await until(() => client.guard.status().shared?.redis === 'up' && client.guard.status().shared?.unsyncedCharges === 0, 10_000);
    expect(states).toEqual(['down', 'up']);
    // The restarted (empty) Redis now holds exactly the outage's charges: each once.
    const check = new Redis(server().url);
    const fields = await check.hgetall(`guarded-llm:{${name}}:budget:global`);
    await endClients([check], { quit: true });
    const spent = Object.entries(fields).filter(([f]) => f.startsWith('s:')).reduce((n, [, v]) => n + Number(v), 0);
    expect(spent).toBeCloseTo(outageCost, 12);
    await client.guard.close();
  });

  it("a long outage's charges replay as one command per set of budgets, not one per call: Redis then holds each user's exact cost", async () => {
    const name = `long-outage-${Date.now()}`;
    const client = track(createGuardedClient(anthropicFor(fake()), {
      name,
      redis: server().url,
      logLevel: 'silent',
      cost: { budgets: [{ scope: 'global', limitUsd: 50, window: '1h' }, { scope: 'user', limitUsd: 20, window: '1d' }] },
    }));
    await until(() => client.guard.status().shared?.redis === 'up');
    await server().kill();
    await until(() => client.guard.status().shared?.redis === 'down');
    const cost: Record<string, number> = { alice: 0, bob: 0 };
    client.guard.on('cost', (e) => (cost[e.scope.user!] = (cost[e.scope.user!] ?? 0) + e.usd));
    for (let i = 0; i < 120; i++) await client.guard.withScope({ user: i % 2 ? 'alice' : 'bob' }).messages.create({ model: CLAUDE, max_tokens: 32, messages: hello });
    expect(client.guard.status().shared?.unsyncedCharges).toBe(120);

    await server().restart(); // a fresh server: its command counts start at 0
    await until(() => client.guard.status().shared?.redis === 'up' && client.guard.status().shared?.unsyncedCharges === 0, 10_000);
    const check = new Redis(server().url);
    const spent = async (key: string) => Object.entries(await check.hgetall(`guarded-llm:{${name}}:budget:${key}`)).filter(([f]) => f.startsWith('s:')).reduce((n, [, v]) => n + Number(v), 0);
    expect(await spent('user:alice')).toBeCloseTo(cost.alice!, 12);
    expect(await spent('user:bob')).toBeCloseTo(cost.bob!, 12);
    expect(await spent('global')).toBeCloseTo(cost.alice! + cost.bob!, 12);
    const scripts = /cmdstat_evalsha:calls=(\d+)/.exec(await check.info('commandstats'))?.[1];
    expect(Number(scripts)).toBeLessThanOrEqual(4); // the two users' replays, and this replica's entry for `status`
    await endClients([check], { quit: true });
    await client.guard.close();
  });

  it('while Redis is down, each replica enforces its share of the rate limit, and all of it again after', async () => {
    const name = `share-${Date.now()}`;
    const options = { name, redis: server().url, logLevel: 'silent' as const, limits: { requestsPerMinute: 1200, maxConcurrent: 50 } };
    const a = track(createGuardedClient(anthropicFor(fake()), options));
    const b = track(createGuardedClient(anthropicFor(fake()), options));
    await until(() => a.guard.status().shared?.redis === 'up' && b.guard.status().shared?.redis === 'up');
    for (let i = 0; i < 3; i++) await Promise.all([a, b].map((c) => c.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello })));
    await new Promise((r) => setTimeout(r, 100)); // the replica count is read in the background
    const warnings: string[] = [];
    a.guard.on('warning', (w) => warnings.push(w.code));
    await server().kill();
    await until(() => a.guard.status().shared?.redis === 'down');
    fake().reset();
    await Promise.all(Array.from({ length: 30 }, () => a.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello })));
    const arrivals = fake().stats.arrivals;
    const steady = arrivals.filter((t) => t >= arrivals[0]! + 1000);
    // Half of 20/s (two replicas were active), where the whole limit would be 19.6/s.
    expect((steady.length - 1) / ((steady[steady.length - 1]! - steady[0]!) / 1000)).toBeLessThan(11);
    expect(warnings).toContain('redis_down_local_share');
    await server().restart();
    await until(() => a.guard.status().shared?.redis === 'up', 10_000);
  });

  it("with redisFailure 'reject', refuses calls while Redis is down and sends nothing", async () => {
    const client = track(createGuardedClient(anthropicFor(fake()), { name: `reject-${Date.now()}`, redis: server().url, redisFailure: 'reject', logLevel: 'silent', limits: { requestsPerMinute: 6000 } }));
    await until(() => client.guard.status().shared?.redis === 'up');
    await server().kill();
    await until(() => client.guard.status().shared?.redis === 'down');
    const error = await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SharedStateUnavailableError);
    expect((error as SharedStateUnavailableError).httpStatus).toBe(503);
    expect(fake().stats.requests).toBe(0);
    await server().restart();
    await until(() => client.guard.status().shared?.redis === 'up', 10_000);
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello })).resolves.toBeDefined();
    await client.guard.close();
  });
});

describeWithRedis('when the guard starts before Redis answers (process start is not an outage)', () => {
  const fake = useFakeProvider();

  it('a call made at once waits for the first connection, and its reservation and charge go to Redis', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const name = `late-${Date.now()}`;
    // Redis comes up 600 ms after the guard was made (a sidecar that starts late).
    const client = track(createGuardedClient(anthropicFor(fake()), { name, redis: url, logLevel: 'silent', limits: { requestsPerMinute: 6000 }, cost: { budgets: [{ scope: 'global', limitUsd: 1, window: '1h' }] } }));
    const events: string[] = [];
    client.guard.on('redis', (e) => events.push(e.state));
    const started = Date.now();
    const late = new Promise<Awaited<ReturnType<typeof startRedis>>>((resolve) => setTimeout(() => resolve(startRedis([], { port })), 600));
    try {
      await call(client);
      expect(Date.now() - started).toBeGreaterThanOrEqual(550);
      expect(events).toEqual([]); // no outage was declared
      expect(client.guard.status().shared?.unsyncedCharges).toBe(0);
      const check = new Redis(url);
      const fields = await check.hgetall(`guarded-llm:{${name}}:budget:global`);
      await endClients([check], { quit: true });
      const spent = Object.entries(fields).filter(([f]) => f.startsWith('s:')).reduce((n, [, v]) => n + Number(v), 0);
      expect(spent).toBeCloseTo(fake().stats.billed.usd, 12);
    } finally {
      await client.guard.close();
      await (await late).stop();
    }
  });

  it('a Redis that never answers is an outage after redisConnectTimeoutMs: local limits, one warning', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const client = track(createGuardedClient(anthropicFor(fake()), { redis: url, redisConnectTimeoutMs: 400, logLevel: 'silent', cost: { budgets: [{ scope: 'global', limitUsd: 1, window: '1h' }] } }));
    const warnings: string[] = [];
    client.guard.on('warning', (w) => warnings.push(w.code));
    const started = Date.now();
    await call(client);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(fake().stats.requests).toBe(1);
    expect(client.guard.status().shared?.redis).toBe('down');
    expect(warnings).toEqual(['redis_down']);
    // Later calls do not wait again.
    const again = Date.now();
    await call(client);
    expect(Date.now() - again).toBeLessThan(300);
  });

  it("with redisFailure 'reject', a Redis that never answers refuses after redisConnectTimeoutMs and sends nothing", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const client = track(createGuardedClient(anthropicFor(fake()), { redis: url, redisConnectTimeoutMs: 300, redisFailure: 'reject', logLevel: 'silent' }));
    const error = await call(client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SharedStateUnavailableError);
    expect(fake().stats.requests).toBe(0);
  });
});

describeWithRedis('Distributed mode on a real 3-node Redis Cluster (ioredis Cluster client)', () => {
  const fake = useFakeProvider();
  let cluster: RedisCluster | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('three replicas share one rate and one hard budget through the cluster', async () => {
    fake().configure({ limits: { requestsPerMinute: 1920 } });
    const budget = 0.03;
    const results = await runReplicas(3, {
      baseURL: fake().anthropicBaseURL,
      apiKey: ANTHROPIC_KEY,
      clusterNodes: cluster!.nodes,
      options: { name: `cluster-${Date.now()}`, limits: { requestsPerMinute: 1800, maxConcurrent: 20 }, cost: { budgets: [{ scope: 'global', limitUsd: budget, window: '1h' }] } },
      calls: 60,
      concurrency: 20,
      model: CLAUDE,
      maxTokens: 32,
    });
    const ok = results.reduce((n, r) => n + r.ok, 0);
    expect(ok + results.reduce((n, r) => n + (r.errors.BudgetExceededError ?? 0), 0)).toBe(180);
    expect(ok).toBeGreaterThan(90);
    expect(fake().stats.byStatus[429]).toBeUndefined();
    expect(fake().stats.billed.usd).toBeLessThanOrEqual(budget);
    expect(results.reduce((n, r) => n + r.costUsd, 0)).toBeCloseTo(fake().stats.billed.usd, 9);
    const rate = steadyRate(fake().stats.arrivals, 1000);
    expect(rate).toBeLessThanOrEqual(30 * 1.05);
    expect(rate).toBeGreaterThanOrEqual(30 * 0.9);
  });

  it('a 429 seen by one process pauses the others through the cluster', async () => {
    const name = `cluster-pause-${Date.now()}`;
    const nodes = cluster!.nodes;
    const clients = [new Cluster(nodes), new Cluster(nodes)];
    try {
      const [a, b] = clients.map((redis) => createGuardedClient(anthropicFor(fake()), { name, redis, limits: { requestsPerMinute: 6000 } }));
      fake().fault({ status: 429, headers: { 'retry-after': '1' } });
      await call(a!); // the 429, then its retry a second later
      const limitedAt = fake().stats.arrivals[0]!;
      await until(() => b!.guard.status().limiter.paused, 2000).catch(() => {});
      await call(b!);
      const served = fake().records.filter((r) => r.status === 200).map((r) => r.at);
      expect(Math.min(...served) - limitedAt).toBeGreaterThanOrEqual(900);
      await Promise.all([a!.guard.close(), b!.guard.close()]);
    } finally {
      await endClients(clients as unknown as Redis[], { quit: true });
    }
  });
});
