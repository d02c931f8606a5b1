import { calcPrice } from '@pydantic/genai-prices';
import { BudgetExceededError } from '../../lib';
import { GuardEmitter } from '../../lib/events';
import { BatchCostStage } from '../../lib/stages/batch-cost';
import { MemoryLedger } from '../../lib/money/ledger';
import { CostAccount } from '../../lib/money/cost-account';
import { UnpricedModels } from '../../lib/money/unpriced';
import { callContext } from '../support/calls';

const HAIKU = 'claude-haiku-4-5';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const BATCHES = 'http://provider.test/v1/messages/batches';
const batchPrice = (input: number, output: number) => calcPrice({ input_tokens: input, output_tokens: output }, HAIKU, { providerId: 'anthropic' })!.total_price / 2;

function batchStage() {
  const emitter = new GuardEmitter(() => {});
  const ledger = new MemoryLedger();
  let charged = 0;
  const stage = new BatchCostStage({ ledger, account: new CostAccount({ emitter, charge: (usd) => void (charged += usd) }), unpriced: new UnpricedModels(() => silent), logger: () => silent });
  return { stage, ledger, charged: () => charged };
}

const request = (id: string, maxTokens: number) => ({ custom_id: id, params: { model: HAIKU, max_tokens: maxTokens, messages: [{ role: 'user', content: 'Hi' }] } });
const budgets = { cost: { budgets: [{ scope: 'global' as const, limitUsd: 1 }] } };

describe('BatchCostStage alone', () => {
  it('charges a batch its worst case at batch prices when accepted, and trues it up when its results are read', async () => {
    const { stage, ledger, charged } = batchStage();
    const create = callContext({ requests: [request('a', 1000), request('b', 1000)] }, { ...budgets, url: BATCHES });
    await stage.run(create, async () => new Response(JSON.stringify({ id: 'msgbatch_1', type: 'message_batch' })));
    const worst = ledger.states(['global'])[0]!.spent;
    expect(worst).toBeGreaterThan(2 * batchPrice(1, 1000));
    expect(charged()).toBeCloseTo(worst, 12);

    const results = [
      { custom_id: 'a', result: { type: 'succeeded', message: { model: HAIKU, usage: { input_tokens: 9, output_tokens: 40 } } } },
      { custom_id: 'b', result: { type: 'errored', error: { type: 'invalid_request_error' } } },
    ];
    const read = callContext('', { ...budgets, url: `${BATCHES}/msgbatch_1/results`, method: 'GET' });
    await stage.run(read, async () => new Response(results.map((r) => JSON.stringify(r)).join('\n')));
    await new Promise((r) => setTimeout(r, 20));
    expect(ledger.states(['global'])[0]!.spent).toBeCloseTo(batchPrice(9, 40), 12);
    expect(charged()).toBeCloseTo(batchPrice(9, 40), 12);
  });

  it('refuses a batch with one request over the per-call cap, naming it; nothing is sent', async () => {
    const { stage } = batchStage();
    const next = jest.fn();
    const ctx = callContext({ requests: [request('small', 10), request('huge', 200_000)] }, { url: BATCHES, cost: { maxCostPerCallUsd: 0.05 } });
    const error = await stage.run(ctx, next).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect((error as Error).message).toContain('"huge"');
    expect(next).not.toHaveBeenCalled();
  });

  it('passes other calls through untouched', async () => {
    const { stage } = batchStage();
    const ctx = callContext({ model: HAIKU, max_tokens: 10, messages: [] });
    const next = jest.fn(async () => new Response('{}'));
    await stage.run(ctx, next);
    expect(next).toHaveBeenCalledWith(ctx);
  });
});
