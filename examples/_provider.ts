/**
 * Where the examples send their calls: the real API when its key is set in the environment,
 * else the fake provider bundled in `guarded-llm/testing` (offline, same wire format).
 */
import { startFakeProvider } from 'guarded-llm/testing';

export interface Target {
  /** Options for `new Anthropic(...)` / `new OpenAI(...)`. */
  clientOptions: { apiKey?: string; baseURL?: string };
  live: boolean;
  close(): Promise<void>;
}

export async function target(provider: 'anthropic' | 'openai'): Promise<Target> {
  const key = provider === 'anthropic' ? process.env.ANTHROPIC_API_KEY : process.env.OPENAI_API_KEY;
  if (key) return { clientOptions: {}, live: true, close: async () => {} };
  // A little latency and per-token pacing, so streams look like streams.
  const fake = await startFakeProvider({ latencyMs: 80, tokenDelayMs: 8, outputTokens: 24, limits: { requestsPerMinute: 600 } });
  console.log(`(no ${provider === 'anthropic' ? 'ANTHROPIC_API_KEY' : 'OPENAI_API_KEY'}: using the bundled fake provider at ${fake.url})\n`);
  return {
    clientOptions: { apiKey: 'sk-fake-key', baseURL: provider === 'anthropic' ? fake.anthropicBaseURL : fake.openaiBaseURL },
    live: false,
    close: () => fake.close(),
  };
}
