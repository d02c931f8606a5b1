// Type tests, compiled by `npm run test:types` (tsc); nothing here runs.
import Anthropic from '@anthropic-ai/sdk';
import type { Message, RawMessageStreamEvent } from '@anthropic-ai/sdk/resources/messages';
import type { Stream as AnthropicStream } from '@anthropic-ai/sdk/core/streaming';
import OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { Stream as OpenAIStream } from 'openai/core/streaming';
import { expectTypeOf } from 'expect-type';
import { createGuardedClient, createGuardedFetch, runWithScope, type Guarded, type GuardController, type GuardStatus, type GuardedFetch, BudgetExceededError, isGuardError } from '../../lib';

declare const anthropic: Guarded<Anthropic>;
declare const openai: Guarded<OpenAI>;
const messages = [{ role: 'user' as const, content: 'hi' }];

// A guarded client is usable wherever the SDK client is.
function takesAnthropic(client: Anthropic): Anthropic {
  return client;
}
takesAnthropic(anthropic);
takesAnthropic(createGuardedClient(new Anthropic()));
expectTypeOf(createGuardedClient(new Anthropic())).toEqualTypeOf<Guarded<Anthropic>>();
expectTypeOf(createGuardedClient('anthropic')).toEqualTypeOf<Guarded<Anthropic>>();
expectTypeOf(createGuardedClient('openai')).toEqualTypeOf<Guarded<OpenAI>>();
expectTypeOf(anthropic.guard).toEqualTypeOf<GuardController<Anthropic>>();

// messages.create keeps its overloads (stream or not): the same types as the plain SDK's.
declare const plainAnthropic: Anthropic;
declare const plainOpenAI: OpenAI;
async function overloads() {
  const json = { model: 'm', max_tokens: 1, messages };
  expectTypeOf(anthropic.messages.create(json)).toEqualTypeOf(plainAnthropic.messages.create(json));
  expectTypeOf(anthropic.messages.create({ ...json, stream: true })).toEqualTypeOf(plainAnthropic.messages.create({ ...json, stream: true }));
  expectTypeOf(await anthropic.messages.create(json)).toExtend<Message>();
  expectTypeOf(await anthropic.messages.create(json)).not.toExtend<AnthropicStream<RawMessageStreamEvent>>();
  expectTypeOf(await anthropic.messages.create({ ...json, stream: true })).toExtend<AnthropicStream<RawMessageStreamEvent>>();
  expectTypeOf(await openai.chat.completions.create({ model: 'm', messages })).toExtend<ChatCompletion>();
  expectTypeOf(await openai.chat.completions.create({ model: 'm', messages, stream: true })).toExtend<OpenAIStream<ChatCompletionChunk>>();
  expectTypeOf(openai.chat.completions.create({ model: 'm', messages, stream: true })).toEqualTypeOf(plainOpenAI.chat.completions.create({ model: 'm', messages, stream: true }));
  const { data, response } = await anthropic.messages.create(json).withResponse();
  expectTypeOf(data).toExtend<Message>();
  expectTypeOf(response).toEqualTypeOf<Response>();
  // @ts-expect-error max_tokens is still required by the SDK's types
  await anthropic.messages.create({ model: 'm', messages });
}
void overloads;

// Scoped views keep the type; runWithScope returns what its function returns.
expectTypeOf(anthropic.guard.withScope({ user: 'u' })).toEqualTypeOf<Guarded<Anthropic>>();
expectTypeOf(runWithScope({ tenant: 't' }, () => 42)).toEqualTypeOf<number>();
// @ts-expect-error unknown scope keys are refused
anthropic.guard.withScope({ planet: 'x' });

// Events are typed by name.
anthropic.guard.on('cost', (e) => expectTypeOf(e.usd).toEqualTypeOf<number>());
anthropic.guard.on('breaker', (e) => expectTypeOf(e.state).toEqualTypeOf<'open' | 'half-open' | 'closed'>());
// @ts-expect-error no such event
anthropic.guard.on('nope', () => {});
expectTypeOf(anthropic.guard.on('request', () => {})).toEqualTypeOf<() => void>();
expectTypeOf(anthropic.guard.status()).toEqualTypeOf<GuardStatus>();

// Options are checked.
// @ts-expect-error jitter is one of 'full' | 'equal' | 'none'
createGuardedClient(new OpenAI(), { retry: { jitter: 'some' } });
createGuardedClient(new OpenAI(), { retry: 3, breaker: false, cost: { budgets: [{ scope: 'user', limitUsd: 5, window: '1d' }] } });

// Errors narrow.
declare const err: unknown;
if (isGuardError(err)) expectTypeOf(err.code).toEqualTypeOf<'rate_limited' | 'budget_exceeded' | 'circuit_open' | 'invalid_config' | 'unpriced_model' | 'shared_state_unavailable' | 'duration_exceeded'>();
if (err instanceof BudgetExceededError) expectTypeOf(err.stage).toEqualTypeOf<'pre-call' | 'stream' | 'post-call' | 'realtime'>();

// guard.realtime returns the realtime client it was given, same type.
declare const rt: import('openai/realtime/ws').OpenAIRealtimeWS;
expectTypeOf(createGuardedClient(new OpenAI()).guard.realtime(rt)).toEqualTypeOf<typeof rt>();
// @ts-expect-error it takes a realtime client, not any object
createGuardedClient(new OpenAI()).guard.realtime({});

// A guarded fetch is a fetch, with a guard whose scoped views are guarded fetches too.
const guardedFetch = createGuardedFetch('openai', { fetch: globalThis.fetch, limits: { maxConcurrent: 4 } });
expectTypeOf(guardedFetch).toMatchTypeOf<typeof fetch>();
expectTypeOf(guardedFetch.guard.withScope({ user: 'u' })).toEqualTypeOf<GuardedFetch>();
new OpenAI({ fetch: guardedFetch });
// @ts-expect-error the wire format is 'anthropic', 'openai' or an adapter
createGuardedFetch('gemini');

// Quotas, calendar windows and tiers are typed options.
createGuardedClient(new OpenAI(), {
  cost: { budgets: [{ scope: 'workflow', limitTokens: 1000, window: 'calendar-day' }] },
  tiers: { free: { perScope: { user: { requestsPerMinute: 2 } }, budgets: [{ scope: 'user', limitTokens: 2000 }] } },
  defaultTier: 'free',
});
anthropic.guard.withScope({ user: 'u', tier: 'pro' });
