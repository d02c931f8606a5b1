/**
 * Budget overshoot under concurrency: 100 calls at once against a hard budget. A naive "check,
 * then charge after" wrapper lets every call that started before the budget filled through; a
 * reservation of each call's worst case never overshoots but refuses calls whose real cost would
 * have fitted (the worst case is pessimistic); reservation + wait (cost.budgetWaitMs) serves them
 * once the calls in flight settle. "Refused but would have fit": refused calls for which the
 * budget still had room for their real cost once everything settled.
 */
import Anthropic from '@anthropic-ai/sdk';
import { calcPrice } from '@pydantic/genai-prices';
import { createGuardedClient } from '../lib';
import { startFakeProvider, type FakeProvider } from '../lib/testing';
import { fmt, table } from './support';

const MODEL = 'claude-haiku-4-5';
const messages = [{ role: 'user' as const, content: 'Write one short line about budgets.' }];
/** Each call may write 640 tokens and writes 64: its real cost is about a tenth of its worst case. */
const MAX_TOKENS = 640;

function row(budget: number, label: string, fake: FakeProvider, refused: number): Array<string | number> {
  const billed = fake.stats.billed.usd;
  const perCall = fake.records.length ? billed / fake.records.length : 0;
  const wouldHaveFit = perCall > 0 ? Math.min(refused, Math.floor(Math.max(0, budget - billed) / perCall)) : 0;
  return [`$${budget}`, label, fake.stats.requests, refused, wouldHaveFit, `$${fmt(billed, 6)}`, `${fmt((100 * Math.max(0, billed - budget)) / budget, 0)}%`];
}

export async function runBudgetOvershoot(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const rows: Array<Array<string | number>> = [];
  for (const budget of [0.01, 0.02]) {
    // Naive: check what was spent so far, call, then charge the reported usage.
    {
      const fake = await startFakeProvider({ latencyMs: 100, outputTokens: 64 });
      const client = new Anthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL, maxRetries: 0 });
      let spent = 0;
      let refused = 0;
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          if (spent >= budget) return void refused++;
          const m = await client.messages.create({ model: MODEL, max_tokens: MAX_TOKENS, messages });
          spent += calcPrice({ input_tokens: m.usage.input_tokens, output_tokens: m.usage.output_tokens }, MODEL, { providerId: 'anthropic' })!.total_price;
        }),
      );
      rows.push(row(budget, 'check-then-charge', fake, refused));
      log(`  budget $${budget}, naive: ${fake.stats.requests} sent, billed $${fmt(fake.stats.billed.usd, 6)}`);
      await fake.close();
    }
    for (const [label, budgetWaitMs] of [
      ['guarded, reservation (budgetWaitMs 0)', 0],
      ['**guarded, reservation + wait** (default)', 30_000],
    ] as const) {
      const fake = await startFakeProvider({ latencyMs: 100, outputTokens: 64 });
      const client = createGuardedClient(new Anthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL }), {
        cost: { budgets: [{ scope: 'global', limitUsd: budget }], budgetWaitMs },
        limits: { maxConcurrent: 100, adaptive: false },
      });
      const started = performance.now();
      const results = await Promise.allSettled(Array.from({ length: 100 }, () => client.messages.create({ model: MODEL, max_tokens: MAX_TOKENS, messages })));
      const refused = results.filter((r) => r.status === 'rejected').length;
      rows.push(row(budget, label, fake, refused));
      log(`  budget $${budget}, ${label}: ${fake.stats.requests} sent, billed $${fmt(fake.stats.billed.usd, 6)} in ${fmt((performance.now() - started) / 1000)} s`);
      await client.guard.close();
      await fake.close();
    }
  }
  return {
    markdown:
      `100 calls at once, each allowed ${MAX_TOKENS} output tokens and writing 64 (its real cost about a tenth of its worst case), 100 ms per call.\n\n` +
      table(['hard budget', 'client', 'calls sent', 'calls refused', 'refused but would have fit', 'billed by the provider', 'overshoot'], rows),
  };
}
