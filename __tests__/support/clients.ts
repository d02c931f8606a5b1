import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startFakeProvider, type FakeProvider, type FakeProviderOptions } from '../../lib/testing';

/** Keys the tests use; the secrecy tests look for them in every output. */
export const ANTHROPIC_KEY = 'sk-ant-test-0123456789abcdef';
export const OPENAI_KEY = 'sk-test-0123456789abcdef';

export const CLAUDE = 'claude-sonnet-4-6';
export const GPT = 'gpt-4o';

export function anthropicFor(fake: FakeProvider, options: ConstructorParameters<typeof Anthropic>[0] = {}): Anthropic {
  return new Anthropic({ apiKey: ANTHROPIC_KEY, baseURL: fake.anthropicBaseURL, ...options });
}

export function openaiFor(fake: FakeProvider, options: ConstructorParameters<typeof OpenAI>[0] = {}): OpenAI {
  return new OpenAI({ apiKey: OPENAI_KEY, baseURL: fake.openaiBaseURL, ...options });
}

/** One fake provider per test file, reset before each test. */
export function useFakeProvider(options?: FakeProviderOptions): () => FakeProvider {
  let fake: FakeProvider | undefined;
  beforeAll(async () => {
    fake = await startFakeProvider(options);
  });
  beforeEach(() => {
    fake!.reset();
    const { port: _port, ...behaviour } = options ?? {};
    fake!.configure({ outputTokens: 16, tokenDelayMs: 0, latencyMs: 0, extraInputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, omitUsage: false, limits: {}, ...behaviour });
  });
  afterAll(async () => {
    await fake?.close();
  });
  return () => fake!;
}

/** Runs `fn` with env vars set, restoring them after. */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T | Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

export const hello = [{ role: 'user' as const, content: 'Hello there, how are you?' }];

/** Reads an OpenAI chat stream until `chunks` chunks carried text, then breaks out of the loop (as users stop a stream). */
export async function breakAfter(stream: AsyncIterable<{ choices: Array<{ delta?: { content?: string | null } }> }>, chunks: number): Promise<void> {
  let seen = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) seen++;
    if (seen === chunks) break;
  }
}
