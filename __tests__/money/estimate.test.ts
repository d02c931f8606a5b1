import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { countTokens, encodeChat } from 'gpt-tokenizer';
import { estimateInputTokens, estimateTextTokens, openaiCounter } from '../../lib/money/estimate';
import { cachedCounter } from '../../lib/money/token-cache';
import { createGuardedClient, type GuardEventMap } from '../../lib';
import { GPT, openaiFor, useFakeProvider } from '../support/clients';

const root = join(__dirname, '..', '..');
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

// A mixed corpus: this project's own code and docs, recorded API bodies, prose, other scripts,
// numbers and ids (where naive estimates fall furthest short).
const corpus: Array<[string, string]> = [
  ...files(join(root, 'lib')).map((f) => [f.slice(root.length + 1), readFileSync(f, 'utf8')] as [string, string]),
  ...files(join(root, '__tests__', 'fixtures')).map((f) => [f.slice(root.length + 1), readFileSync(f, 'utf8')] as [string, string]),
  ['README.md', readFileSync(join(root, 'README.md'), 'utf8')],
  ['CJK', '人工智能正在改变我们的生活方式。大型语言模型可以回答问题、写代码和翻译文本。これは日本語のテストです。한국어 문장도 포함합니다.'],
  ['numbers', Array.from({ length: 200 }, (_, i) => (i * 7919) % 100003).join(', ')],
  ['base64', Array.from({ length: 40 }, (_, i) => createHash('sha256').update(String(i)).digest('base64')).join('')],
  ['ids', Array.from({ length: 40 }, (_, i) => `${((i * 2654435761) >>> 0).toString(16)}-4a1b-9c2d-${(i * 40503).toString(16)}`).join('\n')],
  ['emoji', '🚀 Launch day! 🎉 We shipped the guard 🛡️ and budgets 💸. Thanks team 🙌🙌🙌'.repeat(5)],
  ['prose', 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times. '.repeat(20)],
  ['accents', 'Ça va très bien, merci ! Größere Übersetzungen kosten mehr. Año nuevo, vida nueva. '.repeat(10)],
];

describe('the built-in input estimate', () => {
  test(`under-estimates OpenAI's count (o200k) by no more than 10%, on ${corpus.length} texts`, () => {
    const short = corpus.map(([name, text]) => [name, estimateTextTokens(text) / countTokens(text)] as const).filter(([, ratio]) => ratio < 0.9);
    expect(short).toEqual([]);
  });

  test('leans high, but not wildly (median under 1.6×)', () => {
    const ratios = corpus.map(([, text]) => estimateTextTokens(text) / countTokens(text)).sort((a, b) => a - b);
    expect(ratios[ratios.length >> 1]).toBeLessThan(1.6);
  });

  test('whole chat requests, system prompt and tools included, against the chat encoding', () => {
    const messages = [
      { role: 'system' as const, content: readFileSync(join(root, 'lib', 'guard.ts'), 'utf8').slice(0, 3000) },
      { role: 'user' as const, content: 'Explain the code above in three sentences, then list 10 numbers: 1, 22, 333, 4444.' },
      { role: 'assistant' as const, content: 'Sure. It composes stages and emits events.' },
    ];
    const tools = [{ type: 'function', function: { name: 'lookup', description: 'Look a word up', parameters: { type: 'object', properties: { word: { type: 'string' } } } } }];
    const reference = encodeChat(messages, 'gpt-4o').length + countTokens(JSON.stringify(tools));
    expect(estimateInputTokens('chat', { model: GPT, messages, tools })).toBeGreaterThanOrEqual(0.9 * reference);
  });

  test('images and documents count as such, not as their base64 text length', () => {
    const image = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'A'.repeat(400_000) } };
    const tokens = estimateInputTokens('messages', { messages: [{ role: 'user', content: [image, { type: 'text', text: 'What is this?' }] }] });
    expect(tokens).toBeGreaterThanOrEqual(1600);
    expect(tokens).toBeLessThan(2000);
  });
});

describe('exact OpenAI counts with the optional gpt-tokenizer', () => {
  const fake = useFakeProvider();

  test('the counter matches gpt-tokenizer, o200k or cl100k by model', () => {
    expect(openaiCounter('gpt-4o')!('hello world, again')).toBe(countTokens('hello world, again'));
    expect(openaiCounter('gpt-4')).not.toBe(openaiCounter('gpt-4o'));
    expect(openaiCounter('gpt-4.1-mini')).toBe(openaiCounter('gpt-5'));
  });

  test('the guard counts OpenAI input exactly: text tokens + 4 per message + 3', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const seen: Array<GuardEventMap['request']> = [];
    client.guard.on('request', (e) => seen.push(e));
    const content = 'Count these tokens exactly, please: 12345, 67890, deadbeef.';
    await client.chat.completions.create({ model: GPT, messages: [{ role: 'user', content }] });
    expect(seen[0]!.inputTokensEstimate).toBe(countTokens(content) + 4 + 3);
  });

  test('an exact count is still calibrated to a compatible host whose tokenizer counts more', async () => {
    // The fake counts 4 characters a token, like a host with another tokenizer: more than o200k here.
    const client = createGuardedClient(openaiFor(fake()));
    const seen: Array<GuardEventMap['request']> = [];
    client.guard.on('request', (e) => seen.push(e));
    const messages = [{ role: 'user' as const, content: 'lorem ipsum '.repeat(100) }];
    await client.chat.completions.create({ model: GPT, messages });
    const hostCount = fake().records[0]!.inputTokens;
    expect(seen[0]!.inputTokensEstimate).toBeLessThan(hostCount);
    await client.chat.completions.create({ model: GPT, messages });
    expect(seen[1]!.inputTokensEstimate).toBeGreaterThanOrEqual(hostCount);
    await client.guard.close();
  });
});

describe('counts of texts are remembered (a system prompt sent with every call)', () => {
  test('remembered counts are the counts; the least recently used long texts go first; the short table starts over when full', () => {
    let counted = 0;
    const counter = cachedCounter((t) => (counted++, t.length));
    const text = (i: number) => String(i).padEnd(600, 'x');
    expect([counter(text(1)), counter(text(1))]).toEqual([600, 600]);
    expect(counted).toBe(1);
    counter('short');
    counter('short');
    expect(counted).toBe(2);
    // 4,096 short texts fill the table: the next one empties it, so 'short' is counted again.
    for (let i = 0; i < 4096; i++) counter(`s${i}`);
    expect(counted).toBe(2 + 4096);
    expect(counter('short')).toBe(5);
    expect(counted).toBe(2 + 4096 + 1);
    counted = 3;
    // It keeps 1,000,000 characters: 1,700 texts of 600 push the oldest out, not one used meanwhile.
    for (let i = 2; i < 1700; i++) {
      counter(text(i));
      if (i % 100 === 0) counter(text(1));
    }
    const before = counted;
    counter(text(1));
    expect(counted).toBe(before);
    counter(text(2));
    expect(counted).toBe(before + 1);
  });

  test("the guard's OpenAI counter, remembered or not, equals gpt-tokenizer on the whole corpus", () => {
    const counter = openaiCounter(GPT)!;
    for (let pass = 0; pass < 2; pass++) {
      const differing = corpus.filter(([, text]) => counter(text) !== countTokens(text)).map(([name]) => name);
      expect(differing).toEqual([]);
    }
  });
});
