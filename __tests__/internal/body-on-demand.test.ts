import { withBodyOnDemand } from '../../lib/internal/body-on-demand';
import { openaiAdapter } from '../../lib/providers/openai';
import type { ParsedRequest } from '../../lib';

const url = 'https://api.openai.com/v1/chat/completions';
const text = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user', content: 'Hello' }] });

describe('the request a call carries in flight', () => {
  test('keeps every field, reads its body again from the text when asked, and clamps from it', () => {
    const parsed = openaiAdapter.parseRequest(url, 'POST', text);
    let reads = 0;
    const lean = withBodyOnDemand(parsed, () => (reads++, openaiAdapter.parseRequest(url, 'POST', text).body));
    const { body: _parsedBody, ...fields } = parsed;
    expect({ ...lean, body: undefined }).toEqual({ ...fields, body: undefined });
    expect(reads).toBe(0);
    expect(lean.body).toEqual(parsed.body);
    expect(reads).toBe(1);
    expect(openaiAdapter.withMaxOutputTokens(lean, 5)).toEqual({ ...parsed.body, max_tokens: 5 });
  });

  test("a custom adapter's own fields travel with it; a batch and a body-less request are kept as they are", () => {
    const custom = { ...openaiAdapter.parseRequest(url, 'POST', text), deployment: 'eu-1' } as ParsedRequest & { deployment: string };
    expect((withBodyOnDemand(custom, () => undefined) as typeof custom).deployment).toBe('eu-1');
    const batch: ParsedRequest = { ...custom, batch: true };
    expect(withBodyOnDemand(batch, () => undefined)).toBe(batch);
    const none: ParsedRequest = { ...custom, body: undefined };
    expect(withBodyOnDemand(none, () => undefined)).toBe(none);
  });
});
