/**
 * Prices a Realtime `response.done` with genai-prices' own realtime extractor and calculation
 * (text, audio and cached input; text and audio output), so that its numbers are the catalog's.
 */
import { calcPrice, extractUsage, findProvider } from '@pydantic/genai-prices';
import type { ModelPrice } from '../config/options';
import type { Usage } from '../providers/adapter';

/** The usage fields of a realtime response (OpenAI's shape), all optional: hosts leave some out. */
export interface RealtimeUsageEvent {
  input_tokens?: number;
  output_tokens?: number;
  input_token_details?: { text_tokens?: number; audio_tokens?: number; cached_tokens?: number; cached_tokens_details?: { text_tokens?: number; audio_tokens?: number } };
  output_token_details?: { text_tokens?: number; audio_tokens?: number };
}

/** What the guard counts of a response: tokens for quotas and events, dollars for budgets. */
export interface RealtimeCharge {
  usage: Usage;
  usd: number;
  /** Audio tokens among them (the dearest part of a voice session). */
  audioInputTokens: number;
  audioOutputTokens: number;
}

/** genai-prices' OpenAI provider (its realtime extractor and models), looked up once: pricing runs per delta. */
let openaiProvider: ReturnType<typeof findProvider> | undefined;
function openai(): NonNullable<ReturnType<typeof findProvider>> {
  return (openaiProvider ??= findProvider({ providerId: 'openai' }))!;
}

/** The realtime model genai-prices knows that costs the most per million tokens in and out: an unknown model's price. */
let dearest: string | null | undefined;
function dearestRealtimeModel(): string | undefined {
  if (dearest !== undefined) return dearest ?? undefined;
  let best: { id: string; usd: number } | undefined;
  for (const m of openai().models) {
    if (!m.id.includes('realtime')) continue;
    const usd = calcPrice({ input_tokens: 1e6, input_audio_tokens: 1e6, output_tokens: 1e6, output_audio_tokens: 1e6 }, m.id, { providerId: 'openai' })?.total_price ?? 0;
    if (!best || usd > best.usd) best = { id: m.id, usd };
  }
  dearest = best?.id ?? null;
  return best?.id;
}

export type RealtimePriceSource = { kind: 'override'; price: ModelPrice } | { kind: 'data'; modelId: string } | { kind: 'unpriced' };

/** How `model` is priced: an override from cost.prices, genai-prices, else (conservative) the dearest realtime model. */
export function realtimePriceSource(model: string | undefined, overrides: Readonly<Record<string, ModelPrice>>, unpriced: 'conservative' | 'reject' | 'allow'): RealtimePriceSource {
  if (model && overrides[model]) return { kind: 'override', price: overrides[model] };
  if (model && calcPrice({ input_tokens: 0 }, model, { providerId: 'openai' })) return { kind: 'data', modelId: model };
  const fallback = unpriced === 'conservative' ? dearestRealtimeModel() : undefined;
  return fallback ? { kind: 'data', modelId: fallback } : { kind: 'unpriced' };
}

/** The charge for one response's usage. */
export function priceRealtime(source: RealtimePriceSource, usage: RealtimeUsageEvent, estimated = false): RealtimeCharge {
  const extracted = extractUsage(openai(), { response: { usage } }, 'realtime').usage as Record<string, number>;
  const inputTokens = extracted.input_tokens ?? 0;
  const outputTokens = extracted.output_tokens ?? 0;
  const charge: RealtimeCharge = {
    usage: { inputTokens, outputTokens, cacheReadTokens: extracted.cache_read_tokens ?? 0, ...(estimated ? { estimated } : {}) },
    usd: 0,
    audioInputTokens: extracted.input_audio_tokens ?? 0,
    audioOutputTokens: extracted.output_audio_tokens ?? 0,
  };
  if (source.kind === 'data') charge.usd = calcPrice(extracted, source.modelId, { providerId: 'openai' })?.total_price ?? 0;
  else if (source.kind === 'override') {
    const p = source.price;
    charge.usd = ((inputTokens - (extracted.cache_read_tokens ?? 0)) * p.inputPerMTok + (extracted.cache_read_tokens ?? 0) * (p.cacheReadPerMTok ?? p.inputPerMTok) + outputTokens * p.outputPerMTok) / 1e6;
  }
  return charge;
}
