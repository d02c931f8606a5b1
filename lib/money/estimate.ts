/**
 * A fast, offline estimate of input tokens, made before a request is sent. It leans high:
 * the budget reserves against it, and an under-estimate is what lets a budget overshoot.
 */

// Tokens an image costs when its size is unknown: a full-size Claude image (1568 px side ≈ 1600
// tokens) and OpenAI's high-detail 1024² tile count (765), rounded up.
const IMAGE_TOKENS = 1600;
const DOCUMENT_TOKENS_PER_BASE64_CHAR = 1 / 3; // PDFs: a page ≈ 1.5–3k tokens, ≈ 100 kB base64
const MESSAGE_OVERHEAD = 4;

/**
 * Tokens of a piece of text, unrounded (so that many small stream deltas add up right):
 * ~4 characters per token for Latin text, 1 per CJK character.
 */
export function textTokenWeight(text: string): number {
  let wide = 0;
  let punct = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x2e80) wide++;
    else if (c < 0x80 && !((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 32)) punct++;
  }
  // Punctuation and symbols split words into extra tokens (code, JSON): count them at half.
  return (n - wide - punct) / 4 + punct / 2 + wide;
}

/** Tokens of a piece of text, rounded up. */
export function estimateTextTokens(text: string): number {
  return Math.ceil(textTokenWeight(text));
}

type Json = unknown;

function contentTokens(content: Json): number {
  if (typeof content === 'string') return estimateTextTokens(content);
  if (Array.isArray(content)) {
    let total = 0;
    for (const part of content) total += partTokens(part);
    return total;
  }
  return 0;
}

function partTokens(part: Json): number {
  if (typeof part === 'string') return estimateTextTokens(part);
  if (typeof part !== 'object' || part === null) return 0;
  const p = part as Record<string, Json>;
  switch (p.type) {
    case 'text':
    case 'input_text':
    case 'output_text':
      return estimateTextTokens(String(p.text ?? ''));
    case 'image':
    case 'image_url':
    case 'input_image':
      return IMAGE_TOKENS;
    case 'document':
    case 'file':
    case 'input_file': {
      const source = (p.source ?? p.file ?? p) as Record<string, Json>;
      const data = source.data ?? source.file_data;
      if (typeof data === 'string') {
        return source.media_type === 'text/plain' ? estimateTextTokens(data) : Math.ceil(data.length * DOCUMENT_TOKENS_PER_BASE64_CHAR);
      }
      return IMAGE_TOKENS;
    }
    case 'tool_result':
      return contentTokens(p.content) + MESSAGE_OVERHEAD;
    case 'tool_use':
      return estimateTextTokens(JSON.stringify(p.input ?? {})) + estimateTextTokens(String(p.name ?? '')) + MESSAGE_OVERHEAD;
    default:
      // Unknown block types are priced by their JSON, which over- rather than under-counts.
      return estimateTextTokens(JSON.stringify(p));
  }
}

function messagesTokens(messages: Json): number {
  if (!Array.isArray(messages)) return 0;
  let total = 0;
  for (const message of messages) {
    if (typeof message !== 'object' || message === null) continue;
    const m = message as Record<string, Json>;
    total += MESSAGE_OVERHEAD + contentTokens(m.content);
    if (Array.isArray(m.tool_calls)) total += estimateTextTokens(JSON.stringify(m.tool_calls));
    if (m.type === 'function_call_output') total += contentTokens(m.output);
    if (m.type === 'function_call') total += estimateTextTokens(String(m.arguments ?? ''));
  }
  return total;
}

function jsonTokens(value: Json): number {
  return value === undefined ? 0 : estimateTextTokens(JSON.stringify(value));
}

/** Input tokens of a request body for an endpoint of either wire format. */
export function estimateInputTokens(endpoint: string, body: Record<string, Json> | undefined): number {
  if (!body) return 0;
  switch (endpoint) {
    case 'messages':
    case 'count_tokens':
      return contentTokens(body.system) + messagesTokens(body.messages) + jsonTokens(body.tools) + 3;
    case 'chat':
      return messagesTokens(body.messages) + jsonTokens(body.tools ?? body.functions) + 3;
    case 'responses':
      return (
        contentTokens(body.instructions) +
        (typeof body.input === 'string' ? estimateTextTokens(body.input) : messagesTokens(body.input)) +
        jsonTokens(body.tools) +
        3
      );
    case 'embeddings':
    case 'completions': {
      const input = body.input ?? body.prompt;
      if (typeof input === 'string') return estimateTextTokens(input);
      if (Array.isArray(input)) {
        let total = 0;
        for (const item of input) total += typeof item === 'number' ? 1 : Array.isArray(item) ? item.length : contentTokens(item);
        return total;
      }
      return 0;
    }
    default:
      return 0;
  }
}
