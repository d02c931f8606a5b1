import type { ProviderAdapter } from './adapter';
import { anthropicAdapter } from './anthropic';
import { openaiAdapter } from './openai';
import { GuardConfigError, describeValue } from '../errors';

export const BUILT_IN_ADAPTERS: Readonly<Record<'anthropic' | 'openai', ProviderAdapter>> = {
  anthropic: anthropicAdapter,
  openai: openaiAdapter,
};

function isAdapter(value: unknown): value is ProviderAdapter {
  const a = value as ProviderAdapter;
  return (
    typeof value === 'object' && value !== null && typeof a.name === 'string' && typeof a.parseRequest === 'function' &&
    typeof a.usageFromJson === 'function' && typeof a.createStreamUsageReader === 'function' &&
    typeof a.classifyError === 'function' && typeof a.retryAfterMs === 'function' &&
    typeof a.rateLimits === 'function' && typeof a.withMaxOutputTokens === 'function'
  );
}

/** The adapter for a client: the `provider` option when given, else recognised from the client's shape. */
export function resolveAdapter(client: object, provider: unknown): ProviderAdapter {
  if (provider !== undefined) {
    if (provider === 'anthropic' || provider === 'openai') return BUILT_IN_ADAPTERS[provider];
    if (isAdapter(provider)) return provider;
    throw new GuardConfigError('provider', describeValue(provider), '"anthropic", "openai" or a ProviderAdapter object');
  }
  const c = client as Record<string, unknown>;
  const chat = c.chat as Record<string, unknown> | undefined;
  if (chat && typeof chat === 'object' && 'completions' in chat) return openaiAdapter;
  const messages = c.messages as Record<string, unknown> | undefined;
  if (messages && typeof messages === 'object' && typeof messages.create === 'function') return anthropicAdapter;
  throw new GuardConfigError(
    'client',
    `a ${c.constructor?.name ?? typeof client} that is neither an Anthropic nor an OpenAI client`,
    'an Anthropic or OpenAI SDK client, or the `provider` option set to a ProviderAdapter',
    'argument',
  );
}
