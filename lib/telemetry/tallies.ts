/**
 * The guard's lifetime counts, by the same bounded labels as its Prometheus counters, kept from
 * the guard's creation whether or not metrics are registered: counters registered late (a deploy
 * that registers lazily) still report everything since the start.
 */
import type { CallContext } from '../pipeline';
import type { GuardEmitter } from '../events';
import { callOutcome, ModelLabels, type CallObserver } from './observer';

/** Counts by label set. */
export class LabeledCounts {
  private readonly counts = new Map<string, { labels: Record<string, string>; value: number }>();

  add(labels: Record<string, string>, value = 1): void {
    if (value === 0) return;
    const key = Object.values(labels).join('\u0000');
    const entry = this.counts.get(key);
    if (entry) entry.value += value;
    else this.counts.set(key, { labels, value });
  }

  entries(): IterableIterator<{ labels: Record<string, string>; value: number }> {
    return this.counts.values();
  }
}

export class CallTallies implements CallObserver {
  readonly models = new ModelLabels();
  /** By model and outcome. */
  readonly requests = new LabeledCounts();
  /** By model. */
  readonly attempts = new LabeledCounts();
  readonly provider429s = new LabeledCounts();
  /** By model and reason. */
  readonly retries = new LabeledCounts();
  readonly localWaits = new LabeledCounts();
  /** By model and direction (input, output). */
  readonly tokens = new LabeledCounts();
  /** US dollars, by model. */
  readonly cost = new LabeledCounts();
  /** By stage and scope kind. */
  readonly budgetRefusals = new LabeledCounts();
  private readonly offs: Array<() => void>;

  constructor(emitter: GuardEmitter) {
    this.offs = [
      emitter.on('retry', (e) => this.retries.add({ model: this.models.label(e.model), reason: e.reason })),
      emitter.on('rate-limited', (e) => {
        if (e.source === 'local') this.localWaits.add({});
      }),
      emitter.on('budget:exceeded', (e) =>
        this.budgetRefusals.add({ stage: e.stage, scope: e.key === 'global' || e.key === 'call' ? e.key : e.key.slice(0, e.key.indexOf(':')) }),
      ),
      emitter.on('cost', (e) => {
        const model = this.models.label(e.model);
        this.tokens.add({ model, direction: 'input' }, e.usage.inputTokens);
        this.tokens.add({ model, direction: 'output' }, e.usage.outputTokens);
        this.cost.add({ model }, e.usd);
      }),
    ];
  }

  attemptStart(ctx: CallContext): void {
    this.attempts.add({ model: this.models.label(ctx.request.model) });
  }

  attemptEnd(ctx: CallContext, response: Response | undefined): void {
    if (response?.status === 429) this.provider429s.add({ model: this.models.label(ctx.request.model) });
  }

  callEnd(ctx: CallContext, response: Response | undefined, error?: unknown): void {
    this.requests.add({ model: this.models.label(ctx.request.model), outcome: callOutcome(response, error) });
  }

  close(): void {
    for (const off of this.offs) off();
  }
}
