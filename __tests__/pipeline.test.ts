import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { GuardConfigError, createGuardedClient, runWithScope, type GuardEventMap } from '../lib';
import { compose, type Stage } from '../lib/pipeline';
import { callContext } from './support/calls';
import type { Logger } from '../lib/logger';
import { CLAUDE, GPT, anthropicFor, breakAfter, hello, openaiFor, useFakeProvider } from './support/clients';
import { until } from './support/arrivals';

const fake = useFakeProvider();

describe('compose', () => {
  test('the first stage is outermost: a(b(result))', async () => {
    const trace = (name: string): Stage => ({
      name,
      async run(ctx, next) {
        const response = await next(ctx);
        return new Response(`${name}(${await response.text()})`);
      },
    });
    const run = compose([trace('a'), trace('b')], async () => new Response('result'));
    const ctx = callContext('{}');
    expect(await (await run(ctx)).text()).toBe('a(b(result))');
  });
});

describe('scope propagation', () => {
  function requestScopes(client: { guard: { on: (e: 'request', l: (p: GuardEventMap['request']) => void) => () => void } }) {
    const scopes: Array<GuardEventMap['request']['scope']> = [];
    client.guard.on('request', (e) => scopes.push(e.scope));
    return scopes;
  }

  test('guard.withScope() attaches a scope to every call of the view, and views nest', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const scopes = requestScopes(client);
    const alice = client.guard.withScope({ user: 'alice' });
    const aliceSession = alice.guard.withScope({ session: 's-1' });
    await client.messages.create({ model: CLAUDE, max_tokens: 2, messages: hello });
    await alice.messages.create({ model: CLAUDE, max_tokens: 2, messages: hello });
    await aliceSession.messages.stream({ model: CLAUDE, max_tokens: 2, messages: hello }).finalMessage();
    expect(scopes).toEqual([{}, { user: 'alice' }, { user: 'alice', session: 's-1' }]);
    expect(aliceSession.guard.scope).toEqual({ user: 'alice', session: 's-1' });
    expect(alice).toBeInstanceOf(Anthropic);
  });

  test('runWithScope() carries the scope through async code, concurrent calls keep their own', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const scopes = requestScopes(client);
    const call = (user: string) =>
      runWithScope({ user, tenant: 'acme' }, async () => {
        await new Promise((r) => setTimeout(r, user === 'a' ? 20 : 1));
        return client.chat.completions.create({ model: GPT, messages: hello });
      });
    await Promise.all([call('a'), call('b')]);
    expect(scopes).toEqual([
      { user: 'b', tenant: 'acme' },
      { user: 'a', tenant: 'acme' },
    ]);
  });

  test('a view scope is merged over the async scope', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const scopes = requestScopes(client);
    await runWithScope({ tenant: 't1', user: 'outer' }, () =>
      client.guard.withScope({ user: 'inner' }).chat.completions.create({ model: GPT, messages: hello }),
    );
    expect(scopes).toEqual([{ tenant: 't1', user: 'inner' }]);
  });

  test('a bad scope is refused with a clear error', () => {
    const client = createGuardedClient(openaiFor(fake()));
    expect(() => client.guard.withScope({ user: '' })).toThrow(GuardConfigError);
    expect(() => client.guard.withScope({ planet: 'x' } as never)).toThrow(/one of user, tenant, session, workflow/);
    expect(() => runWithScope({ user: 42 } as never, () => 1)).toThrow(/scope.user/);
  });
});

describe('AbortSignal propagation', () => {
  test("the caller's abort stops the request on the wire and reaches the user as the SDK's abort error", async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    fake().fault({ kind: 'hang' });
    const controller = new AbortController();
    const pending = client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello }, { signal: controller.signal });
    while (fake().stats.inFlight === 0) await new Promise((r) => setTimeout(r, 2));
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);
    await fake().idle();
    expect(fake().records[0]!.clientClosed).toBe(true);
  });

  test('breaking out of a stream stops the upstream generation (the provider bills only what it sent)', async () => {
    const client = createGuardedClient(openaiFor(fake()), {});
    fake().configure({ outputTokens: 200, tokenDelayMs: 5 });
    const stream = await client.chat.completions.create({ model: GPT, messages: hello, stream: true, stream_options: { include_usage: true } });
    await breakAfter(stream, 3);
    await fake().idle();
    expect(fake().records[0]!.clientClosed).toBe(true);
    expect(fake().records[0]!.outputTokens).toBeLessThan(50);
  });

  test("the caller's abort in the middle of a stream stops the provider; what it sent is charged and the slot is free", async () => {
    const client = createGuardedClient(openaiFor(fake()));
    fake().configure({ outputTokens: 200, tokenDelayMs: 5 });
    const stream = await client.chat.completions.create({ model: GPT, messages: hello, stream: true, stream_options: { include_usage: true } });
    let seen = 0;
    const read = (async () => {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content) seen++;
        if (seen === 3) stream.controller.abort();
      }
    })();
    // The SDK ends the iteration quietly on its user's abort, as without the guard.
    await read;
    expect(seen).toBe(3);
    await fake().idle();
    expect(fake().records[0]!.clientClosed).toBe(true);
    expect(fake().records[0]!.outputTokens).toBeLessThan(50);
    await until(() => client.guard.status().totals.costUsd > 0);
    expect(client.guard.status().limiter.running).toBe(0);
  });

  test("the SDK's own timeout ends the attempt with the same error class as the plain SDK", async () => {
    // (Under jest the class is APIConnectionError, as for the plain SDK: jest's realm hides
    // DOMException from the SDK's instanceof check. Outside jest both give APIConnectionTimeoutError.)
    const errorOf = async (c: OpenAI) => {
      fake().fault({ kind: 'hang' });
      return c.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    };
    const plain = await errorOf(openaiFor(fake(), { timeout: 50, maxRetries: 0 }));
    const guarded = await errorOf(createGuardedClient(openaiFor(fake(), { timeout: 50 }), { retry: 0 }));
    expect(plain).toBeInstanceOf(OpenAI.APIConnectionError);
    expect((guarded as object).constructor).toBe((plain as object).constructor);
    await fake().idle();
    expect(fake().records.map((r) => r.clientClosed)).toEqual([true, true]);
  });
});

describe('events', () => {
  test('a listener that throws never fails the call, and is logged', async () => {
    const errors: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (_f, message) => errors.push(message) };
    const client = createGuardedClient(openaiFor(fake()), { logger });
    client.guard.on('request', () => {
      throw new Error('listener bug');
    });
    const completion = await client.chat.completions.create({ model: GPT, messages: hello });
    expect(completion.choices).toHaveLength(1);
    expect(errors).toEqual(['a guard event listener threw; the call went on']);
  });

  test('on() returns a disposer', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    let count = 0;
    const off = client.guard.on('request', () => count++);
    await client.chat.completions.create({ model: GPT, messages: hello });
    off();
    await client.chat.completions.create({ model: GPT, messages: hello });
    expect(count).toBe(1);
  });

  test('request and response events carry what a caller needs and no secrets', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const seen: unknown[] = [];
    client.guard.on('request', (e) => seen.push(e));
    client.guard.on('response', (e) => seen.push(e));
    await client.messages.create({ model: CLAUDE, max_tokens: 4, messages: hello });
    expect(seen[0]).toMatchObject({ provider: 'anthropic', model: CLAUDE, endpoint: 'messages', stream: false, maxOutputTokens: 4 });
    expect(seen[1]).toMatchObject({ status: 200, attempts: 1, usage: { outputTokens: 4 } });
    expect(JSON.stringify(seen)).not.toContain('sk-ant');
  });
});
