import { GuardConfigError, createGuardedClient } from '../lib';
import { createApp, guardFor } from '../examples/tiers';
import { ANTHROPIC_KEY, CLAUDE, anthropicFor, hello, useFakeProvider } from './support/clients';
import { listenLocally } from './support/local-server';

const fake = useFakeProvider();
const ADMIN = 'test-admin-token-abcdefgh';

describe('tiers: free vs pro users through one guard in one Express app (examples/tiers.ts)', () => {
  let server: Awaited<ReturnType<typeof listenLocally>>;
  let base: string;
  let anthropic: ReturnType<typeof guardFor>;
  beforeEach(async () => {
    anthropic = guardFor({ apiKey: ANTHROPIC_KEY, baseURL: fake().anthropicBaseURL });
    server = await listenLocally(createApp(anthropic, ADMIN));
    base = server.base;
  });
  afterEach(async () => {
    await server.close();
    await anthropic.guard.close();
  });
  const chat = (user: string, plan?: string) =>
    fetch(`${base}/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': user, ...(plan ? { 'x-plan': plan } : {}) }, body: '{"prompt":"Hello"}' });

  it('a free user gets 2 a minute, then 429 with a Retry-After; a pro user gets 10', async () => {
    const free = [];
    for (let i = 0; i < 4; i++) free.push(await chat('fiona', 'free'));
    expect(free.map((r) => r.status)).toEqual([200, 200, 429, 429]);
    expect(Number(free[2]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(29);
    expect(free[2]!.headers.get('x-ratelimit-limit')).toBe('2');
    const pro = [];
    for (let i = 0; i < 11; i++) pro.push((await chat('paul', 'pro')).status);
    expect(pro).toEqual([...Array(10).fill(200), 429]);
    expect(fake().stats.requests).toBe(12);
  });

  it('a call whose scope names no tier runs in defaultTier (free)', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await chat('nora')).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('an unknown tier is refused before anything is sent, naming it and the tiers that exist (400)', async () => {
    const res = await chat('mallory', 'platinum');
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toContain('"platinum"');
    expect(body.error.message).toContain('free, pro');
    expect(fake().stats.requests).toBe(0);
  });

  it("a tier's quota replaces the top-level one: free users' 2,000 tokens a day, pro users' 50,000", async () => {
    await chat('fiona', 'free');
    await chat('paul', 'pro');
    const rows = anthropic.guard.status().budgets.filter((b) => b.unit === 'tokens');
    expect(rows.find((b) => b.key === 'user:fiona')).toMatchObject({ limitTokens: 2000, window: 'calendar-day' });
    expect(rows.find((b) => b.key === 'user:paul')).toMatchObject({ limitTokens: 50_000 });
    // The global budget applies to every tier.
    expect(anthropic.guard.status().budgets.find((b) => b.key === 'global')!.spentUsd).toBeCloseTo(fake().stats.billed.usd, 12);
  });

  it("updateConfig changes a tier's limits live (through the admin endpoint)", async () => {
    for (let i = 0; i < 3; i++) await chat('fiona', 'free');
    expect((await chat('fiona', 'free')).status).toBe(429);
    const update = await fetch(`${base}/admin/llm/config`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tiers: { free: { perScope: { user: { requestsPerMinute: 5 } } } } }),
    });
    expect(update.status).toBe(200);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await chat('fiona', 'free')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });
});

describe('tiers: configuration', () => {
  it('defaultTier must name a tier; a tier may not set the global budget', () => {
    expect(() => createGuardedClient(anthropicFor(fake()), { tiers: { free: {} }, defaultTier: 'gold' })).toThrow(/defaultTier.*one of the tiers: free/);
    expect(() => createGuardedClient(anthropicFor(fake()), { tiers: { free: { budgets: [{ scope: 'global', limitUsd: 1 }] } } })).toThrow(GuardConfigError);
    expect(() => createGuardedClient(anthropicFor(fake()), { tiers: { free: { perScope: { planet: {} } as never } } })).toThrow(/tiers\.free\.perScope\.planet/);
  });

  it('a tier on a client with no tiers is refused, saying there are none', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent' });
    await expect(client.guard.withScope({ tier: 'pro' }).messages.create({ model: CLAUDE, max_tokens: 8, messages: hello })).rejects.toThrow(/none is defined/);
    expect(fake().stats.requests).toBe(0);
  });
});
