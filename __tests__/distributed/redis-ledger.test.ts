import Redis from 'ioredis';
import { endClients } from '../../lib/internal/end-client';
import { RedisLedger } from '../../lib/money/redis-ledger';
import { calendarPeriod } from '../../lib/money/calendar';
import type { BudgetLine } from '../../lib/money/ledger';
import { describeWithRedis, useRedisServer } from '../support/redis';

describeWithRedis('Redis ledger (Lua scripts on a real redis-server)', () => {
  const server = useRedisServer();
  let client: Redis;
  let prefix: string;
  beforeAll(() => {
    client = new Redis(server().url);
  });
  afterAll(() => {
    return endClients([client], { quit: true });
  });
  beforeEach(() => {
    prefix = `test:{${Date.now()}-${Math.random()}}:`;
  });

  const line = (key: string, limitUsd: number, windowMs = 3_600_000, hard = true): BudgetLine => ({ key, limit: limitUsd, windowMs, hard });

  it('reserves on every budget or on none, atomically, across ledgers of different processes', async () => {
    const a = new RedisLedger(client, prefix);
    const b = new RedisLedger(client, prefix);
    const lines = [line('global', 1), line('user:alice', 0.3)];
    expect((await a.reserve('1', lines, 0.2)).ok).toBe(true);
    const refused = await b.reserve('1', lines, 0.2);
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.refusedBy.key).toBe('user:alice');
      expect(refused.state.reserved).toBeCloseTo(0.2, 12);
    }
    // The refusal reserved nothing on the global budget either.
    const [global] = await b.read([line('global', 1)]);
    expect(global!.reserved).toBeCloseTo(0.2, 12);
    a.close();
    b.close();
  });

  it('100 concurrent reservations never pass a hard limit', async () => {
    const ledgers = Array.from({ length: 4 }, () => new RedisLedger(client, prefix));
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => ledgers[i % 4]!.reserve(String(i), [line('global', 1)], 0.03)));
    expect(results.filter((r) => r.ok)).toHaveLength(33);
    const [state] = await ledgers[0]!.read([line('global', 1)]);
    expect(state!.reserved).toBeLessThanOrEqual(1);
    for (const l of ledgers) l.close();
  });

  it('settles to the actual cost once: a settle sent twice charges nothing the second time', async () => {
    const ledger = new RedisLedger(client, prefix);
    const lines = [line('global', 1)];
    await ledger.reserve('7', lines, 0.5);
    await ledger.settle('7', 0.125, lines);
    const again = await ledger.settle('7', 0.125, lines);
    expect(again[0]!.spent).toBeCloseTo(0.125, 12);
    expect(again[0]!.reserved).toBe(0);
    ledger.close();
  });

  it('charges once per call for every kind of id: the guard\'s c<n>, a realtime response\'s, one with no number; c7 and c07 are two calls', async () => {
    const ledger = new RedisLedger(client, prefix);
    const lines = [line('global', 10)];
    const ids = ['c7', 'c07', 'realtime:5f0c2a:3', 'seed-x', '0', 'c65543'];
    for (const id of ids) {
      await ledger.reserve(id, lines, 0.5);
      await ledger.settle(id, 0.25, lines);
      await ledger.settle(id, 0.25, lines); // resent: charges nothing
    }
    const [state] = await ledger.read(lines);
    expect(state!.spent).toBeCloseTo(0.25 * ids.length, 12);
    expect(state!.reserved).toBe(0);
    ledger.close();
  });

  it('two processes settling the same call number are two calls', async () => {
    const [a, b] = [new RedisLedger(client, prefix), new RedisLedger(client, prefix)];
    const lines = [line('global', 10)];
    for (const ledger of [a, b]) {
      await ledger.reserve('c1', lines, 0.5);
      await ledger.settle('c1', 0.25, lines);
    }
    const [state] = await a.read(lines);
    expect(state!.spent).toBeCloseTo(0.5, 12);
    a.close();
    b.close();
  });

  it('settled calls leave a bit each in Redis, not a key each: 3,000 calls keep under 1 KiB of markers, for 6 h', async () => {
    const ledger = new RedisLedger(client, prefix);
    const lines = [line('global', 1e6)];
    let next = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < 3000) {
          const id = `c${next++}`;
          await ledger.reserve(id, lines, 0.01);
          await ledger.settle(id, 0.004, lines);
        }
      }),
    );
    const [state] = await ledger.read(lines);
    expect(state!.spent).toBeCloseTo(12, 9);
    const markers = (await client.keys(`${prefix}settled*`)) as string[];
    expect(markers).toHaveLength(1);
    const bytes = Number(await client.call('MEMORY', 'USAGE', markers[0]!));
    expect(bytes).toBeLessThan(1024);
    const ttl = await client.pttl(markers[0]!);
    expect(ttl).toBeGreaterThan(5.9 * 3_600_000);
    expect(ttl).toBeLessThanOrEqual(6 * 3_600_000);
    ledger.close();
  });

  it("releases: nothing spent; and a crashed process's reservation expires with its TTL", async () => {
    const crashed = new RedisLedger(client, prefix, 300);
    const alive = new RedisLedger(client, prefix);
    await crashed.reserve('1', [line('global', 1)], 0.9);
    crashed.close(); // stops renewing, as a dead process would
    expect((await alive.reserve('2', [line('global', 1)], 0.5)).ok).toBe(false);
    await new Promise((r) => setTimeout(r, 400));
    expect((await alive.reserve('2', [line('global', 1)], 0.5)).ok).toBe(true);
    await alive.release('2');
    const [state] = await alive.read([line('global', 1)]);
    expect(state).toMatchObject({ spent: 0, reserved: 0 });
    alive.close();
  });

  it('keeps a live reservation past its TTL while the process renews it', async () => {
    const ledger = new RedisLedger(client, prefix, 1500);
    await ledger.reserve('1', [line('global', 1)], 0.9);
    await new Promise((r) => setTimeout(r, 2200));
    const [state] = await ledger.read([line('global', 1)]);
    expect(state!.reserved).toBeCloseTo(0.9, 12);
    ledger.close();
  });

  it('slides: a charge leaves the window after it (at most 1/60 of the window late)', async () => {
    const ledger = new RedisLedger(client, prefix);
    const lines = [line('global', 1, 1200)];
    await ledger.reserve('1', lines, 0.6);
    const [settled] = await ledger.settle('1', 0.6, lines);
    expect(settled!.spent).toBeCloseTo(0.6, 12);
    expect(settled!.nextReleaseAt).toBeGreaterThan(Date.now());
    expect((await ledger.reserve('2', lines, 0.6)).ok).toBe(false);
    await new Promise((r) => setTimeout(r, 1300));
    expect((await ledger.reserve('2', lines, 0.6)).ok).toBe(true);
    ledger.close();
  });

  it("a settle never shortens the key's life under another call's live reservation", async () => {
    const ledger = new RedisLedger(client, prefix, 5000);
    const lines = [line('global', 1, 1000)];
    await ledger.reserve('long', lines, 0.4);
    await ledger.reserve('short', lines, 0.1);
    await ledger.settle('short', 0.1, lines);
    await new Promise((r) => setTimeout(r, 1300));
    const [state] = await ledger.read(lines);
    expect(state!.reserved).toBeCloseTo(0.4, 12);
    ledger.close();
  });

  it('gives back part of an earlier charge (a batch trued up), never more than it', async () => {
    const ledger = new RedisLedger(client, prefix);
    const lines = [line('global', 1), line('user:ann', 1, 86_400_000)];
    const at = Date.now();
    await ledger.reserve('b', lines, 0.5);
    await ledger.settle('b', 0.5, lines);
    await ledger.refund(lines, 0.3, at);
    expect((await ledger.read(lines)).map((s) => s.spent)).toEqual([expect.closeTo(0.2, 12), expect.closeTo(0.2, 12)]);
    await ledger.refund(lines, 5, at);
    expect((await ledger.read(lines)).map((s) => s.spent)).toEqual([0, 0]);
    ledger.close();
  });

  it('lets idle budget keys expire from Redis', async () => {
    const ledger = new RedisLedger(client, prefix);
    const lines = [line('user:bob', 1, 1000)];
    await ledger.reserve('1', lines, 0.1);
    await ledger.settle('1', 0.1, lines);
    const ttl = await client.pttl(`${prefix}budget:user:bob`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000 + 16 + 60_000);
    ledger.close();
  });

  it('a calendar window: charges count until the UTC boundary, and the key expires after it', async () => {
    const ledger = new RedisLedger(client, prefix);
    const quota: BudgetLine = { key: 'workflow:w#tokens', unit: 'tokens', limit: 1000, windowMs: 86_400_000, calendar: 'day', hard: true };
    await ledger.reserve('q1', [quota], { usd: 0.5, tokens: 700 });
    await ledger.settle('q1', { usd: 0.1, tokens: 650 });
    const refused = await ledger.reserve('q2', [quota], { usd: 0, tokens: 400 });
    expect(refused).toMatchObject({ ok: false, amount: 400, state: { spent: 650 } });
    const midnight = calendarPeriod('day', Date.now()).end;
    expect((refused as { state: { nextReleaseAt: number } }).state.nextReleaseAt).toBe(midnight);
    const ttl = await client.pttl(`${prefix}budget:workflow:w#tokens`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(midnight - Date.now() + 60_000 + 1000); // the period, and a reservation's TTL
    expect((await ledger.reserve('q3', [quota], { usd: 0, tokens: 350 })).ok).toBe(true);
  });
});
