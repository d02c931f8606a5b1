// The Vercel AI SDK 7 (ESM only, Node 22+) through createGuardedFetch, run as users run it: a
// plain Node ESM program (jest cannot require ESM here). Prints one JSON report for
// ai-sdk-7.test.ts, which checks it.
import { generateText, streamText } from 'ai-v7';
import { createOpenAI } from 'ai-sdk-openai-v4';
import { createAnthropic } from 'ai-sdk-anthropic-v4';
import { createGuardedFetch, guardErrorToHttp, isGuardError, type GuardedFetch } from '../../lib/index.js';
import { startFakeProvider } from '../../lib/testing/index.js';

const fake = await startFakeProvider({ outputTokens: 30 });
const report: Record<string, unknown> = {};

async function check(name: string, guarded: GuardedFetch, model: Parameters<typeof generateText>[0]['model']): Promise<void> {
  let charged = 0;
  let charges = 0;
  guarded.guard.on('cost', (e) => {
    charged += e.usd;
    charges++;
  });
  fake.reset();
  const json = await generateText({ model, prompt: 'Hello there', maxOutputTokens: 30, maxRetries: 0 });
  let streamed = '';
  for await (const part of streamText({ model, prompt: 'Hello there', maxOutputTokens: 30, maxRetries: 0 }).textStream) streamed += part;
  report[name] = {
    jsonText: json.text.length,
    streamText: streamed.length,
    charges,
    charged,
    billed: fake.stats.billed.usd,
    endpoints: fake.records.map((r) => r.endpoint),
    running: guarded.guard.status().limiter.running,
  };
  await guarded.guard.close();
}

const openaiFetch = createGuardedFetch('openai', { logLevel: 'silent' });
const openai = createOpenAI({ baseURL: fake.openaiBaseURL, apiKey: 'sk-test', fetch: openaiFetch });
await check('openai responses', openaiFetch, openai('gpt-4o'));
const chatFetch = createGuardedFetch('openai', { logLevel: 'silent' });
await check('openai chat', chatFetch, createOpenAI({ baseURL: fake.openaiBaseURL, apiKey: 'sk-test', fetch: chatFetch }).chat('gpt-4o'));
const anthropicFetch = createGuardedFetch('anthropic', { logLevel: 'silent' });
await check('anthropic', anthropicFetch, createAnthropic({ baseURL: `${fake.anthropicBaseURL}/v1`, apiKey: 'sk-ant-test', fetch: anthropicFetch })('claude-sonnet-4-6'));

// A user's budget refuses before anything is sent; the error is the guard's, under the AI SDK's wrapping.
fake.reset();
const budgeted = createGuardedFetch('openai', { logLevel: 'silent', cost: { budgets: [{ scope: 'user', limitUsd: 0.0001 }], budgetWaitMs: 0 } });
const alice = createOpenAI({ baseURL: fake.openaiBaseURL, apiKey: 'sk-test', fetch: budgeted.guard.withScope({ user: 'alice' }) });
const refused = await generateText({ model: alice.chat('gpt-4o'), prompt: 'Hello', maxOutputTokens: 1000, maxRetries: 0 }).catch((e: unknown) => e);
report.refused = { guardError: isGuardError(refused), status: guardErrorToHttp(refused).status, requests: fake.stats.requests };
await budgeted.guard.close();
await fake.close();
console.log(JSON.stringify(report));
