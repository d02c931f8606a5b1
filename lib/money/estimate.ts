/**
 * A fast, offline estimate of input tokens, made before a request is sent. It leans high:
 * the budget reserves against it, and an under-estimate is what lets a budget overshoot.
 */

import { cachedCounter } from './token-cache';

// Tokens an image costs when its size is unknown: a full-size Claude image (1568 px side ≈ 1600
// tokens) and OpenAI's high-detail 1024² tile count (765), rounded up.
const IMAGE_TOKENS = 1600;
const DOCUMENT_TOKENS_PER_BASE64_CHAR = 1 / 3; // PDFs: a page ≈ 1.5–3k tokens, ≈ 100 kB base64
const MESSAGE_OVERHEAD = 4;

/**
 * Tokens of a piece of text, unrounded (so that many small stream deltas add up right). Text is
 * read as runs, the way BPE tokenizers split it: a word is ~1 token per 4 letters (a leading space
 * rides along), digits go ~3 to a token, a letter/digit switch starts a new token (hex, ids),
 * punctuation ~1 token per 2 characters of a run (code, JSON), CJK and other wide characters
 * 1 each. It leans high (median ~1.3× on a mixed corpus): an under-estimate lets a budget overshoot.
 */
export function textTokenWeight(text: string): number {
  let tokens = 0;
  let run = 0; // length of the current letter or digit run
  let kind = 0; // 0 none, 1 letters, 2 digits
  let choppy = 0; // case changes after 1–2 letters of one case inside the current letter run (base64, random ids)
  let segment = 0; // letters since the last case change
  let upper = false;
  let punct = 0; // tokens of punctuation runs
  let spaces = 0; // newlines and tabs
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    const isUpper = c >= 65 && c <= 90;
    const k = isUpper || (c >= 97 && c <= 122) ? 1 : c >= 48 && c <= 57 ? 2 : 0;
    if (k !== 0 && k === kind) {
      run++;
      if (k === 1 && isUpper !== upper) {
        if (segment <= 2) choppy++;
        segment = 1;
      } else segment++;
      upper = isUpper;
      continue;
    }
    if (kind !== 0) tokens += runTokens(kind, run, choppy);
    kind = k;
    run = k === 0 ? 0 : 1;
    choppy = 0;
    segment = 1;
    upper = isUpper;
    if (k !== 0) continue;
    if (c === 32) {
      // A run of spaces: its last rides with a following word; before digits or punctuation it
      // is a token of its own; indentation goes ~4 spaces to a token.
      let j = i;
      while (j + 1 < n && text.charCodeAt(j + 1) === 32) j++;
      const length = j - i + 1;
      const next = j + 1 < n ? text.charCodeAt(j + 1) : 0;
      const beforeWord = (next >= 65 && next <= 90) || (next >= 97 && next <= 122);
      tokens += beforeWord ? (length - 1) / 4 : Math.ceil(length / 4);
      i = j;
    } else if (c === 10 || c === 9) spaces += 2;
    else if (c >= 0x2e80) tokens += 1;
    else if (c >= 0x80) tokens += 0.75; // accents, symbols, emoji halves
    else {
      // A run of punctuation: ~2 characters to a token (`,` `});` `=>` `": "`).
      let j = i;
      while (j + 1 < n && isPunct(text.charCodeAt(j + 1))) j++;
      punct += Math.ceil((j - i + 1) / 2);
      i = j;
    }
  }
  if (kind !== 0) tokens += runTokens(kind, run, choppy);
  return tokens + punct + spaces / 8;
}

/**
 * A letter run is ~1 token per 4 letters, unless its case keeps changing after a letter or two
 * (base64, random ids: BPE finds no words there; camelCase changes after whole words and does
 * not count); digits go ~3 to a token.
 */
function runTokens(kind: number, run: number, choppy: number): number {
  if (kind === 2) return Math.ceil(run / 3);
  return Math.max(Math.ceil(run / 4), Math.ceil(choppy * FLIP_WEIGHT));
}

/** Tokens per choppy case change: fitted on base64 against o200k (1.0×), leaving camelCase code unchanged. */
const FLIP_WEIGHT = 1.5;

function isPunct(c: number): boolean {
  return c > 32 && c < 128 && !((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122));
}

/** Tokens of a piece of text, rounded up. */
export function estimateTextTokens(text: string): number {
  return Math.ceil(textTokenWeight(text));
}

