/**
 * The same guard around the OpenAI client: chat, the Responses API and embeddings, with
 * per-user scopes carried to every call.
 */
import OpenAI from 'openai';
import { createGuardedClient } from 'guarded-llm';
import { target } from './_provider';

export async function main(): Promise<void> {
  const where = await target('openai');
  const openai = createGuardedClient(new OpenAI(where.clientOptions));
  openai.guard.on('response', (e) =>
    console.log(`  ${e.endpoint} → ${e.status} in ${e.durationMs.toFixed(0)} ms, user=${e.scope.user ?? '-'}, tokens ${e.usage?.inputTokens}/${e.usage?.outputTokens}`),
  );

  // A view of the same client whose calls are charged to one user.
  const alice = openai.guard.withScope({ user: 'alice' });
  const chat = await alice.chat.completions.create({
    model: 'gpt-4o-mini',
    max_completion_tokens: 64,
    messages: [{ role: 'user', content: 'Name one reason to cap the cost of an LLM call.' }],
  });
  console.log('chat:', chat.choices[0]?.message.content?.trim());

  const response = await openai.responses.create({ model: 'gpt-4o-mini', input: 'Say hello in French.', max_output_tokens: 32 });
  console.log('responses:', response.output_text.trim());

  const embeddings = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['guarded', 'llm'] });
  console.log(`embeddings: ${embeddings.data.length} vectors of ${embeddings.data[0]?.embedding.length} dimensions`);

  console.log(`spent: $${openai.guard.status().totals.costUsd.toFixed(6)}`);
  await openai.guard.close();
  await where.close();
}

if (require.main === module) void main();
