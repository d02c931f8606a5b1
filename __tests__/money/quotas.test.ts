import { BudgetExceededError, GuardConfigError, createGuardedClient, type GuardEventMap } from '../../lib';
import { MemoryLedger, type BudgetLine } from '../../lib/money/ledger';
import { calendarPeriod } from '../../lib/money/calendar';
import { CLAUDE, anthropicFor, hello, useFakeProvider, withEnv } from '../support/clients';

const fake = useFakeProvider();

describe('token quotas (BudgetRule.limitTokens)', () => {
  it("a workflow's 1,000 tokens per calendar day: the call that would cross it is refused, another workflow is served", async () => {
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', cost: { budgets: [{ scope: 'workflow', limitTokens: 1000, window: 'calendar-day' }], budgetWaitMs: 0 } });
    const digest = client.guard.withScope({ workflow: 'nightly-digest' });
    let served = 0;
    let refusal: unknown;
    for (let i = 0; i < 100 && !refusal; i++) {
      await digest.messages.create({ model: CLAUDE, max_tokens: 200, messages: hello }).then(
        () => served++,
        (e: unknown) => (refusal = e),
      );
    }
    expect(refusal).toBeInstanceOf(BudgetExceededError);
    const error = refusal as BudgetExceededError;
    expect(error).toMatchObject({ unit: 'tokens', key: 'workflow:nightly-digest', scope: 'workflow', limitTokens: 1000, stage: 'pre-call' });
    // Every billed token counts: what the provider billed is what the quota holds.
    const billed = fake().stats.billed.inputTokens + fake().stats.billed.outputTokens;
    expect(error.spentTokens).toBe(billed);
    expect(billed + error.estimatedTokens!).toBeGreaterThan(1000);
    expect(billed).toBeLessThanOrEqual(1000);
    expect(fake().stats.requests).toBe(served);
    // Room comes back at the next UTC midnight, and the refusal says so.
    const midnight = calendarPeriod('day', Date.now()).end;
    expect(error.message).toContain(new Date(midnight).toISOString());
    expect(error.retryAfterMs).toBeGreaterThan(midnight - Date.now() - 5000);
    await expect(client.guard.withScope({ workflow: 'support-bot' }).messages.create({ model: CLAUDE, max_tokens: 200, messages: hello })).resolves.toBeDefined();
    const row = client.guard.status().budgets.find((b) => b.key === 'workflow:nightly-digest')!;
    expect(row).toMatchObject({ unit: 'tokens', limitTokens: 1000, spentTokens: billed, window: 'calendar-day', resetsAt: new Date(midnight).toISOString() });
    expect(JSON.parse(JSON.stringify(row)).limitUsd).toBeNull(); // no dollar figure for a token quota
  });

  it('a soft quota warns once past warnAt and serves on', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', cost: { budgets: [{ scope: 'tenant', limitTokens: 100, enforcement: 'soft', warnAt: 0.5 }] } });
    const warnings: Array<GuardEventMap['budget:warning']> = [];
    client.guard.on('budget:warning', (e) => warnings.push(e));
    const acme = client.guard.withScope({ tenant: 'acme' });
    for (let i = 0; i < 8; i++) await acme.messages.create({ model: CLAUDE, max_tokens: 200, messages: hello });
    expect(fake().stats.requests).toBe(8);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ key: 'tenant:acme', unit: 'tokens', limitTokens: 100 });
    expect(warnings[0]!.spentTokens).toBeGreaterThanOrEqual(50);
  });

  it('a budget and a quota on the same scope both hold; a refusal names which one refused', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', cost: { budgets: [{ scope: 'user', limitUsd: 10 }, { scope: 'user', limitTokens: 300 }], budgetWaitMs: 0 } });
    const bob = client.guard.withScope({ user: 'bob' });
    const error = await bob.messages.create({ model: CLAUDE, max_tokens: 500, messages: hello }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'BudgetExceededError', unit: 'tokens', key: 'user:bob' });
    expect((error as Error).message).toMatch(/token quota user:bob: 300 tokens per calendar-day/);
    expect(fake().stats.requests).toBe(0);
  });

  it('clamp lowers max tokens to what a quota has left', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', cost: { onOverBudget: 'clamp', budgets: [{ scope: 'global', limitTokens: 120 }] } });
    await client.messages.create({ model: CLAUDE, max_tokens: 1000, messages: hello });
    expect(fake().records[0]!.maxTokens).toBeLessThan(120);
    expect(fake().records[0]!.maxTokens).toBeGreaterThanOrEqual(16);
  });

  it('from the environment: LLM_GUARD_QUOTA_<SCOPE>_TOKENS / _WINDOW', async () => {
    await withEnv({ LLM_GUARD_QUOTA_WORKFLOW_TOKENS: '5000', LLM_GUARD_QUOTA_WORKFLOW_WINDOW: 'calendar-week' }, async () => {
      const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent' });
      await client.guard.withScope({ workflow: 'w1' }).messages.create({ model: CLAUDE, max_tokens: 50, messages: hello });
      const row = client.guard.status().budgets.find((b) => b.key === 'workflow:w1')!;
      expect(row).toMatchObject({ unit: 'tokens', limitTokens: 5000, window: 'calendar-week', resetsAt: new Date(calendarPeriod('week', Date.now()).end).toISOString() });
      expect(client.guard.status().sources['cost.budgets.workflow.tokens']).toBe('LLM_GUARD_QUOTA_WORKFLOW_TOKENS');
    });
  });

  it('a rule with both limitUsd and limitTokens, or neither, is refused at creation, naming it', () => {
    const make = (rule: object) => () => createGuardedClient(anthropicFor(fake()), { cost: { budgets: [rule as never] } });
    expect(make({ scope: 'user', limitUsd: 1, limitTokens: 10 })).toThrow(GuardConfigError);
    expect(make({ scope: 'user', limitUsd: 1, limitTokens: 10 })).toThrow(/cost\.budgets\[0\].*both limitUsd and limitTokens/);
    expect(make({ scope: 'user' })).toThrow(/neither limitUsd nor limitTokens/);
    expect(make({ scope: 'user', limitTokens: 10, window: 'calendar-year' })).toThrow(/calendar-day/);
  });
});

