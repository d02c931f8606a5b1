/**
 * Where a call's CPU goes: sequential calls over local HTTP, the raw SDK and the guard (its built
 * bundle) in turns, under V8's sampling profiler (started after a warm-up, so module loading is
 * not counted), as µs of CPU per call by package, and the guard's own functions that cost most.
 * On a shared host, wall-clock medians of two builds differ by ±10 µs between runs; CPU per
 * function is what tells a change of a few µs apart. Without and with rate-limit headers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Session, type Profiler } from 'node:inspector/promises';
import OpenAI from 'openai';
import { startFakeProvider } from '../lib/testing';
import { builtPackage, fmt, LIMITS_NEVER_REACHED, table } from './support';

const messages = [{ role: 'user' as const, content: 'Hello there, how are you today?' }];
const CALLS = 2_000;
const ROUNDS = 3;

/** Where a sampled frame's time goes, by the script it runs in. */
function groupOf(url: string, name: string): string {
  if (!url) return name === '(garbage collector)' ? 'garbage collection' : name === '(idle)' ? 'idle' : 'V8 and native';
  if (/\/dist\/[^/]+\.(m?js)$/.test(url) && !url.includes('node_modules')) return 'guarded-llm';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.includes('undici')) return 'undici (fetch)';
  if (url.startsWith('node:')) return 'node core';
  return 'bench and fake provider';
}

interface Cpu {
  byGroup: Map<string, number>;
  byGuardFunction: Map<string, number>;
}

/** The bundle's source maps, to name the guard's functions by the file of lib/ they come from. */
const sourceMaps = new Map<string, SourceMap | undefined>();
function sourceFileOf(url: string, line: number, column: number): string {
  if (!sourceMaps.has(url)) {
    const file = `${url.startsWith('file:') ? fileURLToPath(url) : url}.map`;
    sourceMaps.set(url, existsSync(file) ? new SourceMap(JSON.parse(readFileSync(file, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]) : undefined);
  }
  const entry = sourceMaps.get(url)?.findEntry(line, column) as { originalSource?: string } | undefined;
  return entry?.originalSource?.replace(/^.*\/lib\//, '') ?? '?';
}

function add(into: Cpu, profile: Profiler.Profile): void {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples!.forEach((id, i) => {
    const { callFrame } = nodes.get(id)!;
    const us = profile.timeDeltas![i] ?? 0;
    const group = groupOf(callFrame.url, callFrame.functionName);
    into.byGroup.set(group, (into.byGroup.get(group) ?? 0) + us);
    if (group === 'guarded-llm') {
      const fn = `${sourceFileOf(callFrame.url, callFrame.lineNumber, callFrame.columnNumber)} ${callFrame.functionName || '(anonymous)'}`;
      into.byGuardFunction.set(fn, (into.byGuardFunction.get(fn) ?? 0) + us);
    }
  });
}

async function scenario(limitHeaders: boolean): Promise<{ raw: Cpu; guarded: Cpu }> {
  const fake = await startFakeProvider({ outputTokens: 16, ...(limitHeaders ? { limits: LIMITS_NEVER_REACHED } : {}) });
  const sdk = () => new OpenAI({ apiKey: 'sk-bench', baseURL: fake.openaiBaseURL, maxRetries: 0 });
  const clients = { raw: sdk(), guarded: builtPackage().createGuardedClient(sdk(), { limits: { maxConcurrent: 100 }, logLevel: 'silent' }) };
  const cpu = { raw: { byGroup: new Map(), byGuardFunction: new Map() }, guarded: { byGroup: new Map(), byGuardFunction: new Map() } };
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  const run = (client: OpenAI, n: number) => (async () => {
    for (let i = 0; i < n; i++) await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 });
  })();
  for (const client of Object.values(clients)) await run(client, 300);
  for (let round = 0; round < ROUNDS; round++) {
    for (const key of round % 2 ? (['guarded', 'raw'] as const) : (['raw', 'guarded'] as const)) {
      await session.post('Profiler.start');
      await run(clients[key], CALLS);
      const { profile } = await session.post('Profiler.stop');
      add(cpu[key], profile);
    }
  }
  session.disconnect();
  await clients.guarded.guard.close();
  await fake.close();
  return cpu;
}

export async function runProfile(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const perCall = (us: number) => us / (CALLS * ROUNDS);
  const sections: string[] = [];
  for (const limitHeaders of [false, true]) {
    const { raw, guarded } = await scenario(limitHeaders);
    const groups = [...new Set([...raw.byGroup.keys(), ...guarded.byGroup.keys()])].filter((g) => g !== 'idle');
    const rows = groups
      .map((g) => [g, perCall(raw.byGroup.get(g) ?? 0), perCall(guarded.byGroup.get(g) ?? 0)] as const)
      .filter(([, r, g]) => r >= 0.5 || g >= 0.5)
      .sort((a, b) => b[2] - b[1] - (a[2] - a[1]));
    const total = (cpu: Cpu) => perCall([...cpu.byGroup].filter(([g]) => g !== 'idle').reduce((sum, [, us]) => sum + us, 0));
    log(`  ${limitHeaders ? 'with' : 'without'} rate-limit headers: CPU per call raw ${fmt(total(raw), 0)} µs, guarded ${fmt(total(guarded), 0)} µs`);
    const top = [...guarded.byGuardFunction].sort((a, b) => b[1] - a[1]).slice(0, 10);
    sections.push(
      `${limitHeaders ? 'From a provider that sends rate-limit headers on every response (as OpenAI and Anthropic do)' : 'From a provider that sends no rate-limit headers'}: CPU per call, ${fmt(total(raw), 0)} µs raw, **${fmt(total(guarded), 0)} µs guarded**.\n\n` +
        table(['where (CPU per call)', 'raw SDK', 'guarded', 'added'], rows.map(([g, r, gu]) => [g, `${fmt(r, 1)} µs`, `${fmt(gu, 1)} µs`, `${fmt(gu - r, 1)} µs`])) +
        `\n\nThe guard's own functions that cost most (self time per call): ${top.map(([fn, us]) => `\`${fn}\` ${fmt(perCall(us), 1)} µs`).join(', ')}.`,
    );
  }
  return {
    markdown:
      `Sequential calls over local HTTP (openai SDK, default settings), ${CALLS} per round, ${ROUNDS} rounds each of the raw SDK and the guard's built bundle in turns, sampled every 100 µs by V8's profiler after a warm-up (the fake provider runs in the same process: its share, and its pricing with genai-prices, is in both columns). The guarded-llm row and its functions are the stable part; the other rows' differences moved by tens of µs between runs on this host (cache and GC effects of the turns), so read them over several runs.\n\n` +
      sections.join('\n\n'),
  };
}
