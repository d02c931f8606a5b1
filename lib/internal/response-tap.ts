import { createParser } from 'eventsource-parser';
import type { StreamUsageReader, Usage } from '../providers/adapter';

export interface TapEnd {
  /** Usage as reported (or estimated, with `estimated: true`); undefined when the body had nothing to count it from. */
  usage: Usage | undefined;
  /** Set when the body failed or was aborted (by the guard or the consumer). */
  error?: unknown;
  /** The consumer stopped reading before the end (stream `break`, SDK abort). */
  cancelled?: boolean;
}

export interface TapOptions {
  /** Usage from the parsed JSON body (non-streaming responses). */
  usageFromJson: (json: unknown) => Usage | undefined;
  /** Set for SSE responses: reads usage from events as they pass. */
  streamReader?: StreamUsageReader;
  /** Fills in input tokens when the stream reports only output (OpenAI without include_usage). */
  inputTokensEstimate: number;
  /** Stops the upstream request (the provider stops generating and billing). */
  abortUpstream: (reason: unknown) => void;
  /**
   * A body nobody reads for this long is let go: a stream's upstream is stopped (its slot freed,
   * what arrived charged), an unread JSON body is charged at its worst case. Undefined: never.
   */
  idleMs?: number;
}

/** The tap watching each successful body the guard handed on, by the Response the SDK gets. */
const taps = new WeakMap<Response, ResponseTap>();

/** The tap on a response the guard returned (undefined for an error answer or a non-billable call). */
export function tapOf(response: Response): ResponseTap | undefined {
  return taps.get(response);
}

/** What a reader meets when it comes back to a body the guard let go after idleMs. */
export class UnreadBodyError extends Error {
  override readonly name = 'UnreadBodyError';
  constructor(idleMs: number) {
    super(`The response body was not read for ${idleMs} ms (guard timeoutMs); the guard released it.`);
  }
}

/**
 * Watches a successful response's body on its way to the SDK, without buffering or altering a
 * byte: streams pass through a pull-based ReadableStream (a chunk moves only when the SDK reads),
 * and JSON bodies are observed where the SDK parses them (`json()` / `text()`), which costs
 * nothing extra. Reports running usage (streams) and the end, exactly once.
 */
export class ResponseTap {
  readonly response: Response;
  private progressListeners: Array<(usage: Usage) => void> = [];
  private endListeners: Array<(end: TapEnd) => void> = [];
  private ended: TapEnd | undefined;
  private streamController: ReadableStreamDefaultController<Uint8Array> | undefined;
  private upstream: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private jsonUsage: Usage | undefined;
  private finalCheck: ((end: TapEnd, value?: unknown) => unknown) | undefined;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(raw: Response, private readonly options: TapOptions) {
    this.response = options.streamReader && raw.body ? this.tapStream(raw, options.streamReader) : this.tapJson(raw);
    taps.set(this.response, this);
    if (options.idleMs !== undefined) {
      this.idleTimer = setTimeout(() => this.letGo(), options.idleMs);
      this.idleTimer.unref();
    }
  }

  /** Nobody read the body for idleMs: stop it, and end the tap so every hold on it is released. */
  private letGo(): void {
    const error = new UnreadBodyError(this.options.idleMs!);
    if (this.options.streamReader) this.stop(error, { usage: this.streamUsage() ?? this.fallbackUsage(), error, cancelled: true });
    else this.finish({ usage: undefined, error });
  }

  /** Running usage while a stream flows; final usage once it ended. */
  usage(): Usage | undefined {
    if (this.ended) return this.ended.usage;
    return this.options.streamReader ? this.streamUsage() : this.jsonUsage;
  }

  get done(): boolean {
    return this.ended !== undefined;
  }

  /** Called on every change of a stream's running usage. */
  onProgress(listener: (usage: Usage) => void): void {
    this.progressListeners.push(listener);
  }

  /**
   * Runs once the body is complete and its usage known, after the end listeners: an error it
   * returns is what the reader gets instead of the last piece (the JSON value, the stream's close).
   */
  setFinalCheck(check: (end: TapEnd, value?: unknown) => unknown): void {
    this.finalCheck = check;
  }

  /** Called once when the body ended, failed or was cancelled; at once if that already happened. */
  onEnd(listener: (end: TapEnd) => void): void {
    if (this.ended) listener(this.ended);
    else this.endListeners.push(listener);
  }

  /**
   * Errors the body towards the SDK with `error` (the user sees it from iteration and the stream
   * helpers) and stops the upstream request so the provider stops generating.
   */
  abort(error: unknown): void {
    this.stop(error, { usage: this.usage(), error });
  }

  /** Errors the body towards the reader, stops the upstream request, and ends the tap with `end`. */
  private stop(error: unknown, end: TapEnd): void {
    if (this.ended) return;
    this.streamController?.error(error);
    this.upstream?.cancel(error).catch(() => {});
    this.options.abortUpstream(error);
    this.finish(end);
  }

  private finish(end: TapEnd): void {
    if (this.ended) return;
    this.ended = end;
    clearTimeout(this.idleTimer);
    const listeners = this.endListeners;
    this.endListeners = [];
    this.progressListeners = [];
    for (const listener of listeners) listener(end);
  }

