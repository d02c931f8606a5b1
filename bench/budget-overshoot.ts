/**
 * Budget overshoot under concurrency: 100 calls at once against a hard budget that fits ~20 of
 * them. The guard reserves each call's worst case before sending; a naive "check, then charge
 * after" wrapper lets every call that started before the budget filled through.
 */
import Anthropic from '@anthropic-ai/sdk';
import { calcPrice } from '@pydantic/genai-prices';
import { createGuardedClient } from '../lib';
import { startFakeProvider } from '../lib/testing';
import { fmt, table } from './support';

const MODEL = 'claude-haiku-4-5';
const messages = [{ role: 'user' as const, content: 'Write one short line about budgets.' }];

export async function runBudgetOvershoot(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const rows: Array<Array<string | number>> = [];
  for (const budget of [0.002, 0.01]) {
    // Naive: check what was spent so far, call, then charge the reported usage.
    {
      const fake = await startFakeProvider({ latencyMs: 100, outputTokens: 64 });
      const client = new Anthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL, maxRetries: 0 });
      let spent = 0;
      let refused = 0;
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          if (spent >= budget) return void refused++;
          const m = await client.messages.create({ model: MODEL, max_tokens: 64, messages });
          spent += calcPrice({ input_tokens: m.usage.input_tokens, output_tokens: m.usage.output_tokens }, MODEL, { providerId: 'anthropic' })!.total_price;
        }),
      );
      const billed = fake.stats.billed.usd;
      rows.push([`$${budget}`, 'check-then-charge', fake.stats.requests, refused, `$${fmt(billed, 6)}`, `${fmt((100 * Math.max(0, billed - budget)) / budget, 0)}%`]);
      log(`  budget $${budget}, naive: ${fake.stats.requests} sent, billed $${fmt(billed, 6)}`);
      await fake.close();
    }
    {
      const fake = await startFakeProvider({ latencyMs: 100, outputTokens: 64 });
      const client = createGuardedClient(new Anthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL }), {
        cost: { budgets: [{ scope: 'global', limitUsd: budget }] },
        limits: { maxConcurrent: 100, adaptive: false },
      });
      const results = await Promise.allSettled(Array.from({ length: 100 }, () => client.messages.create({ model: MODEL, max_tokens: 64, messages })));
      const refused = results.filter((r) => r.status === 'rejected').length;
      const billed = fake.stats.billed.usd;
      rows.push([`$${budget}`, '**guarded**', fake.stats.requests, refused, `$${fmt(billed, 6)}`, `**${fmt((100 * Math.max(0, billed - budget)) / budget, 0)}%**`]);
      log(`  budget $${budget}, guarded: ${fake.stats.requests} sent, billed $${fmt(billed, 6)}`);
      await client.guard.close();
      await fake.close();
    }
  }
  return { markdown: table(['hard budget', 'client', 'calls sent', 'calls refused', 'billed by the provider', 'overshoot'], rows) };
}
