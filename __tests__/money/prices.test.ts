import { calcPrice } from '@pydantic/genai-prices';
import { PriceBook } from '../../lib/money/prices';
import type { Usage } from '../../lib/providers/adapter';

/** genai-prices' own answer for a usage, with its key conventions (input includes cache tokens). */
function reference(provider: string, model: string, u: Usage): number {
  const writes = (u.cacheWriteTokens ?? 0) + (u.cacheWrite1hTokens ?? 0);
  return calcPrice(
    {
      input_tokens: u.inputTokens,
      output_tokens: u.outputTokens,
      ...(u.cacheReadTokens ? { cache_read_tokens: u.cacheReadTokens } : {}),
      ...(writes ? { cache_write_tokens: writes } : {}),
      ...(u.cacheWrite1hTokens ? { cache_write_1h_tokens: u.cacheWrite1hTokens } : {}),
    },
    model,
    { providerId: provider },
  )!.total_price;
}

const plain: Usage = { inputTokens: 1234, outputTokens: 567 };
const cached: Usage = { inputTokens: 20_000, outputTokens: 900, cacheReadTokens: 12_000, cacheWriteTokens: 3000, cacheWrite1hTokens: 1000 };
const long: Usage = { inputTokens: 250_000, outputTokens: 4000, cacheReadTokens: 100_000 };
const reasoning: Usage = { inputTokens: 3000, outputTokens: 9000, reasoningTokens: 8000, cacheReadTokens: 1024 };

const cases: Array<[string, string, Usage]> = [
  ...['claude-haiku-4-5', 'claude-sonnet-4-5', 'claude-sonnet-4-6', 'claude-opus-4-1', 'claude-opus-4-5', 'claude-opus-4-6', 'claude-3-5-haiku-latest', 'claude-3-7-sonnet-latest', 'claude-sonnet-4-0', 'claude-3-haiku'].flatMap(
    (m) => [['anthropic', m, plain], ['anthropic', m, cached]] as Array<[string, string, Usage]>,
  ),
  // Long context: past 200k input the higher rate applies to the whole request.
  ['anthropic', 'claude-sonnet-4-5', long],
  ['anthropic', 'claude-sonnet-4-0', long],
  // Dated snapshot ids resolve to their model.
  ['anthropic', 'claude-sonnet-4-5-20250929', cached],
  ['anthropic', 'claude-3-5-haiku-20241022', plain],
  ...['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-4.1-nano', 'gpt-5', 'gpt-5-mini', 'o3', 'o4-mini', 'gpt-3.5-turbo', 'gpt-4-turbo', 'text-embedding-3-small'].flatMap(
    (m) => [['openai', m, plain], ['openai', m, { inputTokens: 5000, outputTokens: 700, cacheReadTokens: 2048 }]] as Array<[string, string, Usage]>,
  ),
  ['openai', 'o3', reasoning],
  ['openai', 'gpt-5', reasoning],
  ['openai', 'gpt-4o-2024-08-06', plain],
];

describe('prices equal genai-prices’ own calculation', () => {
  test(`${new Set(cases.map((c) => c[1])).size} models`, () => {
    expect(new Set(cases.map((c) => c[1])).size).toBeGreaterThanOrEqual(20);
  });

  test.each(cases)('%s %s %p', (provider, model, usage) => {
    const book = new PriceBook(provider, {}, 'reject');
    const expected = reference(provider, model, usage);
    expect(expected).toBeGreaterThan(0);
    expect(book.cost(model, usage)).toBeCloseTo(expected, 12);
    // Asked again (served from the per-tier cache), the same.
    expect(book.cost(model, usage)).toBeCloseTo(expected, 12);
  });

  test('the long-context tier prices the whole request higher, not just the tokens past 200k', () => {
    const book = new PriceBook('anthropic', {}, 'reject');
    const below = book.cost('claude-sonnet-4-5', { inputTokens: 200_000, outputTokens: 0 });
    const above = book.cost('claude-sonnet-4-5', { inputTokens: 200_001, outputTokens: 0 });
    expect(above / below).toBeGreaterThan(1.9);
  });

  test('batch calls are half price', () => {
    const book = new PriceBook('openai', {}, 'reject');
    expect(book.cost('gpt-4o', plain, { batch: true })).toBeCloseTo(book.cost('gpt-4o', plain) / 2, 15);
  });

  test('overrides win; cache rates fall back to the input rate', () => {
    const book = new PriceBook('openai', { 'gpt-4o': { inputPerMTok: 1, outputPerMTok: 2, cacheReadPerMTok: 0.5 }, 'my-model': { inputPerMTok: 3, outputPerMTok: 4 } }, 'reject');
    expect(book.cost('gpt-4o', { inputTokens: 1_000_000, outputTokens: 1_000_000, cacheReadTokens: 500_000 })).toBeCloseTo(0.5 * 1 + 0.5 * 0.5 + 2, 12);
    expect(book.cost('my-model', { inputTokens: 1_000_000, outputTokens: 0, cacheWriteTokens: 1_000_000 })).toBeCloseTo(3, 12);
  });

  test("an unknown model: 'conservative' prices it as the provider's dearest, 'allow' as free", () => {
    const conservative = new PriceBook('anthropic', {}, 'conservative');
    const dearest = conservative.source('my-own-claude');
    expect(dearest.kind).toBe('conservative');
    const dearestId = (dearest as { modelId: string }).modelId;
    const known = ['claude-haiku-4-5', 'claude-sonnet-4-6', 'claude-opus-4-6'].map((m) => conservative.cost(m, plain));
    expect(conservative.cost('my-own-claude', plain)).toBeGreaterThanOrEqual(Math.max(...known));
    expect(conservative.cost('my-own-claude', plain)).toBeCloseTo(reference('anthropic', dearestId, plain), 12);
    expect(new PriceBook('anthropic', {}, 'allow').cost('my-own-claude', plain)).toBe(0);
  });
});
