import { ResponseTap, UnreadBodyError, type TapEnd } from '../../lib/internal/response-tap';
import { anthropicAdapter } from '../../lib/providers/anthropic';
import { openaiAdapter } from '../../lib/providers/openai';
import { textTokenWeight } from '../../lib/money/estimate';
import { fixture } from '../support/fixtures';
import { Readable } from 'node:stream';

const request = anthropicAdapter.parseRequest('https://api.anthropic.com/v1/messages', 'POST', '{"model":"m","max_tokens":500,"stream":true}');

/** A Response whose body arrives in `size`-byte chunks, like a socket would deliver it. */
function chunkedResponse(text: string, size: number, contentType = 'text/event-stream'): Response {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': contentType, 'request-id': 'req_1' } });
}

function streamTap(raw: Response, abortUpstream = jest.fn()) {
  return new ResponseTap(raw, {
    usageFromJson: (json) => anthropicAdapter.usageFromJson(request, json),
    streamReader: anthropicAdapter.createStreamUsageReader(request, textTokenWeight),
    inputTokensEstimate: 10,
    abortUpstream,
  });
}

describe('ResponseTap on a stream', () => {
  test.each([1, 17, 4096])('passes every byte through unchanged (%i-byte chunks) and reports the final usage once', async (size) => {
    const sse = fixture('anthropic/stream.sse');
    const tap = streamTap(chunkedResponse(sse, size));
    const ends: TapEnd[] = [];
    tap.onEnd((end) => ends.push(end));
    expect(tap.response.headers.get('request-id')).toBe('req_1');
    expect(await tap.response.text()).toBe(sse);
    expect(ends).toEqual([{ usage: { inputTokens: 1672, outputTokens: 89, cacheReadTokens: 1200 } }]);
    tap.onEnd((end) => ends.push(end)); // a late listener hears it at once
    expect(ends).toHaveLength(2);
  });

  test('reports running usage as deltas arrive, then the final count with the end', async () => {
    const tap = streamTap(chunkedResponse(fixture('anthropic/stream.sse'), 64));
    const outputs: number[] = [];
    const estimated: boolean[] = [];
    tap.onProgress((u) => {
      outputs.push(u.outputTokens);
      estimated.push(u.estimated === true);
    });
    let end: TapEnd | undefined;
    tap.onEnd((e) => (end = e));
    await tap.response.arrayBuffer();
    expect(outputs.length).toBeGreaterThan(3);
    expect(outputs).toEqual([...outputs].sort((a, b) => a - b));
    expect(estimated.every(Boolean)).toBe(true);
    expect(end!.usage!.outputTokens).toBe(89);
  });

  test('abort() errors the consumer with the given error and stops upstream, keeping the usage so far', async () => {
    const abortUpstream = jest.fn();
    const tap = streamTap(chunkedResponse(fixture('anthropic/stream.sse'), 200), abortUpstream);
    const stop = new Error('over budget');
    let ended: TapEnd | undefined;
    tap.onEnd((end) => (ended = end));
    tap.onProgress((u) => {
      if (u.outputTokens > 10) tap.abort(stop);
    });
    const reader = tap.response.body!.getReader();
    let received = 0;
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          received += value.length;
        }
      })(),
    ).rejects.toBe(stop);
    expect(received).toBeGreaterThan(0); // the chunk that crossed the line was still delivered
    expect(abortUpstream).toHaveBeenCalledWith(stop);
    expect(ended!.error).toBe(stop);
    expect(ended!.usage!.outputTokens).toBeGreaterThan(10);
  });

  test('a consumer that stops reading ends the tap as cancelled', async () => {
    const tap = streamTap(chunkedResponse(fixture('anthropic/stream.sse'), 100));
    let ended: TapEnd | undefined;
    tap.onEnd((end) => (ended = end));
    const reader = tap.response.body!.getReader();
    await reader.read();
    await reader.cancel();
    expect(ended).toMatchObject({ cancelled: true });
  });

  test('an upstream failure reaches the consumer as itself', async () => {
    const failure = new TypeError('terminated');
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(new TextEncoder().encode(fixture('anthropic/stream.sse').slice(0, 600)));
        } else controller.error(failure);
      },
    });
    const tap = streamTap(new Response(body, { headers: { 'content-type': 'text/event-stream' } }));
    let ended: TapEnd | undefined;
    tap.onEnd((end) => (ended = end));
    await expect(tap.response.text()).rejects.toBe(failure);
    expect(ended!.error).toBe(failure);
    expect(ended!.usage!.inputTokens).toBe(1672); // message_start was seen before the cut
  });
});

