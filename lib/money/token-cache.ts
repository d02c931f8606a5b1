/**
 * Token counts of long texts seen recently — a system prompt, the earlier turns of a chat, which
 * come back on every call: counting a 2,000-token prompt with gpt-tokenizer takes ~0.9 ms, and
 * finding it here ~0.02 ms. Least recently used first out, bounded by the characters it holds.
 */

/** Shorter texts are counted each time (cheap, and they would churn the cache). */
const MIN_LENGTH = 512;
/** Characters of text held per counter (~2–4 MB); a text over a quarter of it is never kept. */
const MAX_CHARS = 1_000_000;

export function cachedCounter(counter: (text: string) => number): (text: string) => number {
  const cache = new Map<string, number>();
  let chars = 0;
  return (text) => {
    if (text.length < MIN_LENGTH) return counter(text);
    const hit = cache.get(text);
    if (hit !== undefined) {
      // Map order is the LRU order: a hit moves to the back.
      cache.delete(text);
      cache.set(text, hit);
      return hit;
    }
    const tokens = counter(text);
    if (text.length > MAX_CHARS / 4) return tokens;
    cache.set(text, tokens);
    chars += text.length;
    for (const oldest of cache.keys()) {
      if (chars <= MAX_CHARS) break;
      cache.delete(oldest);
      chars -= oldest.length;
    }
    return tokens;
  };
}
