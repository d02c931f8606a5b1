/**
 * A web backend with per-user limits and budgets: each request runs in its user's scope, and
 * whatever the guard refuses becomes a proper HTTP answer (429 with Retry-After, 402, 503).
 */
import type { Server } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import express, { type ErrorRequestHandler } from 'express';
import { createGuardedClient, guardErrorToHttp, runWithScope, type Guarded } from 'guarded-llm';
import { target } from './_provider';

/** The app: POST /chat { prompt } as the user named by the `x-user-id` header. */
export function createApp(anthropic: Guarded<Anthropic>): express.Express {
  const app = express();
  app.use(express.json());
  // Every guarded call made while handling this request is charged to (and limited for) its user.
  app.use((req, _res, next) => {
    const user = req.header('x-user-id');
    if (!user) return void _res.status(401).json({ error: { type: 'unauthenticated', message: 'Send x-user-id.' } });
    runWithScope({ user }, next);
  });
  app.post('/chat', async (req, res) => {
    const message = await anthropic.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 256,
      messages: [{ role: 'user', content: String(req.body?.prompt ?? '') }],
    });
    const text = message.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
    res.json({ text, usage: message.usage });
  });
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    const answer = guardErrorToHttp(err);
    res.status(answer.status).set(answer.headers).json(answer.body);
  };
  app.use(onError);
  return app;
}

/** The guard for the app: 10 requests a minute and $0.50 a day per user, refused at once beyond. */
export function guardFor(clientOptions: ConstructorParameters<typeof Anthropic>[0]): Guarded<Anthropic> {
  return createGuardedClient(new Anthropic(clientOptions), {
    limits: { perScope: { user: { requestsPerMinute: 10 } }, maxWaitMs: 1000 },
    cost: { budgets: [{ scope: 'user', limitUsd: 0.5, window: '1d' }] },
  });
}

export async function main(): Promise<void> {
  const where = await target('anthropic');
  const anthropic = guardFor(where.clientOptions);
  const server: Server = await new Promise((resolve) => {
    const s = createApp(anthropic).listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as { port: number };
  console.log(`listening on http://127.0.0.1:${port}`);
  for (let i = 1; i <= 11; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': 'alice' },
      body: JSON.stringify({ prompt: `Hello #${i}` }),
    });
    const body = (await res.json()) as { text?: string; error?: { message: string } };
    console.log(`alice #${i}: ${res.status}${res.headers.get('retry-after') ? ` (Retry-After: ${res.headers.get('retry-after')} s)` : ''} ${body.text ?? body.error?.message ?? ''}`.slice(0, 160));
  }
  const bob = await fetch(`http://127.0.0.1:${port}/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': 'bob' }, body: '{"prompt":"Hi"}' });
  console.log(`bob #1: ${bob.status} (another user is not held back by alice's limit)`);
  server.close();
  await anthropic.guard.close();
  await where.close();
}

if (require.main === module) void main();
