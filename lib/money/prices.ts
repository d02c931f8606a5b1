import { readFileSync } from 'node:fs';
import { calcPrice, findProvider } from '@pydantic/genai-prices';
import type { ModelPrice } from '../config/options';
import type { Usage } from '../providers/adapter';
import { validatePrices } from '../config/validate';
import { GuardConfigError } from '../errors';
import { largestOutput } from './model-catalog';

export type UnpricedPolicy = 'conservative' | 'reject' | 'allow';

/** How a model is priced: a user override, genai-prices data, the dearest model, or not at all. */
export type PriceSource =
  | { kind: 'override'; price: ModelPrice }
  | { kind: 'data'; modelId: string; contextWindow: number | undefined }
  | { kind: 'conservative'; modelId: string; contextWindow: number | undefined }
  | { kind: 'unpriced' };

const MTOK = 1_000_000;
const MAX_CACHED_MODELS = 1000;
/** Per-token prices are re-read from genai-prices this often (prices can change on a date). */
const UNIT_PRICE_TTL_MS = 3_600_000;

/** USD per token of each kind, for one model within one long-context tier. */
interface UnitPrices {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  cacheWrite1h: number;
  at: number;
}
// Anthropic Message Batches and the OpenAI Batch API bill half of the standard rates.
const BATCH_DISCOUNT = 0.5;

/** genai-prices' usage keys: input includes cache tokens; cache_write includes its 1-hour part. */
function priceUsage(usage: Usage): Record<string, number> {
  const out: Record<string, number> = { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens };
  const write5m = usage.cacheWriteTokens ?? 0;
  const write1h = usage.cacheWrite1hTokens ?? 0;
  if (usage.cacheReadTokens) out.cache_read_tokens = usage.cacheReadTokens;
  if (write5m + write1h) out.cache_write_tokens = write5m + write1h;
  if (write1h) out.cache_write_1h_tokens = write1h;
  return out;
}

function overrideCost(price: ModelPrice, usage: Usage): number {
  const read = usage.cacheReadTokens ?? 0;
  const write5m = usage.cacheWriteTokens ?? 0;
  const write1h = usage.cacheWrite1hTokens ?? 0;
  const plainInput = Math.max(0, usage.inputTokens - read - write5m - write1h);
  return (
    (plainInput * price.inputPerMTok +
      read * (price.cacheReadPerMTok ?? price.inputPerMTok) +
      write5m * (price.cacheWritePerMTok ?? price.inputPerMTok) +
      write1h * (price.cacheWrite1hPerMTok ?? price.cacheWritePerMTok ?? price.inputPerMTok) +
      usage.outputTokens * price.outputPerMTok) /
    MTOK
  );
}

