// Checks the addons the npm package ships (prebuilds/<platform>-<arch>/memport.node)
// before anything packs them: run by `npm run build:prebuilds`, by `npm pack`
// (prepack) and by the install test in `npm test`.
//
//   linux-x64, linux-arm64: an ELF shared object for that machine, stripped;
//     `objdump -T` shows no symbol version above GLIBC_2.28 (the floor of
//     Node's own Linux binaries) and no GLIBCXX_/CXXABI_/GCC_ import (the C++
//     runtime is linked in); it needs no library beyond glibc's own; it
//     exports only the Node-API entry points.
//   win32-x64: a PE x86-64 DLL, stripped, importing only system DLLs and node.exe.
//
// Prints one line per binary and a closing "N passed, N failed".
//   node scripts/check-prebuilds.mjs [--dir <prebuilds dir>] [--only <target,...>]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hasTool, root } from './lib/env.mjs';

const args = process.argv.slice(2);
const dir = args.includes('--dir') ? args[args.indexOf('--dir') + 1] : join(root, 'prebuilds');
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null;
const GLIBC_FLOOR = [2, 28];
const GLIBC_LIBS = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$/;
const EXPORTS = ['napi_register_module_v1', 'node_api_module_get_api_version_v1'];
// Windows DLLs present on every Windows 10+ system (mingw's C runtime is msvcrt).
const SYSTEM_DLLS = /^(kernel32|advapi32|msvcrt|ntdll|user32|ws2_32|bcrypt|ucrtbase|api-ms-win-[a-z0-9-]+)\.dll$/i;
const TARGETS = [
  { name: 'linux-x64', format: 'elf', machine: 0x3e },
  { name: 'linux-arm64', format: 'elf', machine: 0xb7 },
  { name: 'win32-x64', format: 'pe', machine: 0x8664 },
];

function objdump(tool, args, file) {
  const r = spawnSync(tool, [...args, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

const versionOf = (v) => v.split('.').map(Number);
const above = (a, b) => a[0] > b[0] || (a[0] === b[0] && (a[1] ?? 0) > b[1]);

/** Returns a list of problems (empty when the binary is fine) and a summary. */
function check(target) {
  const file = join(dir, target.name, 'memport.node');
  if (!existsSync(file)) return { problems: [`missing: run \`npm run build:prebuilds\``], summary: '' };
  const problems = [];
  const bytes = readFileSync(file);
  const kb = `${(statSync(file).size / 1024).toFixed(0)} KB`;
  if (target.format === 'elf') {
    if (bytes.readUInt32BE(0) !== 0x7f454c46) return { problems: ['not an ELF file'], summary: kb };
    const machine = bytes.readUInt16LE(18);
    if (machine !== target.machine) problems.push(`ELF machine 0x${machine.toString(16)}, expected 0x${target.machine.toString(16)}`);
    // objdump from binutils reads any ELF's dynamic symbols and headers, whatever the machine.
    const dynamic = objdump('objdump', ['-T'], file);
    const versions = [...new Set(dynamic.match(/\b(GLIBC|GLIBCXX|CXXABI|GCC)_[0-9.]+/g) ?? [])];
    const glibc = versions.filter((v) => v.startsWith('GLIBC_')).map((v) => versionOf(v.slice(6)));
    const floor = glibc.reduce((max, v) => (above(v, max) ? v : max), [0, 0]);
    if (above(floor, GLIBC_FLOOR)) problems.push(`needs GLIBC_${floor.join('.')} (above GLIBC_${GLIBC_FLOOR.join('.')})`);
    const cxx = versions.filter((v) => !v.startsWith('GLIBC_'));
    if (cxx.length) problems.push(`imports the C++/gcc runtime: ${cxx.join(', ')}`);
    const headers = objdump('objdump', ['-p'], file);
    const needed = [...headers.matchAll(/^\s*NEEDED\s+(\S+)/gm)].map((m) => m[1]);
    const foreign = needed.filter((lib) => !GLIBC_LIBS.test(lib));
    if (foreign.length) problems.push(`needs libraries beyond glibc: ${foreign.join(', ')}`);
    const exported = dynamic
      .split('\n')
      .map((line) => /^[0-9a-f]+ (.{7}) (\S+)\s+[0-9a-f]+\s+(?:\S+\s+)?(\S+)$/.exec(line))
      .filter((m) => m && m[2] !== '*UND*' && !m[1].includes('d'))
      .map((m) => m[3]);
    const extra = exported.filter((s) => !EXPORTS.includes(s));
    if (extra.length) problems.push(`exports ${extra.length} symbols beyond the Node-API entry points, e.g. ${extra.slice(0, 3).join(', ')}`);
    for (const s of EXPORTS) if (!exported.includes(s)) problems.push(`does not export ${s}`);
    if (!/no symbols/.test(objdump('objdump', ['-t'], file))) problems.push('not stripped (has a symbol table)');
    if (/\.debug_/.test(objdump('objdump', ['-h'], file))) problems.push('not stripped (has DWARF sections)');
    return { problems, summary: `${kb}, glibc floor GLIBC_${floor.join('.')}, needs ${needed.join(' ')}` };
  }
  if (bytes.toString('latin1', 0, 2) !== 'MZ') return { problems: ['not a PE file'], summary: kb };
  const pe = bytes.readUInt32LE(0x3c);
  const machine = bytes.readUInt16LE(pe + 4);
  if (machine !== target.machine) problems.push(`PE machine 0x${machine.toString(16)}, expected 0x${target.machine.toString(16)}`);
  const tool = 'x86_64-w64-mingw32-objdump';
  if (!hasTool(tool)) return { problems: [...problems, `${tool} is required (apt-get install -y binutils-mingw-w64-x86-64)`], summary: kb };
  const headers = objdump(tool, ['-p'], file);
  const dlls = [...headers.matchAll(/DLL Name:\s*(\S+)/g)].map((m) => m[1]);
  const foreign = dlls.filter((d) => d.toLowerCase() !== 'node.exe' && !SYSTEM_DLLS.test(d));
  if (foreign.length) problems.push(`imports non-system DLLs: ${foreign.join(', ')}`);
  if (!dlls.some((d) => d.toLowerCase() === 'node.exe')) problems.push('does not import Node-API from node.exe');
  if (!/no symbols/.test(objdump(tool, ['-t'], file))) problems.push('not stripped (has a symbol table)');
  if (/\.debug_/.test(objdump(tool, ['-h'], file))) problems.push('not stripped (has DWARF sections)');
  return { problems, summary: `${kb}, imports ${dlls.join(' ')}` };
}

if (!hasTool('objdump')) {
  console.error("memport: 'objdump' is required. Install it with: apt-get install -y binutils");
  console.log('0 passed, 1 failed');
  process.exit(1);
}
let passed = 0;
let failed = 0;
for (const target of TARGETS.filter((t) => !only || only.includes(t.name))) {
  let result;
  try {
    result = check(target);
  } catch (e) {
    result = { problems: [e.message], summary: '' };
  }
  if (result.problems.length === 0) passed++;
  else failed++;
  console.log(`  ${result.problems.length ? '✘' : '✔'} prebuilds/${target.name}/memport.node  ${result.summary}`);
  for (const p of result.problems) console.log(`      ${p}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
