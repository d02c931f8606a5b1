import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'lib/index.ts', testing: 'lib/testing/index.ts', cli: 'lib/cli.ts' },
  format: ['cjs', 'esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: true,
  treeshake: true,
  // The ESM build loads the optional SDK peers synchronously for createGuardedClient('anthropic').
  banner: ({ format }) => (format === 'esm' ? { js: "import { createRequire as __guardedCreateRequire } from 'node:module';\nconst require = __guardedCreateRequire(import.meta.url);" } : {}),
});
