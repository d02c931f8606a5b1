import type { ResolvedBudgetRule, ResolvedConfig } from '../config/options';
import type { GuardScope } from '../scope-kinds';
import type { BudgetLine } from './ledger';

/** The budget key a rule charges for a scope, or undefined when the call has no such scope. */
export function budgetKey(rule: ResolvedBudgetRule, scope: Readonly<GuardScope>): string | undefined {
  if (rule.scope === 'global') return 'global';
  const id = scope[rule.scope];
  return id === undefined ? undefined : `${rule.scope}:${id}`;
}

/** The budgets a call in `scope` is charged to: global, and each scope it carries a budget for. */
export function budgetLines(config: ResolvedConfig, scope: Readonly<GuardScope>): BudgetLine[] {
  const lines: BudgetLine[] = [];
  for (const rule of config.cost.budgets) {
    const key = budgetKey(rule, scope);
    if (key) lines.push({ key, limitUsd: rule.limitUsd, windowMs: rule.window, hard: rule.enforcement === 'hard' });
  }
  return lines;
}
