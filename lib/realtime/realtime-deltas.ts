/**
 * What a Realtime response's deltas tell of its output before its usage arrives: enough to cut
 * it at a cap mid-response. Its `response.done` usage replaces the estimate.
 */

/** PCM16 mono at 24 kHz is 48,000 bytes a second; OpenAI bills output audio at ~20 tokens a second. */
export const REALTIME_OUTPUT_AUDIO_BYTES_PER_TOKEN_ESTIMATE = 2400;
/** …and input audio at ~10 tokens a second. */
export const REALTIME_INPUT_AUDIO_BYTES_PER_TOKEN_ESTIMATE = 4800;

/** Tokens of a text (or transcript) delta: ~4 characters a token. */
export function estimateDeltaTokens(delta: string | undefined): number {
  return delta ? Math.ceil(delta.length / 4) : 0;
}

/** Audio tokens of a base64 audio delta. */
export function estimateAudioDeltaTokens(base64: string | undefined): number {
  return base64 ? Math.ceil((base64.length * 3) / 4 / REALTIME_OUTPUT_AUDIO_BYTES_PER_TOKEN_ESTIMATE) : 0;
}
