#!/usr/bin/env node
/**
 * `guarded-llm status --redis URL --name NAME [--json]`: what a guard name shares in Redis.
 * `guarded-llm price MODEL [--input N] [--output N] [--cache-read N] [--provider P] [--batch]`:
 * the resolved price and what such a call costs.
 */
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { PriceBook, readPricesFile } from './money/prices';
import { readSharedState, type SharedState } from './distributed/inspect';
import { redactUrl, redactUrls } from './internal/redact';
import { endClients } from './internal/end-client';

const USAGE = `Usage:
  guarded-llm status --redis <url> [--name <guard name>] [--json]
  guarded-llm price <model> [--input <tokens>] [--output <tokens>] [--cache-read <tokens>] [--provider anthropic|openai] [--batch] [--json]

The Redis URL and name default to LLM_GUARD_REDIS_URL and LLM_GUARD_NAME (else "default");
prices honour LLM_GUARD_PRICES_FILE.`;

class UsageError extends Error {}

const usd = (n: number) => `$${n < 0.01 ? n.toFixed(6) : n.toFixed(4)}`;

function count(value: string | undefined, flag: string): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${flag} must be a whole number of tokens, got "${value}"`);
  return n;
}

export function price(model: string, options: { input?: string; output?: string; 'cache-read'?: string; provider?: string; batch?: boolean }): Record<string, unknown> {
  const provider = options.provider ?? (/^claude/i.test(model) ? 'anthropic' : 'openai');
  if (provider !== 'anthropic' && provider !== 'openai') throw new UsageError(`--provider must be "anthropic" or "openai", got "${provider}"`);
  const file = process.env.LLM_GUARD_PRICES_FILE;
  const book = new PriceBook(provider, file ? readPricesFile(file) : {}, 'reject');
  const source = book.source(model);
  if (source.kind === 'unpriced') throw new UsageError(`No price is known for "${model}" (${provider}). Add it to a prices file (LLM_GUARD_PRICES_FILE).`);
  const input = count(options.input, 'input');
  const output = count(options.output, 'output');
  const cacheRead = count(options['cache-read'], 'cache-read');
  const batch = options.batch === true;
  // Unit prices in the tier this request's input falls in.
  const tierInput = Math.max(1, input);
  const inputOnly = book.cost(model, { inputTokens: tierInput, outputTokens: 0 }, { batch });
  const withOutput = book.cost(model, { inputTokens: tierInput, outputTokens: 1_000_000 }, { batch });
  return {
    model,
    provider,
    pricedAs: source.kind === 'override' ? 'override (prices file)' : source.modelId,
    inputPerMTokUsd: (inputOnly / tierInput) * 1e6,
    outputPerMTokUsd: withOutput - inputOnly,
    batch,
    usage: { inputTokens: input, outputTokens: output, cacheReadTokens: cacheRead },
    costUsd: book.cost(model, { inputTokens: input + cacheRead, outputTokens: output, cacheReadTokens: cacheRead }, { batch }),
    maxOutputTokens: book.maxOutputTokens(model),
  };
}

function printPrice(p: Record<string, unknown>): string {
  const u = p.usage as { inputTokens: number; outputTokens: number; cacheReadTokens: number };
  return [
    `${p.model} (${p.provider}), priced as ${p.pricedAs}${p.batch ? ', batch (50% off)' : ''}`,
    `  input  $${(p.inputPerMTokUsd as number).toFixed(4)} per million tokens`,
    `  output $${(p.outputPerMTokUsd as number).toFixed(4)} per million tokens`,
    `  ${u.inputTokens} input${u.cacheReadTokens ? ` + ${u.cacheReadTokens} cache-read` : ''} + ${u.outputTokens} output tokens = ${usd(p.costUsd as number)}`,
  ].join('\n');
}

function printStatus(s: SharedState, where: string): string {
  const lines = [`guard "${s.name}" at ${where}`];
  lines.push(s.pausedUntil ? `  paused by a provider 429 until ${s.pausedUntil}` : '  not paused');
  if (!s.rates.length) lines.push('  shared rates: none (no rate limit set or learned yet)');
  for (const r of s.rates) {
    lines.push(`  ${r.dimension}: ${Math.round(r.perMinute)}/min, ${Math.floor(r.available)} of ${r.capacity} available now, ${r.activeReplicas} replica(s) active in the last 10 s`);
  }
  if (!s.breakers.length) lines.push('  breakers: no replica has reported');
  for (const b of s.breakers) {
    if (b.live) lines.push(`  breaker of replica ${b.replica}: ${b.state} (since ${b.since})`);
    else lines.push(`  replica ${b.replica}: not heard from since ${b.seen} (stopped, or cut off from Redis); its breaker was ${b.state}`);
  }
  if (!s.budgets.length) lines.push('  budgets: nothing spent or reserved');
  for (const b of s.budgets) {
    const amount = b.unit === 'tokens' ? (n: number) => `${Math.round(n)} tokens` : usd;
    lines.push(`  ${b.unit === 'tokens' ? 'token quota' : 'budget'} ${b.key}: ${amount(b.spentUsd)} spent, ${amount(b.reservedUsd)} reserved (${b.liveReservations} call(s) in flight) per ${b.window}`);
  }
  return lines.join('\n');
}

async function status(url: string | undefined, name: string): Promise<{ state: SharedState; where: string }> {
  if (!url) throw new UsageError('status needs --redis <url> (or LLM_GUARD_REDIS_URL)');
  let IORedis: new (url: string, options: object) => Redis;
  try {
    const mod = require('ioredis') as { Redis?: typeof IORedis; default?: typeof IORedis };
    IORedis = (mod.Redis ?? mod.default ?? mod) as typeof IORedis;
  } catch {
    throw new UsageError('status needs the "ioredis" package: npm install ioredis');
  }
  const client = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return { state: await readSharedState(client, name), where: redactUrl(url) };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read Redis at ${redactUrl(url)}: ${redactUrls((error as Error).message)}`);
  } finally {
    await endClients([client], { quit: true });
  }
}

export async function main(argv: string[], out: (line: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      redis: { type: 'string' },
      name: { type: 'string' },
      json: { type: 'boolean' },
      input: { type: 'string' },
      output: { type: 'string' },
      'cache-read': { type: 'string' },
      provider: { type: 'string' },
      batch: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    out(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (command === 'price') {
    if (rest.length !== 1) throw new UsageError('price needs one model id, e.g. guarded-llm price claude-sonnet-4-6 --input 1000 --output 500');
    const p = price(rest[0]!, values);
    out(values.json ? JSON.stringify(p, null, 2) : printPrice(p));
    return 0;
  }
  if (command === 'status') {
    const { state, where } = await status(values.redis ?? process.env.LLM_GUARD_REDIS_URL, values.name ?? process.env.LLM_GUARD_NAME ?? 'default');
    out(values.json ? JSON.stringify(state, null, 2) : printStatus(state, where));
    return 0;
  }
  throw new UsageError(`unknown command "${command}"`);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`guarded-llm: ${error instanceof Error ? error.message : String(error)}\n${error instanceof UsageError ? `\n${USAGE}\n` : ''}`);
      process.exitCode = error instanceof UsageError ? 2 : 1;
    },
  );
}