describe('ResponseTap on JSON', () => {
  const jsonTap = (text: string) =>
    new ResponseTap(chunkedResponse(text, 1000, 'application/json'), {
      usageFromJson: (json) => anthropicAdapter.usageFromJson(request, json),
      inputTokensEstimate: 0,
      abortUpstream: () => {},
    });

  test('usage is read where the SDK parses the body, json() or text()', async () => {
    const body = fixture('anthropic/message.json');
    const viaJson = jsonTap(body);
    let usage: TapEnd['usage'];
    viaJson.onEnd((e) => (usage = e.usage));
    expect(await viaJson.response.json()).toEqual(JSON.parse(body));
    expect(usage!.outputTokens).toBe(10);
    const viaText = jsonTap(body);
    expect(await viaText.response.text()).toBe(body);
    expect(viaText.usage()!.outputTokens).toBe(10);
  });

  test("a Response of another class (a fetch's own subclass) keeps its class, and its body is counted through body, arrayBuffer() or json()", async () => {
    class OwnResponse extends Response {
      own(): string {
        return 'still mine';
      }
    }
    const body = fixture('anthropic/message.json');
    const own = () => new OwnResponse(body, { status: 200, headers: { 'content-type': 'application/json' } });
    const tapOn = (raw: Response) => new ResponseTap(raw, { usageFromJson: (json) => anthropicAdapter.usageFromJson(request, json), inputTokensEstimate: 0, abortUpstream: () => {} });
    const viaJson = tapOn(own());
    expect(viaJson.response).toBeInstanceOf(OwnResponse);
    expect((viaJson.response as OwnResponse).own()).toBe('still mine');
    expect(await viaJson.response.json()).toEqual(JSON.parse(body));
    expect(viaJson.usage()!.outputTokens).toBe(10);
    const viaBytes = tapOn(own());
    expect(new TextDecoder().decode(await viaBytes.response.arrayBuffer())).toBe(body);
    expect(viaBytes.usage()!.outputTokens).toBe(10);
    // The AI SDK reads the body itself: a counted copy of it, whole.
    const viaBody = tapOn(own());
    expect(await new Response(viaBody.response.body).text()).toBe(body);
    expect(viaBody.usage()!.outputTokens).toBe(10);
    // An untapped response of the same class is untouched.
    expect(Object.getPrototypeOf(own())).toBe(OwnResponse.prototype);
  });

  test('a body looked at before json() (the Anthropic SDK looks at every one) stays the Response\'s own stream: json() counts it once and meets the final check once', async () => {
    const body = fixture('anthropic/message.json');
    const tap = jsonTap(body);
    const ends: TapEnd[] = [];
    tap.onEnd((e) => ends.push(e));
    const overrun = new Error('over the per-call cap');
    const undelivered = jest.fn();
    tap.setFinalCheck(() => overrun, undelivered);
    const looked = tap.response.body!;
    expect(looked).toBeInstanceOf(ReadableStream);
    expect(tap.response.body).toBe(looked);
    expect(looked.locked).toBe(false);
    await expect(tap.response.json()).rejects.toBe(overrun);
    expect(ends).toHaveLength(1);
    expect(ends[0]!.usage!.outputTokens).toBe(10);
    expect(undelivered).not.toHaveBeenCalled();
    expect(tap.response.bodyUsed).toBe(true);
  });

  test('every way of reading the body itself is counted: a reader, for await, pipeTo, tee, Readable.fromWeb, a new Response, blob()', async () => {
    const body = fixture('anthropic/message.json');
    const decode = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString('utf8');
    const collect = async (stream: ReadableStream<Uint8Array> | Readable) => {
      const chunks: Uint8Array[] = [];
      for await (const chunk of stream as AsyncIterable<Uint8Array>) chunks.push(chunk);
      return decode(chunks);
    };
    const ways: Record<string, (response: Response) => Promise<string>> = {
      getReader: async (r) => {
        const reader = r.body!.getReader();
        const chunks: Uint8Array[] = [];
        for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(next.value);
        return decode(chunks);
      },
      'for await': (r) => collect(r.body!),
      pipeTo: async (r) => {
        const chunks: Uint8Array[] = [];
        await r.body!.pipeTo(new WritableStream({ write: (chunk) => void chunks.push(chunk) }));
        return decode(chunks);
      },
      tee: async (r) => {
        const [a, b] = r.body!.tee();
        const [textA] = await Promise.all([collect(a), collect(b)]);
        return textA;
      },
      'Readable.fromWeb': (r) => collect(Readable.fromWeb(r.body! as import('node:stream/web').ReadableStream<Uint8Array>)),
      'new Response': (r) => new Response(r.body).text(),
      blob: async (r) => (await r.blob()).text(),
    };
    // Node 22's Response reads bytes() too.
    if (typeof (Response.prototype as { bytes?: unknown }).bytes === 'function') {
      ways.bytes = async (r) => Buffer.from(await (r as Response & { bytes(): Promise<Uint8Array> }).bytes()).toString('utf8');
    }
    for (const [way, read] of Object.entries(ways)) {
      const tap = jsonTap(body);
      const ends: TapEnd[] = [];
      tap.onEnd((e) => ends.push(e));
      expect({ way, text: await read(tap.response) }).toEqual({ way, text: body });
      expect({ way, ends: ends.length, output: ends[0]?.usage?.outputTokens }).toEqual({ way, ends: 1, output: 10 });
    }
  });

  test("a reader of the body (the AI SDK's way) meets the final check's error instead of the end, and one that cancels midway ends the tap as cancelled", async () => {
    const body = fixture('anthropic/message.json');
    const tap = new ResponseTap(chunkedResponse(body, 50, 'application/json'), { usageFromJson: (json) => anthropicAdapter.usageFromJson(request, json), inputTokensEstimate: 0, abortUpstream: () => {} });
    const overrun = new Error('over the per-call cap');
    tap.setFinalCheck(() => overrun);
    const reader = tap.response.body!.getReader();
    let read = '';
    const failure = await (async () => {
      for (;;) {
        const next = await reader.read();
        if (next.done) return undefined;
        read += Buffer.from(next.value).toString('utf8');
      }
    })().catch((e: unknown) => e);
    expect(failure).toBe(overrun);
    expect(read).toBe(body);
    expect(tap.usage()!.outputTokens).toBe(10);

    let ended: TapEnd | undefined;
    const partial = new ResponseTap(chunkedResponse(body, 50, 'application/json'), { usageFromJson: () => undefined, inputTokensEstimate: 0, abortUpstream: () => {} });
    partial.onEnd((e) => (ended = e));
    const halfway = partial.response.body!.getReader();
    await halfway.read();
    await halfway.cancel('enough');
    expect(ended).toMatchObject({ usage: undefined, cancelled: true });
  });

  test('a body being read is locked, as fetch has it: json() then fails and the reader still gets every byte, counted', async () => {
    const body = fixture('anthropic/message.json');
    const tap = jsonTap(body);
    const reader = tap.response.body!.getReader();
    expect(tap.response.body!.locked).toBe(true);
    // (Compared by name: jest runs tests in another realm than undici's TypeError.)
    await expect(tap.response.json()).rejects.toMatchObject({ name: 'TypeError' });
    const chunks: Uint8Array[] = [];
    for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(next.value);
    expect(Buffer.concat(chunks).toString('utf8')).toBe(body);
  });

  test('a body cancelled unread ends the tap as cancelled, and a clone reads the same bytes as the original', async () => {
    const body = fixture('anthropic/message.json');
    const cancelled = jsonTap(body);
    let ended: TapEnd | undefined;
    cancelled.onEnd((e) => (ended = e));
    await cancelled.response.body!.cancel('not needed');
    expect(ended).toMatchObject({ usage: undefined, cancelled: true });

    const tap = jsonTap(body);
    const copy = tap.response.clone();
    expect(await tap.response.json()).toEqual(JSON.parse(body));
    expect(await copy.text()).toBe(body);
    expect(tap.usage()!.outputTokens).toBe(10);
  });

  test('a malformed body ends the tap with the parse error, which the caller still gets', async () => {
    const tap = jsonTap('{"id": "broken", "content": [');
    let ended: TapEnd | undefined;
    tap.onEnd((e) => (ended = e));
    // (Compared by name: jest runs tests in another realm than undici's SyntaxError.)
    const error = await tap.response.json().catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'SyntaxError' });
    expect(ended!.error).toBe(error);
  });
});

