/**
 * The one-line change: wrap the Anthropic client. Same calls, same types; every call is now
 * rate-limited, retried with backoff, behind a circuit breaker, and priced.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createGuardedClient, BudgetExceededError } from 'guarded-llm';
import { target } from './_provider';

export async function main(): Promise<void> {
  const where = await target('anthropic');
  const anthropic = createGuardedClient(new Anthropic(where.clientOptions), {
    cost: { maxCostPerCallUsd: 0.05 },
  });
  anthropic.guard.on('cost', (e) => console.log(`  cost event: $${e.usd.toFixed(6)} for ${e.usage.inputTokens} in / ${e.usage.outputTokens} out (${e.model})`));

  const message = await anthropic.messages.create({
    model: 'claude-haiku-4-5',
    max_tokens: 256,
    messages: [{ role: 'user', content: 'In one sentence: why do LLM apps need rate limits?' }],
  });
  console.log('reply:', message.content.map((b) => (b.type === 'text' ? b.text : `[${b.type}]`)).join('').trim());

  // A call whose worst case is over the per-call cap is refused before anything is sent.
  try {
    await anthropic.messages.create({ model: 'claude-opus-4-6', max_tokens: 32_000, messages: [{ role: 'user', content: 'Write a novel.' }] });
  } catch (error) {
    if (error instanceof BudgetExceededError) console.log(`refused (${error.stage}): ${error.message}`);
    else throw error;
  }

  const { totals } = anthropic.guard.status();
  console.log(`totals: ${totals.calls} calls, ${totals.attempts} attempts, $${totals.costUsd.toFixed(6)} spent`);
  await anthropic.guard.close();
  await where.close();
}

if (require.main === module) void main();