/** Reads LLM_GUARD_PRICES_FILE: a JSON object of model id → ModelPrice. */
export function readPricesFile(path: string): Record<string, ModelPrice> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new GuardConfigError('cost.pricesFile', JSON.stringify(path), `a readable JSON file (${(error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new GuardConfigError('cost.pricesFile', JSON.stringify(path), `a file of valid JSON (${(error as Error).message})`);
  }
  return validatePrices(json, `prices file ${path}`);
}

/**
 * Prices for one provider from @pydantic/genai-prices (long-context tiers, cache reads/writes,
 * dated snapshot ids), with the user's overrides winning and a policy for unknown models.
 */
export class PriceBook {
  private readonly cache = new Map<string, PriceSource>();
  /** model id → tier starts (input tokens above which a higher rate applies), and unit prices per tier. */
  private readonly units = new Map<string, { starts: number[]; tiers: Map<number, UnitPrices> }>();
  private dearest: { modelId: string; contextWindow: number | undefined } | null | undefined;

  constructor(
    readonly providerId: string,
    private readonly overrides: Readonly<Record<string, ModelPrice>>,
    readonly unpriced: UnpricedPolicy,
  ) {}

  /** How `model` is priced; cached per model id. */
  source(model: string | undefined): PriceSource {
    const key = model ?? '';
    let source = this.cache.get(key);
    if (!source) {
      source = this.lookup(model);
      if (this.cache.size >= MAX_CACHED_MODELS) this.cache.clear();
      this.cache.set(key, source);
    }
    return source;
  }

  private lookup(model: string | undefined): PriceSource {
    if (model && this.overrides[model]) return { kind: 'override', price: this.overrides[model] };
    if (model) {
      const found = safeCalc({ input_tokens: 0 }, model, this.providerId);
      if (found) return { kind: 'data', modelId: found.model.id, contextWindow: found.model.context_window };
    }
    if (this.unpriced === 'conservative') {
      const dearest = this.dearestModel();
      if (dearest) return { kind: 'conservative', ...dearest };
    }
    return { kind: 'unpriced' };
  }

  /** The provider's most expensive model for 1M in + 1M out: what an unknown model is priced as. */
  private dearestModel(): { modelId: string; contextWindow: number | undefined } | null {
    if (this.dearest !== undefined) return this.dearest;
    let best: { modelId: string; contextWindow: number | undefined; usd: number } | null = null;
    for (const m of findProvider({ providerId: this.providerId })?.models ?? []) {
      const usd = safeCalc({ input_tokens: MTOK, output_tokens: MTOK }, m.id, this.providerId)?.total_price ?? 0;
      if (!best || usd > best.usd) best = { modelId: m.id, contextWindow: m.context_window, usd };
    }
    this.dearest = best && { modelId: best.modelId, contextWindow: best.contextWindow };
    return this.dearest;
  }

  /** USD for `usage` on `model`; 0 when unpriced (the 'allow' policy). */
  cost(model: string | undefined, usage: Usage, options: { batch?: boolean } = {}): number {
    const source = this.source(model);
    let usd: number;
    switch (source.kind) {
      case 'override':
        usd = overrideCost(source.price, usage);
        break;
      case 'data':
      case 'conservative': {
        const u = this.unitPrices(source.modelId, usage.inputTokens);
        if (!u) {
          usd = safeCalc(priceUsage(usage), source.modelId, this.providerId)?.total_price ?? 0;
          break;
        }
        const read = usage.cacheReadTokens ?? 0;
        const write5m = usage.cacheWriteTokens ?? 0;
        const write1h = usage.cacheWrite1hTokens ?? 0;
        usd =
          Math.max(0, usage.inputTokens - read - write5m - write1h) * u.input +
          read * u.cacheRead +
          write5m * u.cacheWrite +
          write1h * u.cacheWrite1h +
          usage.outputTokens * u.output;
        break;
      }
      case 'unpriced':
        usd = 0;
    }
    return options.batch ? usd * BATCH_DISCOUNT : usd;
  }

  /**
   * genai-prices' per-token prices for `modelId` in the tier that `inputTokens` falls in, read
   * from calcPrice itself and kept: its pricing is linear within a tier (the tier, chosen by total
   * input, applies to every kind of token), and a calcPrice call costs ~14 µs on the hot path.
   */
  private unitPrices(modelId: string, inputTokens: number): UnitPrices | undefined {
    let model = this.units.get(modelId);
    if (!model) {
      const probe = safeCalc({ input_tokens: 1 }, modelId, this.providerId);
      if (!probe) return undefined;
      const starts = new Set<number>();
      for (const value of Object.values(probe.model_price)) {
        if (value && typeof value === 'object' && Array.isArray(value.tiers)) for (const tier of value.tiers) starts.add(tier.start);
      }
      if (this.units.size >= MAX_CACHED_MODELS) this.units.clear();
      model = { starts: [...starts].sort((a, b) => a - b), tiers: new Map() };
      this.units.set(modelId, model);
    }
    let tier = 0;
    while (tier < model.starts.length && inputTokens > model.starts[tier]!) tier++;
    const cached = model.tiers.get(tier);
    if (cached && Date.now() - cached.at < UNIT_PRICE_TTL_MS) return cached;
    // A representative input inside this tier: its first token count past the tier's start.
    const x = tier === 0 ? 1 : model.starts[tier - 1]! + 1;
    const price = (usage: Record<string, number>) => safeCalc({ input_tokens: x, ...usage }, modelId, this.providerId)?.total_price;
    const base = price({});
    const withOutput = price({ output_tokens: MTOK });
    const read = price({ cache_read_tokens: x });
    const write = price({ cache_write_tokens: x });
    const write1h = price({ cache_write_tokens: x, cache_write_1h_tokens: x });
    if (base === undefined || withOutput === undefined || read === undefined || write === undefined || write1h === undefined) return undefined;
    const units: UnitPrices = { input: base / x, output: (withOutput - base) / MTOK, cacheRead: read / x, cacheWrite: write / x, cacheWrite1h: write1h / x, at: Date.now() };
    model.tiers.set(tier, units);
    return units;
  }

  /**
   * The most output a request without its own cap can produce: the override's, else the model's
   * largest output from the catalog, else (a model no catalog knows) its context window.
   */
  maxOutputTokens(model: string | undefined): number | undefined {
    const source = this.source(model);
    if (source.kind === 'override' && source.price.maxOutputTokens !== undefined) return source.price.maxOutputTokens;
    const known = largestOutput(model, source.kind === 'data' ? source.modelId : undefined);
    if (known !== undefined || source.kind === 'override' || source.kind === 'unpriced') return known;
    return source.contextWindow;
  }

  /**
   * The output a request without its own cap is reserved at: the model's largest output, or for
   * a model nothing bounds (an override without maxOutputTokens, no catalog, no context window)
   * UNKNOWN_MODEL_MAX_OUTPUT_TOKENS — never 0, which would let its output pass every budget unseen.
   */
  outputBound(model: string | undefined): { tokens: number; known: boolean } {
    const max = this.maxOutputTokens(model);
    return max === undefined ? { tokens: UNKNOWN_MODEL_MAX_OUTPUT_TOKENS, known: false } : { tokens: max, known: true };
  }
}

/** What a model nothing bounds is assumed to emit at most (today's long-output models reach 32k–128k). */
export const UNKNOWN_MODEL_MAX_OUTPUT_TOKENS = 32_768;

function safeCalc(usage: Record<string, number>, model: string, providerId: string) {
  try {
    return calcPrice(usage, model, { providerId });
  } catch {
    return null;
  }
}
