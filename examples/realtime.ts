/**
 * A voice-style Realtime session with a $ cap: every response is charged from its usage (text,
 * audio, cached input), and the session is stopped — response cancelled, socket closed, an error
 * on the client — before it costs more than its cap. Runs against the bundled fake Realtime server.
 */
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { createGuardedClient, BudgetExceededError } from 'guarded-llm';
import { startFakeRealtime } from 'guarded-llm/testing';

export async function main(): Promise<void> {
  // 60 text tokens and 120 audio tokens a response: about $0.009 each on gpt-realtime.
  const fake = await startFakeRealtime({ outputTokens: 60, audioPerToken: 2, tokenDelayMs: 2 });
  console.log('(using the bundled fake Realtime server: Realtime needs a WebSocket, not the fake HTTP provider)\n');
  const openai = createGuardedClient(new OpenAI({ apiKey: 'sk-fake-key', baseURL: fake.openaiBaseURL }), {
    realtime: { maxSessionUsd: 0.03 },
  });
  openai.guard.on('cost', (e) => console.log(`  response charged $${e.usd.toFixed(5)} (${e.usage.inputTokens} in, ${e.usage.outputTokens} out)`));

  const rt = openai.guard.withScope({ user: 'alice' }).guard.realtime(new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { ca: fake.ca } }, openai));
  rt.on('error', (error) => {
    if (error instanceof BudgetExceededError) console.log(`session stopped by the guard: ${error.message}`);
    else console.log(`realtime error: ${error.message}`);
  });
  const closed = new Promise<void>((resolve) => rt.socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => rt.on('session.created', () => resolve()));

  for (let turn = 1; turn <= 10 && rt.socket.readyState === rt.socket.OPEN; turn++) {
    console.log(`turn ${turn}`);
    const done = new Promise<void>((resolve) => {
      rt.once('response.done', () => resolve());
      rt.socket.once('close', () => resolve());
    });
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `Tell me more (#${turn}).` }] } });
    rt.send({ type: 'response.create' });
    await done;
  }
  await closed;
  console.log(`\nthe server billed $${fake.stats.billedUsd.toFixed(5)}; the guard charged $${openai.guard.status().totals.costUsd.toFixed(5)} (cap $0.03)`);
  await openai.guard.close();
  await fake.close();
}

if (require.main === module) void main();
