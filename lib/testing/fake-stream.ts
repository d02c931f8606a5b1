/** Writing one generation as SSE, token by token, with the fake's pacing and scripted cuts. */
import type { ServerResponse } from 'node:http';
import type { StreamScript } from './wire';

export interface StreamPlan {
  script: StreamScript;
  tokens: string[];
  /** Pause before each token. */
  delayMs: number;
  /** Drop the connection after this many tokens (a scripted 'cut' fault). */
  cutAfter: number;
  /** Whether the client hung up. */
  closed: () => boolean;
  /** Bills what was sent (called once). */
  bill: (sent: number) => void;
  pause: (ms: number, stop: () => boolean) => Promise<void>;
}

/** Streams the tokens after the head already written; bills what was sent, also when cut or hung up. */
export async function streamTokens(res: ServerResponse, plan: StreamPlan): Promise<void> {
  let sent = 0;
  for (const text of plan.tokens) {
    if (plan.delayMs > 0) await plan.pause(plan.delayMs, plan.closed);
    if (plan.closed()) break;
    if (sent >= plan.cutAfter) {
      plan.bill(sent);
      // Let what was written reach the client, then drop the connection mid-stream.
      await new Promise<void>((resolve) => res.write('', () => resolve()));
      res.destroy();
      return;
    }
    res.write(plan.script.token(sent, text));
    sent++;
  }
  plan.bill(sent);
  if (plan.closed()) return;
  for (const event of plan.script.tail(sent)) res.write(event);
  res.end();
}
