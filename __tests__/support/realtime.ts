import type OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import type { FakeRealtime } from '../../lib/testing';

/** Anything with `.guard.realtime` (a guarded client or one of its scoped views). */
interface WithRealtime {
  guard: { realtime(rt: OpenAIRealtimeWS, options?: { maxSessionUsd?: number; maxDurationMs?: number }): OpenAIRealtimeWS };
}

/** Opens a realtime session through the SDK, as a user would; resolves once the server said hello. */
export async function openSession(fake: FakeRealtime, client: WithRealtime, model = 'gpt-realtime', options?: { maxSessionUsd?: number; maxDurationMs?: number }) {
  const rt = new OpenAIRealtimeWS({ model, options: { ca: fake.ca } }, client as unknown as OpenAI);
  const errors: unknown[] = [];
  rt.on('error', (e) => errors.push(e));
  client.guard.realtime(rt, options);
  const closed = new Promise<void>((resolve) => rt.socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    rt.on('session.created', () => resolve());
    rt.socket.once('error', reject);
  });
  return { rt, errors, closed };
}

/** Asks for one response and waits for its end: its response.done, or the socket closing. */
export function respond(rt: OpenAIRealtimeWS, text = 'Tell me a story.'): Promise<'done' | 'closed'> {
  let onDone!: () => void;
  return new Promise<'done' | 'closed'>((resolve) => {
    onDone = () => resolve('done');
    rt.on('response.done', onDone);
    if (rt.socket.readyState === rt.socket.CLOSED) return resolve('closed');
    rt.socket.once('close', () => resolve('closed'));
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
    rt.send({ type: 'response.create' });
  }).finally(() => rt.off('response.done', onDone));
}
