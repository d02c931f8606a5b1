/**
 * Per-user budgets: each call's worst case is reserved before it is sent, so a user who runs
 * out is refused before spending a cent more — and other users are still served.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createGuardedClient, BudgetExceededError } from 'guarded-llm';
import { target } from './_provider';

export async function main(): Promise<void> {
  const where = await target('anthropic');
  const anthropic = createGuardedClient(new Anthropic(where.clientOptions), {
    cost: { budgets: [{ scope: 'user', limitUsd: 0.002, window: '1d', warnAt: 0.5 }] },
  });
  anthropic.guard.on('budget:warning', (e) => console.log(`  warning: ${e.key} has used ${Math.round(e.fraction * 100)}% of $${e.limitUsd}`));

  const alice = anthropic.guard.withScope({ user: 'alice' });
  for (let i = 1; i <= 20; i++) {
    try {
      await alice.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: `Say hi (#${i}).` }] });
      console.log(`alice call ${i}: served`);
    } catch (error) {
      if (!(error instanceof BudgetExceededError)) throw error;
      console.log(`alice call ${i}: refused before sending — ${error.message}`);
      break;
    }
  }
  await anthropic.guard.withScope({ user: 'bob' }).messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Say hi.' }] });
  console.log('bob: served');

  for (const b of anthropic.guard.status().budgets) {
    console.log(`${b.key}: $${b.spentUsd.toFixed(6)} spent of $${b.limitUsd} per ${b.window}, $${b.reservedUsd.toFixed(6)} reserved`);
  }
  await anthropic.guard.close();
  await where.close();
}

if (require.main === module) void main();
