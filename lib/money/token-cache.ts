/**
 * Token counts of texts seen recently — a system prompt, the earlier turns of a chat, which come
 * back on every call: counting a 2,000-token prompt with gpt-tokenizer takes ~0.9 ms, and finding
 * it here ~0.02 ms. Long texts: least recently used first out, bounded by the characters they hold.
 * Short ones (role names, short prompts): a plain table, emptied when full — a hit is one lookup,
 * where counting took ~10 µs on a server between calls (the tokenizer's tables out of CPU cache).
 */

/** Texts shorter than this go to the short table. */
const MIN_LENGTH = 512;
/** Short texts remembered per counter (≤ ~2.5 MB), before the table starts over. */
const MAX_SHORT = 4096;
/** Characters of text held per counter (~2–4 MB); a text over a quarter of it is never kept. */
const MAX_CHARS = 1_000_000;

export function cachedCounter(counter: (text: string) => number): (text: string) => number {
  const cache = new Map<string, number>();
  const short = new Map<string, number>();
  let chars = 0;
  return (text) => {
    if (text.length < MIN_LENGTH) {
      let tokens = short.get(text);
      if (tokens !== undefined) return tokens;
      tokens = counter(text);
      if (short.size >= MAX_SHORT) short.clear();
      short.set(text, tokens);
      return tokens;
    }
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
