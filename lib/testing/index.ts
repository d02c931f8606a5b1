/**
 * `guarded-llm/testing`: a local fake of the Anthropic and OpenAI APIs for tests, examples and
 * benchmarks — real HTTP, real wire formats, rate limits and faults.
 */
export {
  FakeProvider,
  startFakeProvider,
  fakeTokens,
  type FakeProviderOptions,
  type FakeBehaviour,
  type FakeLimits,
  type FakeStats,
  type Fault,
  type FaultOptions,
  type RequestRecord,
} from './fake-provider';
export { TokenBucket } from './token-bucket';
export { FakeRealtime, startFakeRealtime, type FakeRealtimeOptions, type RealtimeResponseRecord, type RealtimeUsage } from './fake-realtime';
export { formatGoDuration, type Dialect, type FakeEndpoint } from './wire';