type Json = unknown;

/** Counts a text's tokens: exactly (a tokenizer) or by estimate. */
export type TokenCounter = (text: string) => number;

let openai: { o200k: TokenCounter; cl100k: TokenCounter } | null | undefined;

/**
 * OpenAI's exact counter for a model when the optional peer `gpt-tokenizer` is installed
 * (o200k for GPT-4o and later, cl100k for GPT-4, GPT-3.5 and the embeddings models).
 */
export function openaiCounter(model: string | undefined): TokenCounter | undefined {
  if (openai === undefined) {
    try {
      openai = {
        o200k: cachedCounter((require('gpt-tokenizer/encoding/o200k_base') as { countTokens: TokenCounter }).countTokens),
        cl100k: cachedCounter((require('gpt-tokenizer/encoding/cl100k_base') as { countTokens: TokenCounter }).countTokens),
      };
    } catch {
      openai = null;
    }
  }
  if (!openai) return undefined;
  return model && /^(gpt-4(?![o.])|gpt-3\.5|text-embedding)/.test(model) ? openai.cl100k : openai.o200k;
}

/** The offline estimate, remembered for long texts that come back (system prompts). */
const estimateCached = cachedCounter(estimateTextTokens);
let count: TokenCounter = estimateCached;

function contentTokens(content: Json): number {
  if (typeof content === 'string') return count(content);
  if (Array.isArray(content)) {
    let total = 0;
    for (const part of content) total += partTokens(part);
    return total;
  }
  return 0;
}

function partTokens(part: Json): number {
  if (typeof part === 'string') return count(part);
  if (typeof part !== 'object' || part === null) return 0;
  const p = part as Record<string, Json>;
  switch (p.type) {
    case 'text':
    case 'input_text':
    case 'output_text':
      return count(String(p.text ?? ''));
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
        return source.media_type === 'text/plain' ? count(data) : Math.ceil(data.length * DOCUMENT_TOKENS_PER_BASE64_CHAR);
      }
      return IMAGE_TOKENS;
    }
    case 'tool_result':
      return contentTokens(p.content) + MESSAGE_OVERHEAD;
    case 'tool_use':
      return count(JSON.stringify(p.input ?? {})) + count(String(p.name ?? '')) + MESSAGE_OVERHEAD;
    default:
      // Unknown block types are priced by their JSON, which over- rather than under-counts.
      return count(JSON.stringify(p));
  }
}

function messagesTokens(messages: Json): number {
  if (!Array.isArray(messages)) return 0;
  let total = 0;
  for (const message of messages) {
    if (typeof message !== 'object' || message === null) continue;
    const m = message as Record<string, Json>;
    total += MESSAGE_OVERHEAD + contentTokens(m.content);
    if (Array.isArray(m.tool_calls)) total += count(JSON.stringify(m.tool_calls));
    if (m.type === 'function_call_output') total += contentTokens(m.output);
    if (m.type === 'function_call') total += count(String(m.arguments ?? ''));
  }
  return total;
}

function jsonTokens(value: Json): number {
  return value === undefined ? 0 : count(JSON.stringify(value));
}

/**
 * Input tokens of a request body for an endpoint of either wire format: counted with `counter`
 * when given (an exact tokenizer), else estimated.
 */
export function estimateInputTokens(endpoint: string, body: Record<string, Json> | undefined, counter?: TokenCounter): number {
  if (!body) return 0;
  count = counter ?? estimateCached;
  try {
    return inputTokens(endpoint, body);
  } finally {
    count = estimateCached;
  }
}

function inputTokens(endpoint: string, body: Record<string, Json>): number {
  switch (endpoint) {
    case 'messages':
    case 'count_tokens':
      return contentTokens(body.system) + messagesTokens(body.messages) + jsonTokens(body.tools) + 3;
    case 'chat':
      return messagesTokens(body.messages) + jsonTokens(body.tools ?? body.functions) + 3;
    case 'responses':
      return (
        contentTokens(body.instructions) +
        (typeof body.input === 'string' ? count(body.input) : messagesTokens(body.input)) +
        jsonTokens(body.tools) +
        3
      );
    case 'embeddings':
    case 'completions': {
      const input = body.input ?? body.prompt;
      if (typeof input === 'string') return count(input);
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
