import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', testing: 'src/testing.ts' },
  format: ['esm', 'cjs'],
  // stripInternal: members marked @internal (and the native binding types only
  // they mention) stay out of the published .d.ts; test/api.test.mjs checks.
  dts: { compilerOptions: { stripInternal: true } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  shims: true,
  splitting: true, // index and testing must share one copy of region.ts (its WeakMap)
});
