import { calcPrice } from '@pydantic/genai-prices';
import { BudgetExceededError, UnpricedModelError } from '../../lib';
import { GuardEmitter, type GuardEventMap } from '../../lib/events';
import { CostGuardStage } from '../../lib/stages/cost-guard';
import { MemoryLedger } from '../../lib/money/ledger';
import { CostAccount } from '../../lib/money/cost-account';
import { UnpricedModels } from '../../lib/money/unpriced';
import type { CallContext } from '../../lib/pipeline';
import { anthropicReply, callContext, tappedJson } from '../support/calls';

const HAIKU = 'claude-haiku-4-5';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const price = (input: number, output: number) => calcPrice({ input_tokens: input, output_tokens: output }, HAIKU, { providerId: 'anthropic' })!.total_price;

/** The cost guard alone, over an in-memory ledger, with what it emitted and charged. */
function costGuard() {
  const emitter = new GuardEmitter(() => {});
  const ledger = new MemoryLedger();
  let charged = 0;
  const stage = new CostGuardStage({ ledger, account: new CostAccount({ emitter, charge: (usd) => void (charged += usd) }), unpriced: new UnpricedModels(() => silent), emitter, logger: () => silent });
  const costs: Array<GuardEventMap['cost']> = [];
  emitter.on('cost', (e) => costs.push(e));
  return { stage, ledger, emitter, costs, charged: () => charged };
}

describe('CostGuardStage alone (a stub for the rest of the pipeline)', () => {
  it('refuses a call over the per-call cap before anything inner runs', async () => {
    const { stage } = costGuard();
    const next = jest.fn();
    const ctx = callContext({ model: HAIKU, max_tokens: 100_000, messages: [] }, { cost: { maxCostPerCallUsd: 0.01 } });
    await expect(stage.run(ctx, next)).rejects.toMatchObject({ name: 'BudgetExceededError', stage: 'pre-call', key: 'call' });
    expect(next).not.toHaveBeenCalled();
  });

  it('clamps by passing a new request inward: the inner stages see the lower max tokens, the caller’s context is untouched', async () => {
    const { stage } = costGuard();
    const ctx = callContext({ model: HAIKU, max_tokens: 100_000, messages: [] }, { cost: { maxCostPerCallUsd: 0.01, onOverBudget: 'clamp' } });
    let inner: CallContext | undefined;
    await stage.run(ctx, async (c) => {
      inner = c;
      return new Response('{}', { status: 400 });
    });
    const fits = Math.floor((0.01 - price(10, 0)) / price(0, 1));
    expect(inner!.request.maxOutputTokens).toBe(fits);
    expect(JSON.parse(inner!.init.body as string).max_tokens).toBe(fits);
    expect(ctx.request.maxOutputTokens).toBe(100_000);
    expect(JSON.parse(ctx.init.body as string).max_tokens).toBe(100_000);
  });

  it('reserves the worst case, then settles the reported usage once the body is read', async () => {
    const { stage, ledger, costs, charged } = costGuard();
    const ctx = callContext({ model: HAIKU, max_tokens: 200, messages: [] }, { cost: { budgets: [{ scope: 'global', limitUsd: 1 }] }, inputTokens: 10 });
    let reservedDuring = 0;
    const response = await stage.run(ctx, async (c) => {
      reservedDuring = ledger.states(['global'])[0]!.reserved;
      return tappedJson(c, anthropicReply(12, 30));
    });
    expect(reservedDuring).toBeCloseTo(price(10, 200), 12);
    await response.json();
    expect(ledger.states(['global'])[0]).toMatchObject({ reserved: 0 });
    expect(ledger.states(['global'])[0]!.spent).toBeCloseTo(price(12, 30), 12);
    expect(costs).toHaveLength(1);
    expect(charged()).toBeCloseTo(price(12, 30), 12);
    expect(ctx.report.costUsd).toBeCloseTo(price(12, 30), 12);
  });

  it('releases the reservation when the answer is an error or nothing came back', async () => {
    const { stage, ledger } = costGuard();
    const options = { cost: { budgets: [{ scope: 'global' as const, limitUsd: 1 }] } };
    await stage.run(callContext({ model: HAIKU, max_tokens: 200, messages: [] }, options), async () => new Response('{}', { status: 500 }));
    await expect(stage.run(callContext({ model: HAIKU, max_tokens: 200, messages: [] }, options), async () => Promise.reject(new Error('connection reset')))).rejects.toThrow('connection reset');
    expect(ledger.states(['global'])[0]).toMatchObject({ spent: 0, reserved: 0 });
  });

  it('a call a budget refuses sends nothing; with budgetWaitMs 0 at once', async () => {
    const { stage } = costGuard();
    const next = jest.fn();
    const ctx = callContext({ model: HAIKU, max_tokens: 1000, messages: [] }, { cost: { budgets: [{ scope: 'user', limitUsd: 0.001 }], budgetWaitMs: 0 }, scope: { user: 'alice' } });
    const error = await stage.run(ctx, next).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(error).toMatchObject({ key: 'user:alice', stage: 'pre-call' });
    expect(next).not.toHaveBeenCalled();
  });

  it("an unpriced model under unpricedModel 'reject' is refused before anything inner runs", async () => {
    const { stage } = costGuard();
    const next = jest.fn();
    await expect(stage.run(callContext({ model: 'my-own-model', max_tokens: 10, messages: [] }, { cost: { unpricedModel: 'reject' } }), next)).rejects.toBeInstanceOf(UnpricedModelError);
    expect(next).not.toHaveBeenCalled();
  });

  it('passes a call that is not billed straight through', async () => {
    const { stage } = costGuard();
    const ctx = callContext({ model: HAIKU, messages: [] }, { url: 'http://provider.test/v1/messages/count_tokens' });
    const next = jest.fn(async () => new Response('{"input_tokens":3}'));
    await stage.run(ctx, next);
    expect(next).toHaveBeenCalledWith(ctx);
  });
});
