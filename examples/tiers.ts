/**
 * Free and pro users in one web app: the user's plan (a claim of their token; here a header)
 * picks their tier — its per-user rate and daily token quota — and an admin endpoint reads the
 * live status and changes limits without a restart.
 */
import type { Server } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import express, { type ErrorRequestHandler } from 'express';
import { createAdminHandler, createGuardedClient, guardErrorToHttp, runWithScope, type Guarded } from 'guarded-llm';
import { target } from './_provider';

/** The guard: free users 2 calls a minute and 2,000 tokens a day, pro users 10 a minute and 50,000; $20/h for everyone. */
export function guardFor(clientOptions: ConstructorParameters<typeof Anthropic>[0]): Guarded<Anthropic> {
  return createGuardedClient(new Anthropic(clientOptions), {
    limits: { maxWaitMs: 1000 }, // over a user's rate: refused (429 + Retry-After) rather than held
    cost: { budgets: [{ scope: 'global', limitUsd: 20, window: '1h' }] },
    tiers: {
      free: { perScope: { user: { requestsPerMinute: 2 } }, budgets: [{ scope: 'user', limitTokens: 2_000, window: 'calendar-day' }] },
      pro: { perScope: { user: { requestsPerMinute: 10 } }, budgets: [{ scope: 'user', limitTokens: 50_000, window: 'calendar-day' }] },
    },
    defaultTier: 'free',
  });
}

/** POST /chat { prompt } as the user of `x-user-id` on the plan of `x-plan`; the admin API under /admin/llm. */
export function createApp(anthropic: Guarded<Anthropic>, adminToken: string): express.Express {
  const app = express();
  // Admin first, with its own bearer token (and before the user middleware).
  app.use('/admin/llm', express.json(), createAdminHandler(anthropic, { token: adminToken }));
  app.use(express.json());
  app.use((req, res, next) => {
    const user = req.header('x-user-id');
    if (!user) return void res.status(401).json({ error: { type: 'unauthenticated', message: 'Send x-user-id.' } });
    // In a real app: the plan is a claim of the verified JWT. An unknown plan is refused by the guard.
    const tier = req.header('x-plan') ?? undefined;
    runWithScope({ user, ...(tier ? { tier } : {}) }, next);
  });
  app.post('/chat', async (req, res) => {
    const message = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 200, messages: [{ role: 'user', content: String(req.body?.prompt ?? '') }] });
    res.json({ text: message.content.map((b) => (b.type === 'text' ? b.text : '')).join(''), usage: message.usage });
  });
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    const answer = guardErrorToHttp(err);
    res.status(answer.status).set(answer.headers).json(answer.body);
  };
  app.use(onError);
  return app;
}

export async function main(): Promise<void> {
  const where = await target('anthropic');
  const anthropic = guardFor(where.clientOptions);
  const adminToken = 'example-admin-token-0123456789';
  const server: Server = await new Promise((resolve) => {
    const s = createApp(anthropic, adminToken).listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const chat = (user: string, plan?: string) =>
    fetch(`${base}/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': user, ...(plan ? { 'x-plan': plan } : {}) }, body: '{"prompt":"Hello"}' });
  for (const [user, plan] of [['fiona', 'free'], ['paul', 'pro']] as const) {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await chat(user, plan)).status);
    console.log(`${user} (${plan}): ${statuses.join(' ')}`);
  }
  console.log(`an unknown plan: ${(await chat('mallory', 'platinum')).status}`);

  const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
  const status = (await (await fetch(`${base}/admin/llm/status`, { headers: admin })).json()) as { budgets: Array<{ key: string; unit: string; spentTokens?: number; limitTokens?: number }> };
  for (const b of status.budgets.filter((b) => b.unit === 'tokens')) console.log(`admin: quota ${b.key} ${b.spentTokens}/${b.limitTokens} tokens today`);
  // Free users get 5 a minute from now on, without a restart.
  const update = await fetch(`${base}/admin/llm/config`, { method: 'POST', headers: admin, body: JSON.stringify({ tiers: { free: { perScope: { user: { requestsPerMinute: 5 } } } } }) });
  console.log(`admin: POST /config → ${update.status}; fiona (free, now 5 a minute): ${(await chat('fiona', 'free')).status}`);
  console.log(`admin without the token: ${(await fetch(`${base}/admin/llm/status`)).status}`);
  server.close();
  await anthropic.guard.close();
  await where.close();
}

if (require.main === module) void main();
