/**
 * Streams go through the guard untouched: every byte reaches the SDK as the provider sent it,
 * while the guard counts tokens as they flow.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createGuardedClient } from 'guarded-llm';
import { target } from './_provider';

export async function main(): Promise<void> {
  const where = await target('anthropic');
  const anthropic = createGuardedClient(new Anthropic(where.clientOptions));

  process.stdout.write('stream: ');
  const stream = anthropic.messages.stream({
    model: 'claude-sonnet-4-6',
    max_tokens: 200,
    messages: [{ role: 'user', content: 'Count from one to twenty in words.' }],
  });
  stream.on('text', (text) => process.stdout.write(text));
  const final = await stream.finalMessage();
  console.log(`\nusage: ${final.usage.input_tokens} in / ${final.usage.output_tokens} out`);
  console.log(`spent: $${anthropic.guard.status().totals.costUsd.toFixed(6)}`);
  await anthropic.guard.close();
  await where.close();
}

if (require.main === module) void main();
