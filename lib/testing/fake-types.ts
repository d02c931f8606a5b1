/** What the fake provider is told to do, and what it reports. */
import type { Dialect, FakeEndpoint } from './wire';

export interface FakeLimits {
  requestsPerMinute?: number;
  /** Input + output (reserved as max tokens at start, refunded to the actual at the end). */
  tokensPerMinute?: number;
  inputTokensPerMinute?: number;
  outputTokensPerMinute?: number;
  /** How many seconds of the per-minute rate a full bucket holds (the allowed burst). Default 1. */
  burstSeconds?: number;
}

export interface FakeBehaviour {
  /** Output tokens per generation (capped by the request's max tokens). Default 16. */
  outputTokens: number;
  /** Pause before each streamed token. Default 0. */
  tokenDelayMs: number;
  /** Pause before the response starts. Default 0. */
  latencyMs: number;
  /** Input tokens reported beyond the text (as images or tools would add). Default 0. */
  extraInputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  /** Of the output, how many are reasoning tokens (OpenAI). */
  reasoningTokens: number;
  /** Answer without any usage field, JSON or stream (some OpenAI-compatible hosts do). Default false. */
  omitUsage: boolean;
}

export interface FakeProviderOptions extends Partial<FakeBehaviour> {
  limits?: FakeLimits;
  port?: number;
}

/** A scripted fault for the next matching request(s). */
export type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | { kind: 'cut'; afterTokens: number }
  | { kind: 'malformed' };

export interface FaultOptions {
  /** How many requests get it. Default 1. */
  times?: number;
  endpoint?: FakeEndpoint;
}

/** What the fake saw and billed for one request. */
export interface RequestRecord {
  id: number;
  /** ms since the fake started (performance clock). */
  at: number;
  dialect: Dialect;
  endpoint: FakeEndpoint | 'unknown';
  model: string | undefined;
  apiKey: string | undefined;
  stream: boolean;
  maxTokens: number | undefined;
  status: number;
  fault?: string;
  inputTokens: number;
  /** Output tokens actually sent before the response ended or the client hung up. */
  outputTokens: number;
  costUsd: number;
  /** The client hung up before the end. */
  clientClosed: boolean;
  headers: Record<string, string | string[] | undefined>;
}

export interface FakeStats {
  requests: number;
  byStatus: Record<number, number>;
  inFlight: number;
  maxInFlight: number;
  /** Arrival time of each request, ms since the fake started. */
  arrivals: number[];
  billed: { inputTokens: number; outputTokens: number; usd: number };
}
