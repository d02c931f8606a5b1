/**
 * A local fake of OpenAI's Realtime API over WebSocket (TLS: the SDK always connects with wss://),
 * enough of the protocol to test a guard against: session.created, conversation items and the
 * input audio buffer, response.create → deltas → response.done with usage, response.cancel,
 * error events, a server that drops the socket mid-response, and a ledger of what it billed.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { WebSocket as WsSocket, WebSocketServer } from 'ws';
import { REALTIME_TEST_CERT, REALTIME_TEST_KEY } from './realtime-cert';

/** $ per million tokens, from OpenAI's pricing page (kept here on purpose: the guard prices with genai-prices). */
const PRICES: Record<string, { text: number; cachedText: number; audio: number; cachedAudio: number; textOut: number; audioOut: number }> = {
  'gpt-realtime': { text: 4, cachedText: 0.4, audio: 32, cachedAudio: 0.4, textOut: 16, audioOut: 64 },
  'gpt-realtime-mini': { text: 0.6, cachedText: 0.06, audio: 10, cachedAudio: 0.3, textOut: 2.4, audioOut: 20 },
};

/** PCM16 at 24 kHz: input audio is billed 1 token per 100 ms, output audio 1 token per 50 ms. */
export const REALTIME_INPUT_AUDIO_BYTES_PER_TOKEN = 4800;
export const REALTIME_OUTPUT_AUDIO_BYTES_PER_TOKEN = 2400;

export interface FakeRealtimeOptions {
  /** Output tokens of a response (text, or the transcript of the audio). Default 20. */
  outputTokens?: number;
  /** Output audio tokens per output text token (0: text only). Default 0. */
  audioPerToken?: number;
  /** Delay between deltas. Default 2 ms. */
  tokenDelayMs?: number;
  port?: number;
}

/** What the fake billed for one response. */
export interface RealtimeResponseRecord {
  sessionId: string;
  responseId: string;
  status: 'completed' | 'cancelled' | 'dropped';
  usage: RealtimeUsage;
  usd: number;
}

export interface RealtimeUsage {
  total_tokens: number;
  input_tokens: number;
  output_tokens: number;
  input_token_details: { text_tokens: number; audio_tokens: number; image_tokens: number; cached_tokens: number; cached_tokens_details: { text_tokens: number; audio_tokens: number; image_tokens: number } };
  output_token_details: { text_tokens: number; audio_tokens: number };
}

interface Session {
  id: string;
  model: string;
  socket: WsSocket;
  /** The conversation so far, as the next response will be billed for it. */
  text: number;
  audio: number;
  /** What the previous response read (cached for the next one). */
  cachedText: number;
  cachedAudio: number;
  pendingAudioBytes: number;
  active: { id: string; stop: (status: 'cancelled' | 'dropped') => void } | undefined;
}