describe('ResponseTap on a stream whose reader stops at its last event (openai 7 cancels at [DONE])', () => {
  const sse = fixture('anthropic/stream.sse');
  const FINAL = { inputTokens: 1672, outputTokens: 89, cacheReadTokens: 1200 };

  /** Reads until the text read so far holds `marker` (its chunk included); the text read. */
  async function readPast(reader: ReadableStreamDefaultReader<Uint8Array>, marker: string): Promise<string> {
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes(marker)) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    return text;
  }

  test('a cancel after the final usage ends the call as complete, not abandoned, without stopping anything', async () => {
    const abortUpstream = jest.fn();
    const tap = streamTap(chunkedResponse(sse, 64), abortUpstream);
    const ends: TapEnd[] = [];
    tap.onEnd((end) => ends.push(end));
    const reader = tap.response.body!.getReader();
    await readPast(reader, 'message_stop');
    await reader.cancel();
    expect(ends).toEqual([{ usage: FINAL }]);
    expect(abortUpstream).not.toHaveBeenCalled();
  });

  /** A stream whose final check fails, read up to the chunk with its final usage. */
  async function overCapReadToUsage() {
    const tap = streamTap(chunkedResponse(sse, 64));
    const overCap = new Error('over the per-call cap');
    const undelivered = jest.fn();
    tap.setFinalCheck(() => overCap, undelivered);
    const reader = tap.response.body!.getReader();
    const text = await readPast(reader, '"output_tokens":89');
    return { overCap, undelivered, reader, text };
  }

  test("the final check's error is what the next read meets, after the chunk that completed the stream", async () => {
    const { overCap, undelivered, reader, text } = await overCapReadToUsage();
    expect(text).toContain('message_delta');
    await expect(reader.read()).rejects.toBe(overCap);
    expect(undelivered).not.toHaveBeenCalled();
  });

  test('a reader that cancels before meeting that error: it is handed to undelivered (never silent)', async () => {
    const { overCap, undelivered, reader } = await overCapReadToUsage();
    await reader.cancel();
    expect(undelivered).toHaveBeenCalledWith(overCap);
  });

  test("with the end marker in the chunk that completed the stream, the error takes the marker's place (openai 7 stops at it)", async () => {
    const openaiRequest = openaiAdapter.parseRequest('https://api.openai.com/v1/chat/completions', 'POST', '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}');
    const content = 'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}\n\n';
    const tap = new ResponseTap(chunkedResponse(`${content}data: [DONE]\n\n`, 4096), {
      usageFromJson: () => undefined,
      streamReader: openaiAdapter.createStreamUsageReader(openaiRequest, textTokenWeight),
      inputTokensEstimate: 10,
      abortUpstream: () => {},
    });
    const overCap = new Error('over the per-call cap');
    tap.setFinalCheck(() => overCap);
    const reader = tap.response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe(content);
    await expect(reader.read()).rejects.toBe(overCap);
    expect(tap.usage()).toEqual({ inputTokens: 9, outputTokens: 1 });
  });

  test('a connection that fails after the last event loses nothing: the body closes with every byte', async () => {
    const bytes = new TextEncoder().encode(sse);
    let sent = false;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) return controller.error(new TypeError('terminated'));
        controller.enqueue(bytes);
        sent = true;
      },
    });
    const tap = streamTap(new Response(failing, { headers: { 'content-type': 'text/event-stream' } }));
    expect(await tap.response.text()).toBe(sse);
    expect(tap.usage()).toEqual(FINAL);
  });
});

