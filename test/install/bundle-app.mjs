// An application bundled with esbuild (memport's code inlined, no
// node_modules at run time): the install test bundles it to ESM and to
// CommonJS and runs it from a directory holding just the bundle and, next to
// it, memport.node — the layout the README tells bundlers to ship.
import { existsSync } from 'node:fs';
import { addonSearchPaths, SharedRegion } from 'memport';

SharedRegion.create(4096).match(
  (region) => {
    region.bytes[0] = 7;
    console.log(`bundle ok: ${region.bytes[0]} (addon ${addonSearchPaths().find((p) => existsSync(p))})`);
    region.close();
  },
  (error) => {
    console.error(`bundle FAILED: ${error.code}: ${error.message}`);
    process.exitCode = 1;
  },
);