export class FakeRealtime {
  readonly responses: RealtimeResponseRecord[] = [];
  /** Sessions ever opened, and open now. */
  readonly stats = { sessions: 0, open: 0, billedUsd: 0 };
  /** API keys the sessions were opened with (to check that none leaks elsewhere). */
  readonly apiKeys: string[] = [];
  private readonly options: Required<Omit<FakeRealtimeOptions, 'port'>>;
  private dropAfter: number | undefined;
  private seq = 0;
  private readonly sockets = new Set<WsSocket>();

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    options: FakeRealtimeOptions,
  ) {
    this.options = { outputTokens: options.outputTokens ?? 20, audioPerToken: options.audioPerToken ?? 0, tokenDelayMs: options.tokenDelayMs ?? 2 };
    wss.on('connection', (socket, req) => this.open(socket, req));
  }

  static async start(options: FakeRealtimeOptions = {}): Promise<FakeRealtime> {
    // ws is an optional peer (openai/realtime/ws needs it too): loaded only when a realtime fake starts.
    let Wss: typeof WebSocketServer;
    try {
      Wss = (require('ws') as typeof import('ws')).WebSocketServer;
    } catch {
      throw new Error('The fake Realtime server needs the ws package (npm install ws), as openai/realtime/ws does.');
    }
    const server = createServer({ cert: REALTIME_TEST_CERT, key: REALTIME_TEST_KEY });
    const wss = new Wss({ server, path: '/v1/realtime' });
    const fake = new FakeRealtime(server, wss, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    return fake;
  }

  /** baseURL for `new OpenAI({ baseURL })`; the SDK opens wss://…/v1/realtime on it. */
  get openaiBaseURL(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  /** The certificate to trust: `new OpenAIRealtimeWS({ model, options: { ca: fake.ca } }, client)`. */
  get ca(): string {
    return REALTIME_TEST_CERT;
  }

  /** Changes the defaults for responses from now on. */
  configure(patch: Omit<FakeRealtimeOptions, 'port'>): this {
    Object.assign(this.options, patch);
    return this;
  }

  /** The next response is cut: the socket is dropped (no close frame) after `afterTokens` output deltas. */
  dropNextResponse(afterTokens: number): this {
    this.dropAfter = afterTokens;
    return this;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private open(socket: WsSocket, req: IncomingMessage): void {
    const url = new URL(req.url ?? '/', 'https://fake');
    const model = url.searchParams.get('model') ?? 'gpt-realtime';
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) this.apiKeys.push(auth.slice(7));
    this.sockets.add(socket);
    this.stats.sessions++;
    this.stats.open++;
    const session: Session = { id: `sess_${++this.seq}`, model, socket, text: 0, audio: 0, cachedText: 0, cachedAudio: 0, pendingAudioBytes: 0, active: undefined };
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.stats.open--;
      session.active?.stop('dropped');
    });
    socket.on('error', () => {});
    socket.on('message', (data) => {
      let event: { type?: string; [k: string]: unknown };
      try {
        event = JSON.parse(String(data));
      } catch {
        return this.error(session, 'invalid_request_error', 'invalid_json', 'The event is not valid JSON.');
      }
      this.handle(session, event);
    });
    this.send(session, { type: 'session.created', session: { id: session.id, object: 'realtime.session', model, type: 'realtime' } });
  }

  private handle(session: Session, event: { type?: string; [k: string]: unknown }): void {
    switch (event.type) {
      case 'session.update':
        return this.send(session, { type: 'session.updated', session: { id: session.id, model: session.model, ...(event.session as object) } });
      case 'conversation.item.create': {
        const item = event.item as { content?: Array<{ type: string; text?: string; audio?: string }> } | undefined;
        for (const part of item?.content ?? []) {
          if (typeof part.text === 'string') session.text += Math.ceil(part.text.length / 4);
          if (typeof part.audio === 'string') session.audio += Math.ceil(Buffer.from(part.audio, 'base64').length / REALTIME_INPUT_AUDIO_BYTES_PER_TOKEN);
        }
        return this.send(session, { type: 'conversation.item.created', item: { id: `item_${++this.seq}`, ...(item as object) } });
      }
      case 'input_audio_buffer.append':
        session.pendingAudioBytes += Buffer.from(String(event.audio ?? ''), 'base64').length;
        return;
      case 'input_audio_buffer.commit':
        session.audio += Math.ceil(session.pendingAudioBytes / REALTIME_INPUT_AUDIO_BYTES_PER_TOKEN);
        session.pendingAudioBytes = 0;
        return this.send(session, { type: 'input_audio_buffer.committed', item_id: `item_${++this.seq}` });
      case 'response.create':
        if (session.active) return this.error(session, 'invalid_request_error', 'conversation_already_has_active_response', 'Conversation already has an active response in progress.');
        return this.respond(session);
      case 'response.cancel':
        if (!session.active) return this.error(session, 'invalid_request_error', 'response_cancel_not_active', 'Cancellation failed: no active response found.');
        return session.active.stop('cancelled');
      default:
        return this.error(session, 'invalid_request_error', 'unknown_event', `Unknown event type ${String(event.type)}.`);
    }
  }

  private respond(session: Session): void {
    const id = `resp_${++this.seq}`;
    const { outputTokens, audioPerToken, tokenDelayMs } = this.options;
    const dropAfter = this.dropAfter;
    this.dropAfter = undefined;
    const input = { text: session.text, audio: session.audio, cachedText: Math.min(session.cachedText, session.text), cachedAudio: Math.min(session.cachedAudio, session.audio) };
    let generated = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (status: RealtimeResponseRecord['status']) => {
      clearTimeout(timer);
      session.active = undefined;
      const audioOut = generated * audioPerToken;
      const usage: RealtimeUsage = {
        total_tokens: input.text + input.audio + generated + audioOut,
        input_tokens: input.text + input.audio,
        output_tokens: generated + audioOut,
        input_token_details: {
          text_tokens: input.text,
          audio_tokens: input.audio,
          image_tokens: 0,
          cached_tokens: input.cachedText + input.cachedAudio,
          cached_tokens_details: { text_tokens: input.cachedText, audio_tokens: input.cachedAudio, image_tokens: 0 },
        },
        output_token_details: { text_tokens: generated, audio_tokens: audioOut },
      };
      const usd = this.price(session.model, usage);
      this.responses.push({ sessionId: session.id, responseId: id, status, usage, usd });
      this.stats.billedUsd += usd;
      // What was read is cached for the next response; what was said joins the conversation.
      session.cachedText = input.text;
      session.cachedAudio = input.audio;
      session.text += generated;
      session.audio += audioOut;
      if (status !== 'dropped') {
        this.send(session, { type: 'response.done', response: { id, object: 'realtime.response', status, output: [], usage } });
      }
    };
    session.active = { id, stop: finish };
    this.send(session, { type: 'response.created', response: { id, object: 'realtime.response', status: 'in_progress', output: [] } });
    const tick = () => {
      if (session.active?.id !== id) return;
      if (generated >= outputTokens) return finish('completed');
      if (dropAfter !== undefined && generated >= dropAfter) {
        finish('dropped');
        session.socket.terminate();
        return;
      }
      generated++;
      if (audioPerToken > 0) {
        this.send(session, { type: 'response.output_audio.delta', response_id: id, item_id: `item_${id}`, output_index: 0, content_index: 0, delta: Buffer.alloc(audioPerToken * REALTIME_OUTPUT_AUDIO_BYTES_PER_TOKEN).toString('base64') });
        this.send(session, { type: 'response.output_audio_transcript.delta', response_id: id, item_id: `item_${id}`, output_index: 0, content_index: 0, delta: 'word' });
      } else {
        this.send(session, { type: 'response.output_text.delta', response_id: id, item_id: `item_${id}`, output_index: 0, content_index: 0, delta: 'word' });
      }
      timer = setTimeout(tick, tokenDelayMs);
    };
    timer = setTimeout(tick, tokenDelayMs);
  }

  private price(model: string, usage: RealtimeUsage): number {
    const p = PRICES[model];
    if (!p) return 0;
    const d = usage.input_token_details;
    const c = d.cached_tokens_details;
    const o = usage.output_token_details;
    return ((d.text_tokens - c.text_tokens) * p.text + c.text_tokens * p.cachedText + (d.audio_tokens - c.audio_tokens) * p.audio + c.audio_tokens * p.cachedAudio + o.text_tokens * p.textOut + o.audio_tokens * p.audioOut) / 1e6;
  }

  private error(session: Session, type: string, code: string, message: string): void {
    this.send(session, { type: 'error', error: { type, code, message, param: null, event_id: null } });
  }

  private send(session: Session, event: object): void {
    if (session.socket.readyState === session.socket.OPEN) session.socket.send(JSON.stringify({ event_id: `event_${++this.seq}`, ...event }));
  }
}

/** Starts a fake Realtime server on a free local port (TLS, self-signed: trust `fake.ca`). */
export function startFakeRealtime(options?: FakeRealtimeOptions): Promise<FakeRealtime> {
  return FakeRealtime.start(options);
}
