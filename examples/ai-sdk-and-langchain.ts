/**
 * Any fetch-based client: the Vercel AI SDK and LangChain.js take a `fetch`; give them a guarded
 * one, and set their own retries to 0 (the guard is then the one retry authority).
 */
import { generateText, streamText } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { createGuardedFetch, isGuardError } from 'guarded-llm';
import { target } from './_provider';

export async function main(): Promise<void> {
  const where = await target('openai');
  const guardedFetch = createGuardedFetch('openai', { cost: { budgets: [{ scope: 'user', limitUsd: 0.001, window: '1d' }] } });
  guardedFetch.guard.on('cost', (e) => console.log(`  charged $${e.usd.toFixed(6)} (${e.usage.inputTokens} in, ${e.usage.outputTokens} out)`));

  // The Vercel AI SDK: one provider on the guarded fetch.
  const openai = createOpenAI({ ...where.clientOptions, fetch: guardedFetch });
  const { text } = await generateText({ model: openai.chat('gpt-4o-mini'), prompt: 'Say hi in five words.', maxRetries: 0 });
  console.log(`AI SDK generateText: ${text.trim()}`);
  const stream = streamText({ model: openai.chat('gpt-4o-mini'), prompt: 'Count to five.', maxRetries: 0 });
  let streamed = '';
  for await (const piece of stream.textStream) streamed += piece;
  console.log(`AI SDK streamText: ${streamed.trim()} (${(await stream.usage).outputTokens} output tokens)`);

  // LangChain.js: the same guard (one budget, one limiter) through the OpenAI SDK it uses.
  const chat = new ChatOpenAI({ model: 'gpt-4o-mini', maxRetries: 0, apiKey: where.clientOptions.apiKey, configuration: { baseURL: where.clientOptions.baseURL, fetch: guardedFetch } });
  console.log(`LangChain invoke: ${String((await chat.invoke('Say hi.')).content).trim()}`);

  // A user over their budget is refused before anything is sent, whichever client they came through.
  const alice = createOpenAI({ ...where.clientOptions, fetch: guardedFetch.guard.withScope({ user: 'alice' }) });
  try {
    for (let i = 0; i < 20; i++) await generateText({ model: alice.chat('gpt-4o-mini'), prompt: 'Write a long answer.', maxOutputTokens: 2000, maxRetries: 0 });
  } catch (error) {
    if (!isGuardError(error)) throw error;
    console.log(`alice: refused before sending (${(error as Error).message.slice(0, 80)}…)`);
  }
  console.log(`total charged: $${guardedFetch.guard.status().totals.costUsd.toFixed(6)}`);
  await guardedFetch.guard.close();
  await where.close();
}

if (require.main === module) void main();
