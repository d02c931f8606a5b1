/**
 * What a refusal or a cut says, as pure functions: the numbers that decided it, what was sent
 * (nothing, before a call), and what the caller can do.
 */

/** Dollars for people: 6 decimals under a cent, else 4. */
export const usd = (n: number) => `$${n.toFixed(n < 0.01 ? 6 : 4)}`;

export function callCapRefusal(p: {
  inputTokens: number;
  maxOutputTokens: number;
  model: string | undefined;
  worstUsd: number;
  capUsd: number;
  /** With onOverBudget 'clamp': how many output tokens would fit, and the floor. */
  clamp?: { fits: number; minOutputTokens: number };
}): string {
  return (
    `Refused before sending: the worst case of this call (${p.inputTokens} input + ${p.maxOutputTokens} output tokens of ${p.model} = ${usd(p.worstUsd)}) ` +
    `is over the per-call cap of ${usd(p.capUsd)} (cost.maxCostPerCallUsd).` +
    (p.clamp ?
      ` Clamping would leave ${Math.max(0, p.clamp.fits)} output tokens, under cost.minOutputTokens = ${p.clamp.minOutputTokens}.`
    : ' Lower max tokens, or set cost.onOverBudget = "clamp".')
  );
}

/** Tokens for people: 12,345 tokens. */
const tokens = (n: number) => `${Math.round(n).toLocaleString('en')} tokens`;

export function budgetRefusal(p: {
  stage: 'pre-call' | 'stream';
  unit: 'usd' | 'tokens';
  /** The call's worst case (pre-call) or its cost so far (stream), in the unit. */
  amount: number;
  key: string;
  limit: number;
  /** The window as people write it: '1h', 'calendar-day'. */
  window: string;
  spent: number;
  reserved: number;
  nextReleaseAt: number | undefined;
  waitedMs?: number;
}): string {
  const fmt = p.unit === 'usd' ? usd : tokens;
  const left = Math.max(0, p.limit - p.spent - p.reserved);
  const what = p.stage === 'pre-call' ? `Refused before sending: the worst case of this call (${fmt(p.amount)})` : `Stopped mid-stream: this call (${fmt(p.amount)} so far)`;
  const rule = p.unit === 'usd' ? `budget ${p.key}` : `token quota ${p.key}`;
  return (
    `${what} does not fit in ${rule}: ${fmt(p.limit)} per ${p.window}, ${fmt(p.spent)} spent and ${fmt(p.reserved)} reserved, ${fmt(left)} left.` +
    (p.waitedMs ? ` It waited ${p.waitedMs} ms for calls in flight to settle (cost.budgetWaitMs).` : '') +
    (p.nextReleaseAt ? ` Room comes back from ${new Date(p.nextReleaseAt).toISOString()}.` : '')
  );
}

export function streamCapCut(p: { costUsd: number; capUsd: number }): string {
  return `Stopped mid-stream: this call has cost ${usd(p.costUsd)} so far, over the per-call cap of ${usd(p.capUsd)} (cost.maxCostPerCallUsd). What was generated is charged.`;
}

export function postCallOverrun(p: { costUsd: number; capUsd: number }): string {
  return `This call cost ${usd(p.costUsd)}, over the per-call cap of ${usd(p.capUsd)} (cost.maxCostPerCallUsd): its usage was more than estimated. It was charged; the response is attached as \`response\`.`;
}

export function batchRequestCapRefusal(p: { id: string; worstUsd: number; inputTokens: number; outputTokens: number; model: string | undefined; capUsd: number }): string {
  return `Refused before sending: batch request "${p.id}" could cost ${usd(p.worstUsd)} at batch prices (${p.inputTokens} input + ${p.outputTokens} output tokens of ${p.model}), over the per-call cap of ${usd(p.capUsd)} (cost.maxCostPerCallUsd). Nothing was sent.`;
}
