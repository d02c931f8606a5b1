/**
 * The input estimate against OpenAI's own tokenizer (o200k, through gpt-tokenizer) on a mixed
 * corpus: how far it is from exact, and how long it takes beside the exact count.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { countTokens } from 'gpt-tokenizer';
import { estimateInputTokens, estimateTextTokens, openaiCounter } from '../lib/money/estimate';
import { fmt, median, table } from './support';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

export async function runEstimate(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const root = join(__dirname, '..');
  const groups: Record<string, string[]> = {
    'code (this project)': files(join(root, 'lib')).map((f) => readFileSync(f, 'utf8')),
    'API bodies (JSON, SSE)': files(join(root, '__tests__', 'fixtures')).map((f) => readFileSync(f, 'utf8')),
    'prose (README)': readFileSync(join(root, 'README.md'), 'utf8').split('\n## '),
    'numbers and ids': [Array.from({ length: 300 }, (_, i) => (i * 7919) % 100003).join(', '), Array.from({ length: 60 }, (_, i) => `${((i * 2654435761) >>> 0).toString(16)}-${(i * 40503).toString(16)}`).join('\n')],
    CJK: ['人工智能正在改变我们的生活方式。大型语言模型可以回答问题、写代码和翻译文本。'.repeat(10), 'これは日本語のテストです。長い文章も正しく数えます。'.repeat(10)],
  };
  const rows: Array<Array<string | number>> = [];
  for (const [name, texts] of Object.entries(groups)) {
    const ratios = texts.filter((t) => t.length > 0).map((t) => estimateTextTokens(t) / countTokens(t));
    rows.push([name, ratios.length, fmt(Math.min(...ratios)), fmt(median(ratios)), fmt(Math.max(...ratios))]);
    log(`  ${name}: ${ratios.length} texts, estimate ÷ exact min ${fmt(Math.min(...ratios))}, median ${fmt(median(ratios))}, max ${fmt(Math.max(...ratios))}`);
  }
  const all = Object.values(groups).flat().filter((t) => t.length > 0);
  const time = (f: (t: string) => number) => {
    const started = performance.now();
    for (let i = 0; i < 5; i++) for (const t of all) f(t);
    return ((performance.now() - started) * 1000) / (5 * all.reduce((n, t) => n + t.length, 0) / 1000);
  };
  const estimateUs = time(estimateTextTokens);
  const exactUs = time(countTokens);
  log(`  per 1,000 characters: estimate ${fmt(estimateUs)} µs, gpt-tokenizer ${fmt(exactUs)} µs`);
  // A system prompt that comes with every call: the body is parsed afresh each time, as the guard does.
  const system = readFileSync(join(root, 'README.md'), 'utf8').slice(0, 8000);
  const wire = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'system', content: system }, { role: 'user', content: 'Summarise the above in one line.' }] });
  const perCall = (counter: (t: string) => number) => {
    for (let i = 0; i < 50; i++) estimateInputTokens('chat', JSON.parse(wire), counter);
    const started = performance.now();
    for (let i = 0; i < 500; i++) estimateInputTokens('chat', JSON.parse(wire), counter);
    return ((performance.now() - started) * 1000) / 500;
  };
  const uncachedUs = perCall(countTokens);
  const cachedUs = perCall(openaiCounter('gpt-4o')!);
  log(`  a ${countTokens(system).toLocaleString('en')}-token system prompt with every call: weighed in ${fmt(uncachedUs, 0)} µs uncounted before, ${fmt(cachedUs, 0)} µs when seen before`);
  return {
    markdown: `${table(['texts', 'count', 'estimate ÷ exact, min', 'median', 'max'], rows)}\n\nPer 1,000 characters: the built-in estimate ${fmt(estimateUs)} µs, gpt-tokenizer (exact) ${fmt(exactUs)} µs.\n\nA ${countTokens(system).toLocaleString('en')}-token system prompt sent with every call (body parsed afresh, gpt-4o, exact count): **${fmt(uncachedUs, 0)} µs** per call to weigh when counted each time, **${fmt(cachedUs, 0)} µs** with the count remembered (${fmt(uncachedUs / cachedUs, 0)}×).`,
  };
}
