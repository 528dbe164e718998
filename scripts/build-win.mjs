// npm run build:win — cross-builds the Windows x64 addon with Debian's mingw-w64
// into prebuilds/win32-x64/memport.node, where the loader finds it on win32.
// That file is what the npm package ships, so it is stripped (symbols and
// DWARF were 1.4 MB of 1.9 MB); build-win/memport.node keeps them for a
// debugger (point MEMPORT_ADDON at it).
import { existsSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { requireTool, root } from './lib/env.mjs';

requireTool('x86_64-w64-mingw32-g++-posix', 'apt-get install -y g++-mingw-w64-x86-64');
requireTool('cmake', 'apt-get install -y cmake');
requireTool('x86_64-w64-mingw32-strip', 'apt-get install -y binutils-mingw-w64-x86-64');

const out = join(root, 'build-win');
const toolchain = join(root, 'cmake', 'mingw-w64-x86_64.cmake');
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', out, `--CDCMAKE_TOOLCHAIN_FILE=${toolchain}`], {
  cwd: root,
  stdio: 'inherit',
});
if (r.status !== 0) {
  console.error('memport: the Windows cross-build failed (see above).');
  process.exit(r.status ?? 1);
}
const dest = join(root, 'prebuilds', 'win32-x64');
mkdirSync(dest, { recursive: true });
// A DLL lands in the runtime output directory (build-win/), not Release/.
const built = [join(out, 'memport.node'), join(out, 'Release', 'memport.node')].find((p) => existsSync(p));
if (!built) {
  console.error(`memport: the cross-build reported success but no memport.node is under ${out}`);
  process.exit(1);
}
const strip = spawnSync('x86_64-w64-mingw32-strip', ['--strip-all', '-o', join(dest, 'memport.node'), built], { stdio: 'inherit' });
if (strip.status !== 0) {
  console.error('memport: stripping the Windows addon failed (see above).');
  process.exit(1);
}
console.log(`memport: Windows addon written to ${join('prebuilds', 'win32-x64', 'memport.node')}`);
