import type { CallContext, Next, Stage } from '../pipeline';

/** Pass-through until its issue fills it in; the wiring around it is final. */
export class RetryStage implements Stage {
  readonly name = 'retry';

  run(ctx: CallContext, next: Next): Promise<Response> {
    return next(ctx);
  }
}
