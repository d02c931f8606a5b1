/**
 * A provider adapter speaks one wire format (request JSON, response JSON/SSE, errors, limit
 * headers). It is a plain object: users can write one for another fetch-based SDK.
 */

/** Tokens of one call, normalised across providers. */
export interface Usage {
  /** All input tokens, cache reads and writes included. */
  inputTokens: number;
  /** All output tokens, reasoning included. */
  outputTokens: number;
  cacheReadTokens?: number;
  /** Cache writes at the 5-minute rate. */
  cacheWriteTokens?: number;
  /** Cache writes at the 1-hour rate (Anthropic). */
  cacheWrite1hTokens?: number;
  reasoningTokens?: number;
  /** True when counted from the text because the provider reported no usage. */
  estimated?: boolean;
}

/** `batches`: a Message Batch created; `batch_results`: its results read (Anthropic); `realtime`: a Realtime response (guard.realtime). */
export type Endpoint = 'messages' | 'count_tokens' | 'chat' | 'responses' | 'embeddings' | 'completions' | 'batches' | 'batch_results' | 'realtime' | 'other';

/** What the guard needs to know about a request, read from its body before it is sent. */
export interface ParsedRequest {
  endpoint: Endpoint;
  model: string | undefined;
  /** The request's own output cap, when it set one. */
  maxOutputTokens: number | undefined;
  /** The body field holding that cap, for clamping. */
  maxOutputTokensField: string | undefined;
  stream: boolean;
  /** Whether the call is billed by tokens (count_tokens, listing, retrieval are not). */
  billable: boolean;
  /** Whether a usage chunk will arrive in the stream (OpenAI chat needs include_usage). */
  streamReportsUsage: boolean;
  /** Batch API pricing applies (half price). */
  batch: boolean;
  /** Parsed JSON body, when it was JSON. */
  body: Record<string, unknown> | undefined;
  /** For `batch_results`: the batch whose results are read. */
  batchId?: string;
}

/** One request of a batch, and what one of its results cost. */
export interface BatchEntry {
  id: string;
  request: ParsedRequest;
}

/** One rate limit as the provider reported it. */
export interface LimitWindow {
  limit: number;
  remaining: number;
  /** Milliseconds from when the headers were read until the allowance is fully replenished. */
  resetMs: number | undefined;
}

export interface RateLimitSnapshot {
  requests?: LimitWindow;
  tokens?: LimitWindow;
  inputTokens?: LimitWindow;
  outputTokens?: LimitWindow;
}

export interface ErrorClassification {
  /** Worth another attempt (after a delay). */
  retryable: boolean;
  /** Counts as a provider fault for the circuit breaker (5xx, overload), not a client error. */
  fault: boolean;
  /** A short machine-readable reason: 'rate_limit', 'overloaded', 'server_error', 'insufficient_quota', ... */
  reason: string;
}

/** Reads usage from a stream's SSE events as they pass. */
export interface StreamUsageReader {
  /** Feeds one SSE event; returns true when the running usage changed. */
  onEvent(event: string | undefined, data: string): boolean;
  /** Usage so far: reported by the provider, or estimated from the text when it reports none. */
  usage(): Usage | undefined;
  /**
   * Nothing billable can follow: the provider's final count or the stream's end marker passed.
   * Clients may stop reading there (openai 7 cancels the body at `[DONE]`): the call ends then,
   * not as one the consumer abandoned. Optional: without it, a stream ends with its body.
   */
  complete?(): boolean;
  /**
   * Where the stream's end marker (OpenAI's `data: [DONE]`) starts in these bytes, -1 when it is
   * not there: an error found at the end takes its place, before a client stops reading at it.
   */
  endMarkerAt?(bytes: Uint8Array): number;
}

export interface ProviderAdapter {
  /** 'anthropic', 'openai', or a custom name; upper-cased for LLM_GUARD_<PROVIDER>_* env vars. */
  readonly name: string;
  /** The genai-prices provider id used to price this provider's models. */
  readonly priceProvider: string;
  parseRequest(url: string, method: string, body: unknown): ParsedRequest;
  /** Usage from a JSON response body. */
  usageFromJson(request: ParsedRequest, json: unknown): Usage | undefined;
  /**
   * The generated text of a JSON response (content, tool-call arguments, reasoning): its output is
   * estimated from it when the body reports no usage. '' for a response that generates nothing
   * (embeddings); undefined when the body has no output the adapter recognises (then the call is
   * charged its worst case). Optional: without it, a response without usage is charged its worst case.
   */
  outputTextFromJson?(request: ParsedRequest, json: unknown): string | undefined;
  /** `weigh` gives a text's tokens unrounded; readers sum it and round up when reporting. */
  createStreamUsageReader(request: ParsedRequest, weigh: (text: string) => number): StreamUsageReader;
  classifyError(status: number, headers: Headers, body: string | undefined): ErrorClassification;
  /** Milliseconds the provider asked us to wait, from retry-after-ms / retry-after. */
  retryAfterMs(headers: Headers, now?: number): number | undefined;
  rateLimits(headers: Headers, now?: number): RateLimitSnapshot | undefined;
  /** A copy of the body with the output cap set to `tokens`. */
  withMaxOutputTokens(request: ParsedRequest, tokens: number): Record<string, unknown>;
  /** A `batches` request's entries, each as a request of its own (for its worst case). */
  batchRequests?(request: ParsedRequest): BatchEntry[];
  /** A `batch_results` body's billed results: each one's model and usage (errored, canceled and expired ones are not billed). */
  batchResults?(request: ParsedRequest, text: string): Array<{ model: string | undefined; usage: Usage }>;
}
