// npm run demo: the main demo. Starts a producer and, separately, a consumer
// (two unrelated processes that meet only by a channel name), then a parent
// that hands a child its regions.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const name = `demo-${randomBytes(3).toString('hex')}`;
/** Runs an example; resolves `ready` when it prints a line matching `readyWhen`, and `exited` with its exit code. */
function run(file, args, readyWhen) {
  const child = spawn(process.execPath, [join(here, file), ...args], { stdio: ['ignore', readyWhen ? 'pipe' : 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  const ready = new Promise((resolve) => {
    if (!readyWhen) return resolve(true);
    let seen = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      seen += chunk;
      if (readyWhen.test(seen)) resolve(true);
    });
    exited.then(() => resolve(false));
  });
  return { ready, exited };
}

console.log("── 1. two unrelated processes: a producer streams frames on a 'latest' stream, a consumer checks every frame it gets");
// The consumer starts once the producer listens (it prints its first line then).
const producer = run('producer.mjs', ['--name', name, '--seconds', '4'], /streaming/);
const consumer = (await producer.ready) ? await run('consumer.mjs', ['--name', name, '--seconds', '2']).exited : 1;
const produced = await producer.exited;

console.log('\n── 2. parent and child: regions handed to exactly that child');
const family = await run('parent-child.mjs', []).exited;

const ok = consumer === 0 && produced === 0 && family === 0;
console.log(ok ? '\n✔ demo finished' : '\n✘ demo failed');
process.exit(ok ? 0 : 1);
