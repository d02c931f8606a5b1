import { UnpricedModelError } from '../errors';
import type { Logger } from '../logger';
import type { PriceBook } from './prices';

/** The cost.unpricedModel policy for a model without a price: refuse, or warn once and go on. */
export class UnpricedModels {
  private readonly warned = new Set<string>();

  constructor(private readonly logger: () => Logger) {}

  /** Throws UnpricedModelError under 'reject' (nothing is sent); otherwise warns once per model. */
  check(model: string | undefined, prices: PriceBook, provider: string): void {
    const source = prices.source(model);
    if (source.kind === 'unpriced') {
      if (prices.unpriced === 'reject') throw new UnpricedModelError(model ?? '(none)', provider);
      this.warnOnce(model, 'is not priced: its calls are counted at $0 (cost.unpricedModel = "allow")');
    } else if (source.kind === 'conservative') {
      this.warnOnce(model, `is not priced: it is charged as ${source.modelId}, the provider's dearest model`);
    }
  }

  private warnOnce(model: string | undefined, what: string): void {
    const key = model ?? '';
    if (this.warned.has(key)) return;
    if (this.warned.size > 1000) this.warned.clear();
    this.warned.add(key);
    this.logger().warn({ model }, `model ${model ?? '(none)'} ${what}`);
  }
}
