// Runs on `npm install`: builds the addon from source unless a usable one is already present.
// A failed build never fails the install; the loader's error explains what to do instead.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'memport.node');
const built = join(root, 'build', 'Release', 'memport.node');

if (existsSync(prebuilt) || existsSync(built)) process.exit(0);
if (!existsSync(join(root, 'native'))) process.exit(0);

console.log('memport: building the native addon from source (cmake-js)...');
const r = spawnSync(process.execPath, [join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js'), 'compile', '--out', 'build'], {
  cwd: root,
  stdio: 'inherit',
});
if (r.status !== 0) {
  console.warn('memport: the native build failed; memport will report this when loaded.');
  console.warn('memport: install cmake and a C++17 compiler, then run `npm rebuild memport`.');
}
