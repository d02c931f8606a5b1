/** The kinds of scope a call can carry, listed once: budgets, per-scope limits and validation use them. */
export const SCOPE_KINDS = ['user', 'tenant', 'session', 'workflow'] as const;
export type ScopeKind = (typeof SCOPE_KINDS)[number];

/** Budgets may also apply to the whole guard. */
export const BUDGET_SCOPES = ['global', ...SCOPE_KINDS] as const;
export type BudgetScope = (typeof BUDGET_SCOPES)[number];

/**
 * Who a call is for: budgets and per-scope limits are keyed by these; `tier` picks its limits and
 * budgets; `priority` its place when calls queue (default 'normal').
 */
export type GuardScope = { [K in ScopeKind]?: string } & { tier?: string; priority?: 'high' | 'normal' | 'low' };

/** Everything a scope may carry. */
export const SCOPE_FIELDS = [...SCOPE_KINDS, 'tier', 'priority'] as const;
