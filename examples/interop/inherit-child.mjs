// The Node child of inherit_parent_{linux,win}.c: adopts the inherited
// handle whose value and size are on the command line, prints the parent's
// message and leaves a reply at offset 2048 for the parent to print.
//   node inherit-child.mjs <fd or handle value> <size>
import { SharedRegion } from 'memport';

const fail = (e) => {
  console.error(`CHILD FAILED: ${e.code}: ${e.message}`);
  process.exit(1);
};
const [value, size] = process.argv.slice(2, 4).map(Number);
const region = SharedRegion.fromHandle(value, { size }).match((r) => r, fail);
const bytes = region.read(0, 2048).match((b) => b, fail);
const end = bytes.indexOf(0);
console.log(`CHILD READ: ${new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end))}`);
region.write(2048, new TextEncoder().encode('Reply from the Node child (memport).\0')).match(() => {}, fail);
region.close();
