// The same user project's CommonJS side: `require('memport')` and its .d.cts.
import { Result, err, ok } from 'neverthrow';
import { SharedRegion, type MemportError } from 'memport';

function twinOf(size: number): Result<SharedRegion, MemportError | 'too big'> {
  return ok<number, 'too big'>(size)
    .andThen((n) => (n > 1 << 20 ? err('too big' as const) : ok(n)))
    .andThen((n) => SharedRegion.create(n))
    .andThen((r) => r.toReadOnly().map((twin) => { r.close(); return twin; }));
}

const small = twinOf(4096);
const big = twinOf(2 << 20);
console.log(
  `cjs: ${small.match((r) => `read-only ${r.readOnly} size ${r.size}`, (e) => `failed ${typeof e === 'string' ? e : e.code}`)};` +
    ` ${big.isErr() ? big.error : 'unexpected'}`,
);
small.map((r) => r.close());