describe('calendar windows (UTC)', () => {
  const line = (calendar: 'day' | 'week' | 'month'): BudgetLine => ({ key: 'k', unit: 'usd', limit: 1, windowMs: 86_400_000, calendar, hard: true });

  it.each([
    ['day', '2026-11-28T23:59:59.000Z', '2026-11-29T00:00:00.000Z'],
    ['week', '2026-11-29T23:59:59.000Z', '2026-11-30T00:00:00.000Z'], // Sunday → Monday
    ['month', '2026-11-30T23:59:59.000Z', '2026-12-01T00:00:00.000Z'],
    ['month', '2027-02-28T23:59:59.000Z', '2027-03-01T00:00:00.000Z'],
  ] as const)('calendar-%s: everything resets at the boundary (%s → %s)', (kind, before, after) => {
    let now = Date.parse(before);
    const ledger = new MemoryLedger(() => now);
    ledger.reserve('a', [line(kind)], 0.9);
    ledger.settle('a', 0.9);
    expect(ledger.reserve('b', [line(kind)], 0.2).ok).toBe(false);
    expect(ledger.states(['k'])[0]!.nextReleaseAt).toBe(Date.parse(after));
    now = Date.parse(after);
    expect(ledger.states(['k'])[0]!.spent).toBe(0);
    expect(ledger.reserve('c', [line(kind)], 0.9).ok).toBe(true);
  });

  it('a USD budget over a calendar month, as configured', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', cost: { budgets: [{ scope: 'tenant', limitUsd: 5, window: 'calendar-month' }] } });
    await client.guard.withScope({ tenant: 't' }).messages.create({ model: CLAUDE, max_tokens: 50, messages: hello });
    expect(client.guard.status().budgets.find((b) => b.key === 'tenant:t')).toMatchObject({ unit: 'usd', window: 'calendar-month', resetsAt: new Date(calendarPeriod('month', Date.now()).end).toISOString() });
  });
});
