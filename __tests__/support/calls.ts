import { resolveConfig } from '../../lib/config/resolve';
import type { GuardOptions } from '../../lib/config/options';
import { CallContext } from '../../lib/pipeline';
import { ResponseTap } from '../../lib/internal/response-tap';
import { PriceBook } from '../../lib/money/prices';
import type { ProviderAdapter } from '../../lib/providers/adapter';
import { anthropicAdapter } from '../../lib/providers/anthropic';
import type { GuardScope } from '../../lib/scope-kinds';

let seq = 0;

/**
 * A call as a stage sees it, for testing one stage alone: the request parsed by the adapter,
 * the config resolved from `options` (no env), and an input weight of `inputTokens`.
 */
export function callContext(body: Record<string, unknown> | string, options: GuardOptions & { adapter?: ProviderAdapter; url?: string; method?: string; scope?: GuardScope; signal?: AbortSignal; inputTokens?: number } = {}): CallContext {
  const { adapter = anthropicAdapter, url = 'http://provider.test/v1/messages', method = 'POST', scope = {}, signal, inputTokens = 10, ...guardOptions } = options;
  const { config } = resolveConfig(guardOptions, {}, adapter.name);
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const init: RequestInit = { method, headers: { 'content-type': 'application/json' }, ...(method === 'GET' ? {} : { body: text }), ...(signal ? { signal } : {}) };
  return new CallContext({
    callId: ++seq,
    adapter,
    request: adapter.parseRequest(url, method, text),
    scope,
    signal,
    url,
    init,
    config,
    prices: new PriceBook(adapter.priceProvider, config.cost.prices, config.cost.unpricedModel),
    input: { current: () => inputTokens },
  });
}

/**
 * A successful JSON answer as the attempt step hands it on: tapped, so a stage that reads usage
 * from it (`tapOf(response)`) sees it once the body is read.
 */
export function tappedJson(ctx: CallContext, body: unknown, headers: Record<string, string> = {}): Response {
  const raw = new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json', ...headers } });
  return new ResponseTap(raw, {
    usageFromJson: (json) => ctx.adapter.usageFromJson(ctx.request, json),
    inputTokensEstimate: ctx.inputTokens,
    abortUpstream: () => {},
  }).response;
}

/** A provider's Anthropic message with this usage. */
export function anthropicReply(inputTokens: number, outputTokens: number) {
  return { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-haiku-4-5', content: [{ type: 'text', text: 'hi' }], usage: { input_tokens: inputTokens, output_tokens: outputTokens } };
}
