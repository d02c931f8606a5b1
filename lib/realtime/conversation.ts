/**
 * A Realtime conversation as the next response will be billed for it: each response reads the
 * whole conversation (what the previous one read is cached), and its own output joins it. Known
 * exactly from each `response.done` usage; what the client added since is estimated from its events.
 */
import type { RealtimeUsageEvent } from './realtime-price';
import { REALTIME_INPUT_AUDIO_BYTES_PER_TOKEN_ESTIMATE as INPUT_AUDIO_BYTES_PER_TOKEN } from './realtime-deltas';

export class Conversation {
  /** Read by the last response (cached for the next), by kind. */
  private readText = 0;
  private readAudio = 0;
  /** Added since: the last response's output, and the client's new items. */
  private newText = 0;
  private newAudio = 0;
  /** Audio appended to the input buffer, not yet committed. */
  private bufferedBytes = 0;

  get inputTokens(): number {
    return this.readText + this.readAudio + this.newText + this.newAudio;
  }

  /** A client event: new items and committed audio add to what the next response reads. */
  sent(event: { type: string }): void {
    const e = event as { type: string; item?: { content?: Array<{ text?: unknown; audio?: unknown; transcript?: unknown }> }; audio?: unknown };
    if (e.type === 'conversation.item.create') {
      for (const part of e.item?.content ?? []) {
        if (typeof part.text === 'string') this.newText += Math.ceil(part.text.length / 4);
        if (typeof part.audio === 'string') this.newAudio += Math.ceil(base64Bytes(part.audio) / INPUT_AUDIO_BYTES_PER_TOKEN);
      }
    } else if (e.type === 'input_audio_buffer.append' && typeof e.audio === 'string') this.bufferedBytes += base64Bytes(e.audio);
    else if (e.type === 'input_audio_buffer.commit') {
      this.newAudio += Math.ceil(this.bufferedBytes / INPUT_AUDIO_BYTES_PER_TOKEN);
      this.bufferedBytes = 0;
    } else if (e.type === 'input_audio_buffer.clear') this.bufferedBytes = 0;
  }

  /** The usage of the next response with this much output: the conversation read, the part read before cached. */
  nextResponse(outputText: number, outputAudio: number): RealtimeUsageEvent {
    const text = this.readText + this.newText;
    const audio = this.readAudio + this.newAudio;
    return {
      input_tokens: text + audio,
      output_tokens: outputText + outputAudio,
      input_token_details: { text_tokens: text, audio_tokens: audio, cached_tokens: this.readText + this.readAudio, cached_tokens_details: { text_tokens: this.readText, audio_tokens: this.readAudio } },
      output_token_details: { text_tokens: outputText, audio_tokens: outputAudio },
    };
  }

  /** A response reported its usage: what it read is now known exactly, and its output joins the conversation. */
  answered(usage: RealtimeUsageEvent): void {
    const details = usage.input_token_details;
    const audio = details?.audio_tokens ?? 0;
    this.readAudio = audio;
    this.readText = (details?.text_tokens ?? Math.max(0, (usage.input_tokens ?? 0) - audio));
    this.newText = usage.output_token_details?.text_tokens ?? usage.output_tokens ?? 0;
    this.newAudio = usage.output_token_details?.audio_tokens ?? 0;
  }
}

function base64Bytes(base64: string): number {
  return Math.floor((base64.length * 3) / 4);
}
