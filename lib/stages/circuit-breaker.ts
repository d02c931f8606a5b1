import type { CallContext, Next, Stage } from '../pipeline';

/** Pass-through until its issue fills it in; the wiring around it is final. */
export class CircuitBreakerStage implements Stage {
  readonly name = 'breaker';

  run(ctx: CallContext, next: Next): Promise<Response> {
    return next(ctx);
  }
}
