// npm run build:prebuilds — the three addons the npm package ships, stripped:
//   prebuilds/linux-x64/memport.node    g++ 10 in a Debian bullseye root
//   prebuilds/linux-arm64/memport.node  bullseye's aarch64 cross compiler, same root
//   prebuilds/win32-x64/memport.node    mingw-w64 on this host (npm run build:win)
// then checks them (scripts/check-prebuilds.mjs: glibc floor 2.28, no libstdc++
// imports, system DLLs only, stripped).
//
// The Linux builds run cmake directly inside the root (chroot; it has no Node,
// so not cmake-js): the sources and the two header packages are copied in,
// and the build directories stay there, so a rerun only recompiles what
// changed. Needs root (debootstrap, chroot); the first run makes the root
// (about 2 minutes, 1.8 GB under .cache/bullseye).
import { cpSync, copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { root } from './lib/env.mjs';
import { bullseyeRoot, ensureBullseyeRoot, inBullseye } from './lib/bullseye.mjs';

const LINUX_TARGETS = [
  { name: 'linux-x64', toolchain: null, strip: 'strip' },
  { name: 'linux-arm64', toolchain: 'cmake/aarch64-linux-gnu.cmake', strip: 'aarch64-linux-gnu-strip' },
];
const steps = 5;
let n = 0;
const t0 = Date.now();
const step = (title) => console.log(`\n[${++n}/${steps}] ${title}  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);

function fail(message) {
  console.error(`\nmemport build:prebuilds: ${message}`);
  process.exit(1);
}

try {
  step('Debian bullseye build root');
  ensureBullseyeRoot();
  console.log(`  using ${bullseyeRoot}`);

  step('copy the sources and Node-API headers into the root');
  // Copies keep their timestamps, so the build directories inside the root
  // see unchanged files as unchanged and rebuild incrementally.
  const src = join(bullseyeRoot, 'memport', 'src');
  rmSync(src, { recursive: true, force: true });
  for (const part of ['CMakeLists.txt', 'native', 'cmake', join('node_modules', 'node-addon-api'), join('node_modules', 'node-api-headers', 'include')]) {
    if (!existsSync(join(root, part))) fail(`${part} is missing; run \`npm ci\` first`);
    cpSync(join(root, part), join(src, part), { recursive: true, preserveTimestamps: true });
  }

  for (const target of LINUX_TARGETS) {
    step(`build ${target.name} in the bullseye root (-static-libstdc++ -static-libgcc)`);
    const build = `/memport/build-${target.name}`;
    const defs = [
      '-DCMAKE_BUILD_TYPE=Release',
      '-DMEMPORT_PORTABLE=ON',
      '-DNODE_ADDON_API_DIR=node_modules/node-addon-api',
      '-DCMAKE_JS_INC=/memport/src/node_modules/node-api-headers/include',
      ...(target.toolchain ? [`-DCMAKE_TOOLCHAIN_FILE=/memport/src/${target.toolchain}`] : []),
    ];
    inBullseye(
      [
        `cmake -S /memport/src -B ${build} ${defs.join(' ')} > ${build}.configure.log || { cat ${build}.configure.log; exit 1; }`,
        `cmake --build ${build} -j${Math.min(4, availableParallelism())}`,
        `${target.strip} --strip-all -o ${build}/memport.stripped.node ${build}/memport.node`,
      ].join('\n'),
      `the ${target.name} build`,
    );
    const dest = join(root, 'prebuilds', target.name);
    mkdirSync(dest, { recursive: true });
    copyFileSync(join(bullseyeRoot, build, 'memport.stripped.node'), join(dest, 'memport.node'));
    const kb = (statSync(join(dest, 'memport.node')).size / 1024).toFixed(0);
    console.log(`  prebuilds/${target.name}/memport.node (${kb} KB; unstripped copy: ${join(bullseyeRoot, build, 'memport.node')})`);
  }

  step('build win32-x64 with mingw-w64 (npm run build:win)');
  const win = spawnSync(process.execPath, [join(root, 'scripts', 'build-win.mjs')], { cwd: root, stdio: 'inherit' });
  if (win.status !== 0) fail('the Windows build failed (see above)');
} catch (e) {
  fail(e.message);
}

console.log(`\nchecking the prebuilds (${((Date.now() - t0) / 1000).toFixed(0)} s so far)`);
const check = spawnSync(process.execPath, [join(root, 'scripts', 'check-prebuilds.mjs')], { cwd: root, stdio: 'inherit' });
if (check.status !== 0) fail('the prebuilds failed their check (see above)');
console.log(`\nmemport build:prebuilds: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
