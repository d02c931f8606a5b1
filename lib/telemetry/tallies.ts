/**
 * The guard's lifetime counts, by the same bounded labels as its Prometheus counters, kept from
 * the guard's creation whether or not metrics are registered: counters registered late (a deploy
 * that registers lazily) still report everything since the start.
 */
import type { CallContext } from '../pipeline';
import type { Usage } from '../providers/adapter';
import type { GuardEmitter } from '../events';
import { callOutcome, ModelLabels, type CallObserver } from './observer';

type Count = { labels: Record<string, string>; value: number };

/**
 * Counts by label set: up to two labels, named once, so that counting a call builds no object
 * and no string (a map per first label value, holding the counts by the second).
 */
export class LabeledCounts {
  private readonly counts = new Map<string, Map<string, Count>>();

  constructor(private readonly names: readonly [] | readonly [string] | readonly [string, string]) {}

  /** Adds `value` to the count of the label values `a` (and `b`), in the order of the names. */
  add(value: number, a = '', b = ''): void {
    if (value === 0) return;
    let byB = this.counts.get(a);
    if (!byB) this.counts.set(a, (byB = new Map()));
    const entry = byB.get(b);
    if (entry) entry.value += value;
    else byB.set(b, { labels: Object.fromEntries(this.names.map((name, i) => [name, i === 0 ? a : b])), value });
  }

  *entries(): IterableIterator<Count> {
    for (const byB of this.counts.values()) yield* byB.values();
  }
}

export class CallTallies implements CallObserver {
  readonly models = new ModelLabels();
  /** By model and outcome. */
  readonly requests = new LabeledCounts(['model', 'outcome']);
  /** By model. */
  readonly attempts = new LabeledCounts(['model']);
  readonly provider429s = new LabeledCounts(['model']);
  /** By model and reason. */
  readonly retries = new LabeledCounts(['model', 'reason']);
  readonly localWaits = new LabeledCounts([]);
  /** By model and direction (input, output). */
  readonly tokens = new LabeledCounts(['model', 'direction']);
  /** US dollars, by model. */
  readonly cost = new LabeledCounts(['model']);
  /** By stage and scope kind. */
  readonly budgetRefusals = new LabeledCounts(['stage', 'scope']);
  private readonly offs: Array<() => void>;

  constructor(emitter: GuardEmitter) {
    this.offs = [
      emitter.on('retry', (e) => this.retries.add(1, this.models.label(e.model), e.reason)),
      emitter.on('rate-limited', (e) => {
        if (e.source === 'local') this.localWaits.add(1);
      }),
      emitter.on('budget:exceeded', (e) =>
        this.budgetRefusals.add(1, e.stage, e.key === 'global' || e.key === 'call' ? e.key : e.key.slice(0, e.key.indexOf(':'))),
      ),
    ];
  }

  /** A charge (told directly, not through the 'cost' event: that one is built only for the user's listeners). */
  charged(model: string | undefined, usage: Usage, usd: number): void {
    const label = this.models.label(model);
    this.tokens.add(usage.inputTokens, label, 'input');
    this.tokens.add(usage.outputTokens, label, 'output');
    this.cost.add(usd, label);
  }

  attemptStart(ctx: CallContext): void {
    this.attempts.add(1, this.models.label(ctx.request.model));
  }

  attemptEnd(ctx: CallContext, response: Response | undefined): void {
    if (response?.status === 429) this.provider429s.add(1, this.models.label(ctx.request.model));
  }

  callEnd(ctx: CallContext, response: Response | undefined, error?: unknown): void {
    this.requests.add(1, this.models.label(ctx.request.model), callOutcome(response, error));
  }

  close(): void {
    for (const off of this.offs) off();
  }
}
