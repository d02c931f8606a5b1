import type { ResolvedBudgetRule, ResolvedConfig, ResolvedTier } from '../config/options';
import { GuardConfigError } from '../errors';
import type { BudgetScope, GuardScope } from '../scope-kinds';
import type { BudgetLine } from './ledger';

/** What a rule counts: dollars (a budget) or tokens (a quota). */
export function ruleUnit(rule: ResolvedBudgetRule): 'usd' | 'tokens' {
  return rule.limitTokens !== undefined ? 'tokens' : 'usd';
}

/** A rule's limit in its unit. */
export function ruleLimit(rule: ResolvedBudgetRule): number {
  return rule.limitTokens ?? rule.limitUsd!;
}

/** A quota's ledger key: its scope key with this mark, apart from the same scope's budget. */
const QUOTA_MARK = '#tokens';

/** The budget key a rule charges for a scope ('global', 'user:alice'), or undefined when the call has no such scope. */
export function budgetKey(rule: ResolvedBudgetRule, scope: Readonly<GuardScope>): string | undefined {
  if (rule.scope === 'global') return 'global';
  const id = scope[rule.scope];
  return id === undefined ? undefined : `${rule.scope}:${id}`;
}

/** The ledger key of a rule's line (a quota's is marked: a scope may have a budget and a quota). */
export function ledgerKey(rule: ResolvedBudgetRule, key: string): string {
  return ruleUnit(rule) === 'tokens' ? key + QUOTA_MARK : key;
}

/** A ledger key as people read it, and its unit. */
export function shownKey(ledgerKey: string): { key: string; unit: 'usd' | 'tokens' } {
  return ledgerKey.endsWith(QUOTA_MARK) ? { key: ledgerKey.slice(0, -QUOTA_MARK.length), unit: 'tokens' } : { key: ledgerKey, unit: 'usd' };
}

/** The scope kind of a budget key as people read it ('global', 'user:alice' → 'user'). */
export function scopeOfKey(key: string): BudgetScope {
  return key === 'global' ? 'global' : (key.slice(0, key.indexOf(':')) as BudgetScope);
}

/**
 * The tier a call in `scope` runs in: its own (`scope.tier`), else `defaultTier`, else none. An
 * unknown tier is refused before anything is sent.
 */
export function tierOf(config: ResolvedConfig, scope: Readonly<GuardScope>): ResolvedTier | undefined {
  const name = scope.tier ?? config.defaultTier;
  if (name === undefined) return undefined;
  const tier = config.tiers[name];
  if (!tier) {
    const known = Object.keys(config.tiers);
    throw new GuardConfigError('scope.tier', JSON.stringify(name), known.length ? `one of the tiers: ${known.join(', ')}` : 'no tier (none is defined in `tiers`)', 'argument');
  }
  return tier;
}

/** The rules a call is charged to: the global ones always, then its tier's scope rules (or the top-level ones). */
export function rulesFor(config: ResolvedConfig, tier: ResolvedTier | undefined): ResolvedBudgetRule[] {
  if (!tier?.budgets) return config.cost.budgets;
  return [...config.cost.budgets.filter((r) => r.scope === 'global'), ...tier.budgets];
}

/**
 * Lines of rule lists that name no scope (the global budget and quota), built once per list: they
 * are the same for every call (the list lives as long as its config).
 */
const scopeFreeLines = new WeakMap<readonly ResolvedBudgetRule[], readonly BudgetLine[]>();

/** The budgets and quotas a call in `scope` is charged to, as ledger lines (shared, never to be changed). */
export function budgetLines(config: ResolvedConfig, scope: Readonly<GuardScope>, tier: ResolvedTier | undefined): readonly BudgetLine[] {
  const rules = rulesFor(config, tier);
  const cached = scopeFreeLines.get(rules);
  if (cached) return cached;
  const lines: BudgetLine[] = [];
  for (const rule of rules) {
    const key = budgetKey(rule, scope);
    if (key) lines.push(lineOf(rule, key));
  }
  if (rules === config.cost.budgets && rules.every((r) => r.scope === 'global')) scopeFreeLines.set(rules, Object.freeze(lines));
  return lines;
}

function lineOf(rule: ResolvedBudgetRule, key: string): BudgetLine {
  return {
    key: ledgerKey(rule, key),
    unit: ruleUnit(rule),
    limit: ruleLimit(rule),
    windowMs: rule.window,
    ...(rule.calendar ? { calendar: rule.calendar } : {}),
    hard: rule.enforcement === 'hard',
    ...(rule.warnAt !== undefined ? { warnAt: rule.warnAt } : {}),
  };
}
