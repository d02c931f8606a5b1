import type { CallContext, Next, Stage } from '../pipeline';

/** Pass-through until its issue fills it in; the wiring around it is final. */
export class RateLimitStage implements Stage {
  readonly name = 'rateLimit';

  run(ctx: CallContext, next: Next): Promise<Response> {
    return next(ctx);
  }
}
