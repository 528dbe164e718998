// npm run demo: the main demo. Starts a producer and, separately, a consumer
// (two unrelated processes that meet only by a channel name), then a parent
// that hands a child its regions.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const name = `demo-${randomBytes(3).toString('hex')}`;
const run = (file, args) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, file), ...args], { stdio: 'inherit' });
    child.once('exit', (code) => resolve(code ?? 1));
  });

console.log('── 1. two unrelated processes: a producer shares a read-only frame buffer, a consumer reads it live');
const producer = run('producer.mjs', ['--name', name, '--seconds', '4']);
await new Promise((r) => setTimeout(r, 700));
const consumer = await run('consumer.mjs', ['--name', name, '--seconds', '2']);
const produced = await producer;

console.log('\n── 2. parent and child: regions handed to exactly that child');
const family = await run('parent-child.mjs', []);

const ok = consumer === 0 && produced === 0 && family === 0;
console.log(ok ? '\n✔ demo finished' : '\n✘ demo failed');
process.exit(ok ? 0 : 1);
