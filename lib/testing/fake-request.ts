/** Reading a request the way the fake provider does: its route, text length and override headers. */
import type { IncomingMessage } from 'node:http';
import type { Dialect, FakeEndpoint } from './wire';

/** Tokens of a text by the fake's own rule (the same for prompts): 4 characters a token. */
export function fakeTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

const SKIP_KEYS = new Set(['data', 'url', 'image_url', 'file_data', 'model', 'type', 'role', 'id', 'cache_control']);
function textLength(value: unknown, key = ''): number {
  if (typeof value === 'string') return SKIP_KEYS.has(key) ? 0 : value.length;
  if (Array.isArray(value)) return value.reduce<number>((n, v) => n + textLength(v, key), 0);
  if (typeof value === 'object' && value !== null) {
    let n = 0;
    for (const [k, v] of Object.entries(value)) n += textLength(v, k);
    return n;
  }
  return 0;
}

export function inputTextOf(endpoint: FakeEndpoint, body: Record<string, unknown>): number {
  switch (endpoint) {
    case 'messages':
    case 'count_tokens':
      return textLength(body.system) + textLength(body.messages) + (body.tools ? JSON.stringify(body.tools).length : 0);
    case 'chat':
      return textLength(body.messages) + (body.tools ? JSON.stringify(body.tools).length : 0);
    case 'responses':
      return textLength(body.instructions) + textLength(body.input) + (body.tools ? JSON.stringify(body.tools).length : 0);
    case 'embeddings':
      return textLength(body.input);
    case 'batches':
      return 0;
  }
}

export const ROUTES: Array<[string, FakeEndpoint, Dialect]> = [
  ['/v1/messages/count_tokens', 'count_tokens', 'anthropic'],
  ['/v1/messages', 'messages', 'anthropic'],
  ['/v1/chat/completions', 'chat', 'openai'],
  ['/v1/responses', 'responses', 'openai'],
  ['/v1/embeddings', 'embeddings', 'openai'],
];

export function headerNumber(req: IncomingMessage, name: string): number | undefined {
  const raw = req.headers[name];
  if (typeof raw !== 'string') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

export function headerFlag(req: IncomingMessage, name: string): boolean | undefined {
  const raw = req.headers[name];
  return typeof raw === 'string' ? raw === '1' || raw === 'true' : undefined;
}
