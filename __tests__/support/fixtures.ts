import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createParser } from 'eventsource-parser';
import type { ProviderAdapter, ParsedRequest, Usage } from '../../lib/providers/adapter';
import { textTokenWeight } from '../../lib/money/estimate';

export function fixture(path: string): string {
  return readFileSync(join(__dirname, '..', 'fixtures', path), 'utf8');
}

export function jsonFixture<T = Record<string, unknown>>(path: string): T {
  return JSON.parse(fixture(path)) as T;
}

export interface RecordedResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  now?: string;
}

/**
 * Feeds an SSE recording to an adapter's stream reader in pieces of `size` bytes (cutting
 * events and multi-byte characters anywhere), the way a network delivers it.
 */
export function readStream(adapter: ProviderAdapter, request: ParsedRequest, sse: string, size: number): Usage | undefined {
  const reader = adapter.createStreamUsageReader(request, textTokenWeight);
  const parser = createParser({ onEvent: (e) => reader.onEvent(e.event, e.data) });
  const bytes = new TextEncoder().encode(sse);
  const decoder = new TextDecoder();
  for (let i = 0; i < bytes.length; i += size) parser.feed(decoder.decode(bytes.subarray(i, i + size), { stream: true }));
  return reader.usage();
}
