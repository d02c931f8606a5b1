/**
 * Anthropic's exact input count (`messages.countTokens`, free but networked), asked before a
 * call when `cost.exactInputTokens` is set: images, documents and tools counted as Claude will.
 */

const COUNTED_FIELDS = ['model', 'messages', 'system', 'tools', 'tool_choice', 'thinking', 'mcp_servers'];

/** The input tokens of a Messages request, or undefined when the count could not be had. */
export async function countAnthropicInputTokens(
  fetchImpl: typeof fetch,
  url: string,
  init: RequestInit,
  body: Record<string, unknown>,
): Promise<number | undefined> {
  const q = url.indexOf('?');
  const countUrl = q < 0 ? `${url}/count_tokens` : `${url.slice(0, q)}/count_tokens${url.slice(q)}`;
  const headers = new Headers(init.headers);
  headers.delete('content-length');
  const payload: Record<string, unknown> = {};
  for (const field of COUNTED_FIELDS) if (body[field] !== undefined) payload[field] = body[field];
  const response = await fetchImpl(countUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify(payload),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  if (!response.ok) {
    await response.body?.cancel();
    return undefined;
  }
  const json = (await response.json()) as { input_tokens?: unknown };
  return typeof json.input_tokens === 'number' ? json.input_tokens : undefined;
}