  private streamUsage(): Usage | undefined {
    const usage = this.options.streamReader!.usage();
    if (usage && usage.estimated && usage.inputTokens === 0) usage.inputTokens = this.options.inputTokensEstimate;
    return usage;
  }

  private tapStream(raw: Response, reader: StreamUsageReader): Response {
    const decoder = new TextDecoder();
    let changed = false;
    const parser = createParser({
      onEvent: (event) => {
        if (reader.onEvent(event.event, event.data)) changed = true;
      },
    });
    const upstream = raw.body!.getReader();
    this.upstream = upstream;
    const body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.streamController = controller;
        },
        pull: async (controller) => {
          this.idleTimer?.refresh();
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await upstream.read();
          } catch (error) {
            if (this.ended) return;
            controller.error(error);
            this.finish({ usage: this.streamUsage() ?? this.fallbackUsage(), error });
            return;
          }
          if (this.ended) return;
          if (chunk.done) {
            parser.feed(decoder.decode());
            // A stream that ended reporting and carrying nothing countable: its reader prices the worst case.
            const end: TapEnd = { usage: this.streamUsage() };
            this.finish(end);
            const error = this.finalCheck?.(end);
            if (error) controller.error(error);
            else controller.close();
            return;
          }
          // Hand the bytes on first: what the provider sent and billed is never withheld.
          controller.enqueue(chunk.value);
          parser.feed(decoder.decode(chunk.value, { stream: true }));
          if (changed) {
            changed = false;
            const usage = this.streamUsage();
            if (usage) for (const listener of this.progressListeners) listener(usage);
          }
        },
        cancel: (reason) => {
          this.finish({ usage: this.streamUsage() ?? this.fallbackUsage(), cancelled: true });
          return upstream.cancel(reason);
        },
      },
      { highWaterMark: 0 },
    );
    return new Response(body, { status: raw.status, statusText: raw.statusText, headers: raw.headers });
  }

  /** A stream that ended before any usage event was still billed for its input. */
  private fallbackUsage(): Usage {
    return { inputTokens: this.options.inputTokensEstimate, outputTokens: 0, estimated: true };
  }

  private tapJson(raw: Response): Response {
    const json = raw.json.bind(raw);
    const text = raw.text.bind(raw);
    const arrayBuffer = raw.arrayBuffer.bind(raw);
    const record = (value: unknown) => {
      this.jsonUsage = this.options.usageFromJson(value);
      const end: TapEnd = { usage: this.jsonUsage };
      this.finish(end);
      return this.finalCheck?.(end, value);
    };
    const recordText = (value: string) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        parsed = undefined;
      }
      return record(parsed);
    };
    const fail = (error: unknown) => {
      this.finish({ usage: undefined, error });
      throw error;
    };
    const reading = () => clearTimeout(this.idleTimer);
    let body: ReadableStream<Uint8Array> | null | undefined;
    // Own properties shadow Response.prototype: the SDKs' `await response.json()` lands here, and
    // a client that reads the body itself (the AI SDK's getReader()) reads a counted copy of it.
    Object.defineProperties(raw, {
      json: {
        value: () =>
          (reading(), json()).then((value) => {
            const error = record(value);
            if (error) throw error;
            return value;
          }, fail),
      },
      text: {
        value: () =>
          (reading(), text()).then((value) => {
            const error = recordText(value);
            if (error) throw error;
            return value;
          }, fail),
      },
      arrayBuffer: {
        value: () =>
          (reading(), arrayBuffer()).then((value) => {
            const error = recordText(new TextDecoder().decode(value));
            if (error) throw error;
            return value;
          }, fail),
      },
      body: {
        get: () => {
          if (body !== undefined) return body;
          const raw_ = RAW_BODY.call(raw);
          return (body = raw_ === null ? null : this.collectJson(raw_, recordText, reading));
        },
      },
    });
    return raw;
  }

  /** A JSON body read as a stream: passed through as it is read, its usage recorded at its end. */
  private collectJson(raw: ReadableStream<Uint8Array>, recordText: (text: string) => unknown, reading: () => void): ReadableStream<Uint8Array> {
    // Locked on the first read only: a client that merely looks at `body` can still call json().
    let upstream: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const decoder = new TextDecoder();
    let text = '';
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          if (!upstream) {
            reading();
            upstream = raw.getReader();
          }
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await upstream.read();
          } catch (error) {
            controller.error(error);
            this.finish({ usage: undefined, error });
            return;
          }
          if (chunk.done) {
            const error = recordText(text + decoder.decode());
            if (error) controller.error(error);
            else controller.close();
            return;
          }
          text += decoder.decode(chunk.value, { stream: true });
          controller.enqueue(chunk.value);
        },
        cancel: (reason) => {
          this.finish({ usage: undefined, cancelled: true });
          return (upstream ?? raw).cancel(reason);
        },
      },
      { highWaterMark: 0 },
    );
  }
}

/** Response.prototype's own body getter (the tap shadows it with a counted copy). */
const RAW_BODY = Object.getOwnPropertyDescriptor(Response.prototype, 'body')!.get! as (this: Response) => ReadableStream<Uint8Array> | null;
