/**
 * The fake provider in a process of its own (bench/support.ts `providerInOwnProcess`): as in
 * production, where the provider's work never runs on the client's thread or in its CPU caches.
 */
import { startFakeProvider, type FakeProviderOptions } from '../lib/testing';

async function main(): Promise<void> {
  const fake = await startFakeProvider(JSON.parse(process.argv[2] ?? '{}') as FakeProviderOptions);
  process.send!({ openaiBaseURL: fake.openaiBaseURL, anthropicBaseURL: fake.anthropicBaseURL });
  process.on('disconnect', () => void fake.close().then(() => process.exit(0)));
}

void main();
