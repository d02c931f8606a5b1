/**
 * How many input tokens a call weighs, before it is sent: the offline estimate (exact for OpenAI
 * models when gpt-tokenizer is installed), or Anthropic's own count with cost.exactInputTokens;
 * then calibrated per model to what the provider reports, so the estimate learns its tokenizer
 * (a compatible host may count with another one).
 */
import type { Logger } from '../logger';
import type { ParsedRequest, ProviderAdapter } from '../providers/adapter';
import type { ResponseTap } from '../internal/response-tap';
import { estimateInputTokens, openaiCounter } from './estimate';
import { countAnthropicInputTokens } from './count-tokens';

/** A call's input tokens: what they were weighed at, and with what was learned since. */
export interface InputWeight {
  /** The count now; never lower than an earlier answer (a call waiting in the queue may be re-weighed). */
  current(): number;
}

class Weighed implements InputWeight {
  /** What a calibrated estimate was before calibration, to learn from its answer (undefined: exact). */
  estimate: { model: string; estimated: number } | undefined;

  constructor(
    private value: number,
    /** Re-weighs with the calibration learned since (undefined: exact, nothing to learn). */
    private readonly again: (() => number) | undefined,
  ) {}

  current(): number {
    if (this.again) this.value = Math.max(this.value, this.again());
    return this.value;
  }
}

const ZERO: InputWeight = { current: () => 0 };
/** Calibrations kept (one per model); past it, the table starts over. */
const MAX_MODELS = 1000;

export class InputWeigher {
  /**
   * Per model, how many input tokens the provider counts for each one the estimate counted (a
   * moving average, never below 1).
   */
  private readonly calibration = new Map<string, number>();
  private countWarned = false;

  constructor(
    private readonly deps: {
      adapter: ProviderAdapter;
      /** The real fetch, for Anthropic's countTokens. */
      fetch: typeof fetch;
      logger: () => Logger;
    },
  ) {
    // Load the optional exact tokenizer now (tens of ms), not in the middle of the first call.
    if (deps.adapter.name === 'openai') openaiCounter(undefined);
  }

  /** Weighs a request; at once unless `exact` asks the provider to count (Anthropic messages). */
  weigh(request: ParsedRequest, exact: boolean, url: string, init: RequestInit): InputWeight | Promise<InputWeight> {
    if (!request.billable) return ZERO;
    const tokenizer = this.deps.adapter.name === 'openai' ? openaiCounter(request.model) : undefined;
    const estimated = estimateInputTokens(request.endpoint, request.body, tokenizer);
    if (exact && this.deps.adapter.name === 'anthropic' && request.endpoint === 'messages' && request.body) {
      return this.countExactly(url, init, request.body).then((counted) => (counted !== undefined ? new Weighed(counted, undefined) : this.calibrated(request.model, estimated)));
    }
    return this.calibrated(request.model, estimated);
  }

  /**
   * The estimate times the model's calibration. An OpenAI-format count is exact for OpenAI's own
   * tokenizer, but a compatible host may count with another: it is calibrated like the estimate.
   */
  private calibrated(model: string | undefined, estimated: number): InputWeight {
    if (!model) return new Weighed(estimated, undefined);
    const weight = new Weighed(Math.ceil(estimated * (this.calibration.get(model) ?? 1)), () => Math.ceil(estimated * (this.calibration.get(model) ?? 1)));
    weight.estimate = { model, estimated };
    return weight;
  }

  /** Learns from the provider's reported input count when `tap` ends (estimates only, never exact counts). */
  learnFrom(weight: InputWeight, tap: ResponseTap | undefined): void {
    const known = weight instanceof Weighed ? weight.estimate : undefined;
    if (!known || !tap || known.estimated <= 0) return;
    tap.onEnd((end) => {
      if (!end.usage || end.usage.estimated || end.usage.inputTokens <= 0) return;
      const sample = Math.min(4, end.usage.inputTokens / known.estimated);
      const current = this.calibration.get(known.model);
      if (this.calibration.size > MAX_MODELS && current === undefined) this.calibration.clear();
      // The first answer counts in full; later ones move the average.
      this.calibration.set(known.model, Math.max(1, current === undefined ? sample : current + 0.3 * (sample - current)));
    });
  }

  /** Anthropic's own count for cost.exactInputTokens; on failure the estimate stands (warned once). */
  private async countExactly(url: string, init: RequestInit, body: Record<string, unknown>): Promise<number | undefined> {
    try {
      const counted = await countAnthropicInputTokens(this.deps.fetch, url, init, body);
      if (counted !== undefined) return counted;
    } catch (error) {
      if (init.signal?.aborted) throw error;
    }
    if (!this.countWarned) {
      this.countWarned = true;
      this.deps.logger().warn({}, 'cost.exactInputTokens: the provider did not count the input; the estimate is used instead');
    }
    return undefined;
  }
}
