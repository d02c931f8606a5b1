/** `npm run example` runs every example; `npm run example -- streaming` runs one. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(__dirname, '..', 'examples');
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

async function run(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !all.includes(name));
  if (unknown.length) {
    console.error(`Unknown example ${unknown.join(', ')}. Available: ${all.join(', ')}`);
    process.exit(1);
  }
  for (const name of wanted.length ? wanted : all) {
    console.log(`\n=== examples/${name}.ts ===`);
    const example = (await import(join(dir, `${name}.ts`))) as { main: () => Promise<void> };
    await example.main();
  }
}

run().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
