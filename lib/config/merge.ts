import type { GuardOptions } from './options';

/** Deep-merges option objects (arrays and class instances are replaced, not merged). */
export function mergeOptions(base: GuardOptions, patch: GuardOptions): GuardOptions {
  const isPlain = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
  const merge = (a: unknown, b: unknown): unknown => {
    if (!isPlain(a) || !isPlain(b)) return b === undefined ? a : b;
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
    return out;
  };
  const normalisedBase: GuardOptions = { ...base, retry: typeof base.retry === 'number' ? { retries: base.retry } : base.retry };
  const normalisedPatch: GuardOptions = { ...patch, retry: typeof patch.retry === 'number' ? { retries: patch.retry } : patch.retry };
  return merge(normalisedBase, normalisedPatch) as GuardOptions;
}
