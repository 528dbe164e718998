// Parent and child: the parent hands a child a read-only dataset and a
// writable results region — no names, no inheritable handles — and the child
// works on them in place. Run: node examples/parent-child.mjs
import { fileURLToPath } from 'node:url';
import { SharedRegion, connectToParent, spawnWithRegions } from 'memport';

const fail = (who) => (e) => {
  console.error(`${who}: ${e.code}: ${e.message}`);
  process.exit(1);
};

if (process.argv[2] === 'child') {
  // The child: one call returns what the parent handed over.
  const { regions, data, connection } = (await connectToParent({ timeoutMs: 10_000 })).match((m) => m, fail('child'));
  const [dataset, results] = regions;
  const values = new Float64Array(dataset.bytes.buffer, dataset.bytes.byteOffset, data.count);
  let sum = 0;
  for (const v of values) sum += v;
  new Float64Array(results.bytes.buffer, results.bytes.byteOffset, 2).set([sum, sum / data.count]);
  console.log(`child ${process.pid}: summed ${data.count.toLocaleString('en')} numbers in place (${dataset.readOnly ? 'read-only' : 'writable'} dataset)`);
  (await connection.send({ data: 'done' })).match(() => {}, fail('child'));
  await connection.receive({ timeoutMs: 1000 }); // wait for the parent to hang up
  process.exit(0);
}

const count = 4_000_000; // 32 MB of float64
const dataset = SharedRegion.create(count * 8, { label: 'dataset' }).match((r) => r, fail('parent'));
new Float64Array(dataset.bytes.buffer, dataset.bytes.byteOffset, count).forEach((_, i, a) => (a[i] = i % 1000));
const readOnly = dataset.toReadOnly().match((r) => r, fail('parent'));
const results = SharedRegion.create(16, { label: 'results' }).match((r) => r, fail('parent'));

const { child, connection } = (
  await spawnWithRegions(process.execPath, [fileURLToPath(import.meta.url), 'child'], {
    regions: [readOnly, results],
    data: { count },
    stdio: 'inherit',
  })
).match((r) => r, fail('parent'));
console.log(`parent ${process.pid}: handed child ${child.pid} a ${(dataset.size / 1e6).toFixed(0)} MB dataset and a results region`);
(await connection.receive({ timeoutMs: 30_000 })).match(() => {}, fail('parent'));
const [sum, mean] = new Float64Array(results.bytes.buffer, results.bytes.byteOffset, 2);
console.log(`parent: the child wrote sum=${sum} mean=${mean} into the shared results region`);
connection.close();
await new Promise((r) => child.once('exit', r));
for (const r of [readOnly, dataset, results]) r.close();
