/**
 * A script that uses every timer-owning part of the guard (limits, token buckets, per-scope
 * limits, breaker, budgets, retries after a 429, a stream) and never calls close(): it must
 * exit on its own once its work is done.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createGuardedClient } from '../../lib';

async function main(): Promise<void> {
  const client = createGuardedClient(new Anthropic({ apiKey: 'sk-ant-script', baseURL: process.env.FAKE_ANTHROPIC_URL }), {
    limits: { requestsPerMinute: 600, tokensPerMinute: 100_000, perScope: { user: { requestsPerMinute: 100, maxConcurrent: 2 } } },
    retry: { retries: 2, minDelayMs: 10, maxDelayMs: 50 },
    cost: { budgets: [{ scope: 'global', limitUsd: 1, window: '1h' }, { scope: 'user', limitUsd: 0.5, window: '1d' }] },
  });
  const alice = client.guard.withScope({ user: 'alice' });
  await Promise.all(Array.from({ length: 12 }, () => alice.messages.create({ model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })));
  const stream = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], stream: true });
  for await (const _event of stream) void _event;
  process.stdout.write(`done ${Date.now()}\n`);
}

void main();
