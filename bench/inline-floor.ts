/**
 * A floor for the guard's overhead, not a product: the essential work of a guard for one case
 * (non-streaming OpenAI chat, one dollar budget, a concurrency cap, no retries, no breaker, no
 * events) written inline in a custom fetch. The overhead bench runs it beside the guard, so that
 * what the guard's generality costs over that essential work is a measured number.
 */
const PRICE_PER_TOKEN = { input: 0.15e-6, output: 0.6e-6 }; // gpt-4o-mini
const LARGEST_OUTPUT = 16_384;
const TIMEOUT_MS = 600_000;

export function inlineFloorFetch(options: { maxConcurrent: number; budgetUsd: number }): typeof fetch {
  let inFlight = 0;
  let spent = 0;
  let reserved = 0;
  return async (input, init) => {
    // What the guard weighs: the request's model, size and output cap (the SDK sends a JSON string).
    const request = JSON.parse(String(init?.body)) as { messages: unknown; max_tokens?: number };
    const worst = (JSON.stringify(request.messages).length / 4) * PRICE_PER_TOKEN.input + (request.max_tokens ?? LARGEST_OUTPUT) * PRICE_PER_TOKEN.output;
    if (inFlight >= options.maxConcurrent || spent + reserved + worst > options.budgetUsd) throw new Error('refused (the floor does not queue)');
    inFlight++;
    reserved += worst;
    // Its own abort: the caller's signal, and a timeout of its own.
    const controller = new AbortController();
    const callerSignal = init?.signal ?? undefined;
    const onCallerAbort = () => controller.abort(callerSignal!.reason);
    callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    timer.unref();
    const done = () => {
      inFlight--;
      reserved -= worst;
      callerSignal?.removeEventListener('abort', onCallerAbort);
    };
    let response: Response;
    try {
      response = await fetch(input, { ...init, signal: controller.signal });
    } catch (error) {
      clearTimeout(timer);
      done();
      throw error;
    }
    clearTimeout(timer);
    // Usage read where the SDK parses the body, the actual cost settled.
    const json = response.json.bind(response);
    response.json = async () => {
      const body = (await json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
      done();
      spent += body.usage.prompt_tokens * PRICE_PER_TOKEN.input + body.usage.completion_tokens * PRICE_PER_TOKEN.output;
      return body;
    };
    return response;
  };
}
