import { createServer } from 'node:http';
import express from 'express';
import { GuardConfigError, createAdminHandler, createGuardedClient } from '../lib';
import { anthropicFor, useFakeProvider } from './support/clients';
import { listenLocally } from './support/local-server';

const fake = useFakeProvider();
const TOKEN = 'admin-secret-0123456789abcdef';
const REDIS_PASSWORD = 'redis-pass-should-not-leak-42';

describe('createAdminHandler over real HTTP', () => {
  let server: Awaited<ReturnType<typeof listenLocally>>;
  let base: string;
  let client: ReturnType<typeof createGuardedClient>;
  beforeEach(async () => {
    // A Redis URL with a password nobody listens on: status must never show the password.
    client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', redis: `redis://app:${REDIS_PASSWORD}@127.0.0.1:1`, redisConnectTimeoutMs: 50, limits: { maxConcurrent: 10 } });
    const handler = createAdminHandler(client, { token: TOKEN, maxBodyBytes: 4096 });
    // Plain node:http, mounted under /ops/llm by the application's own routing.
    server = await listenLocally(
      createServer((req, res) => {
        if (req.url?.startsWith('/ops/llm/')) return handler(req, res);
        res.writeHead(418).end();
      }),
    );
    base = `${server.base}/ops/llm`;
  });
  afterEach(async () => {
    await server.close();
    await client.guard.close();
  });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const post = (body: string, headers: Record<string, string> = auth) => fetch(`${base}/config`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  it('GET /status answers the live status, without secrets', async () => {
    const res = await fetch(`${base}/status`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const text = await res.text();
    const status = JSON.parse(text) as { limiter: { running: number }; config: { limits: { maxConcurrent: number } } };
    expect(status.config.limits.maxConcurrent).toBe(10);
    expect(status.limiter.running).toBe(0);
    expect(text).not.toContain(REDIS_PASSWORD);
    expect(text).not.toContain('sk-ant');
  });

  it('401 without the bearer token, or with a wrong one (of any length)', async () => {
    for (const headers of [{}, { authorization: TOKEN }, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Bearer ${TOKEN.slice(0, -1)}` }]) {
      const res = await fetch(`${base}/status`, { headers: headers as Record<string, string> });
      expect(res.status).toBe(401);
      expect(await res.text()).not.toContain('maxConcurrent');
    }
    expect((await post('{"limits":{"maxConcurrent":1}}', {})).status).toBe(401);
    expect(client.guard.status().config).toMatchObject({ limits: { maxConcurrent: 10 } });
  });

  it('POST /config applies a valid patch and answers the new status', async () => {
    const res = await post(JSON.stringify({ limits: { maxConcurrent: 3 }, cost: { budgets: [{ scope: 'user', limitUsd: 2, window: '1d' }] } }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { config: { limits: { maxConcurrent: number } } }).config.limits.maxConcurrent).toBe(3);
    expect(client.guard.status().config).toMatchObject({ limits: { maxConcurrent: 3 } });
  });

  it('a bad patch changes nothing and answers 400 with the reason', async () => {
    const res = await post(JSON.stringify({ limits: { maxConcurrent: -4 } }));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/limits\.maxConcurrent/);
    const renamed = await post(JSON.stringify({ name: 'other' }));
    expect(renamed.status).toBe(400);
    expect(client.guard.status().config).toMatchObject({ limits: { maxConcurrent: 10 }, name: 'default' });
  });

  it('malformed JSON is 400; a body that is not an object is 400', async () => {
    expect((await post('{"limits": {')).status).toBe(400);
    expect((await post('[1,2]')).status).toBe(400);
    expect((await post('"text"')).status).toBe(400);
  });

  it('an oversized body is refused with 413 before it is parsed', async () => {
    const huge = JSON.stringify({ limits: { maxConcurrent: 2 }, padding: 'x'.repeat(10_000) });
    const res = await post(huge);
    expect(res.status).toBe(413);
    expect(client.guard.status().config).toMatchObject({ limits: { maxConcurrent: 10 } });
  });

  it('404 for anything else (with the token)', async () => {
    expect((await fetch(`${base}/nope`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${base}/status`, { method: 'POST', headers: auth })).status).toBe(404);
    expect((await fetch(`${base}/config`, { headers: auth })).status).toBe(404);
  });

  it('concurrent updates: each is applied whole, the last one stands', async () => {
    const values = Array.from({ length: 20 }, (_, i) => i + 1);
    const answers = await Promise.all(values.map((n) => post(JSON.stringify({ limits: { maxConcurrent: n } }))));
    expect(answers.every((r) => r.status === 200)).toBe(true);
    const final = (client.guard.status().config as { limits: { maxConcurrent: number } }).limits.maxConcurrent;
    expect(values).toContain(final);
  });

  it('a token shorter than 16 characters is refused at creation, without echoing it', () => {
    const error = (() => {
      try {
        createAdminHandler(client, { token: 'short-secret' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(GuardConfigError);
    expect((error as Error).message).toContain('12 characters');
    expect((error as Error).message).not.toContain('short-secret');
  });

  it('mounted in Express (after express.json()), where the app wants it', async () => {
    const app = express();
    app.use('/admin/guard', express.json(), createAdminHandler(client, { token: TOKEN }));
    const other = await listenLocally(app);
    const at = `${other.base}/admin/guard`;
    try {
      expect((await fetch(`${at}/status`, { headers: auth })).status).toBe(200);
      const res = await fetch(`${at}/config`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"limits":{"maxQueue":7}}' });
      expect(res.status).toBe(200);
      expect(client.guard.status().config).toMatchObject({ limits: { maxQueue: 7 } });
      expect((await fetch(`${at}/status`)).status).toBe(401);
    } finally {
      await other.close();
    }
  });
});