describe('ResponseTap on a body nobody reads', () => {
  test('a stream not read for idleMs is stopped and ended, so its holds are released', async () => {
    const abortUpstream = jest.fn();
    const tap = new ResponseTap(chunkedResponse(fixture('anthropic/stream.sse'), 100), {
      usageFromJson: () => undefined,
      streamReader: anthropicAdapter.createStreamUsageReader(request, textTokenWeight),
      inputTokensEstimate: 10,
      abortUpstream,
      idleMs: 40,
    });
    let ended: TapEnd | undefined;
    tap.onEnd((end) => (ended = end));
    await new Promise((r) => setTimeout(r, 80));
    expect(ended).toMatchObject({ cancelled: true, error: expect.any(UnreadBodyError) });
    expect(abortUpstream).toHaveBeenCalled();
    await expect(tap.response.text()).rejects.toBeInstanceOf(UnreadBodyError);
  });

  test('reading keeps a slow stream alive: the clock restarts at every read', async () => {
    // 22 reads 20 ms apart (~440 ms) against a 150 ms idle limit: without the restart it lets go
    // at 150 ms, and a loaded machine has 130 ms of slack on each gap (25 against 60 once failed).
    const tap = new ResponseTap(chunkedResponse(fixture('anthropic/stream.sse'), 100), {
      usageFromJson: () => undefined,
      streamReader: anthropicAdapter.createStreamUsageReader(request, textTokenWeight),
      inputTokensEstimate: 10,
      abortUpstream: () => {},
      idleMs: 150,
    });
    const reader = tap.response.body!.getReader();
    for (;;) {
      await new Promise((r) => setTimeout(r, 20));
      const { done } = await reader.read();
      if (done) break;
    }
    expect(tap.usage()!.outputTokens).toBe(89);
  });

  test('an unread JSON body ends with an error (the guard charges its worst case); reading it later still works', async () => {
    const body = fixture('anthropic/message.json');
    const tap = new ResponseTap(chunkedResponse(body, 1000, 'application/json'), {
      usageFromJson: (json) => anthropicAdapter.usageFromJson(request, json),
      inputTokensEstimate: 0,
      abortUpstream: () => {},
      idleMs: 30,
    });
    let ended: TapEnd | undefined;
    tap.onEnd((end) => (ended = end));
    await new Promise((r) => setTimeout(r, 60));
    expect(ended).toMatchObject({ usage: undefined, error: expect.any(UnreadBodyError) });
    expect(await tap.response.json()).toEqual(JSON.parse(body));
  });
});
