// Compile-time checks of the public types (run by `npm run typecheck`).
import type { Result } from 'neverthrow';
import { SharedRegion, isMemportError, type MemportError, type MemportErrorCode } from '../dist/index.js';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

const created = SharedRegion.create(4096);
expectType<Equals<typeof created, Result<SharedRegion, MemportError>>>();

const view = created.andThen((r) => r.view(0, 16));
expectType<Equals<typeof view, Result<Uint8Array, MemportError>>>();

const twin = created.andThen((r) => r.toReadOnly());
expectType<Equals<typeof twin, Result<SharedRegion, MemportError>>>();

if (created.isErr()) {
  const e = created.error;
  expectType<Equals<typeof e.code, MemportErrorCode>>();
  if (e.code === 'OUT_OF_MEMORY') {
    expectType<Equals<typeof e.code, 'OUT_OF_MEMORY'>>();
  }
  // @ts-expect-error not a MemportError code
  if (e.code === 'ENOMEM') void 0;
  const os: number | undefined = e.osCode;
  void os;
}

declare const unknownValue: unknown;
if (isMemportError(unknownValue)) {
  const code: MemportErrorCode = unknownValue.code;
  void code;
}

// Regions are Disposable.
const disposable: Disposable = created._unsafeUnwrap();
void disposable;

// Sizes must be numbers.
// @ts-expect-error bigint sizes are not accepted
SharedRegion.create(10n);

// Named regions (README, "Interop with named shared memory").
const opened = SharedRegion.openNamed('telemetry', { readOnly: true, size: 4096 });
expectType<Equals<typeof opened, Result<SharedRegion, MemportError>>>();
const made = SharedRegion.createNamed('Local\\x', 4096, { readOnly: false });
expectType<Equals<typeof made, Result<SharedRegion, MemportError>>>();
const unlinked = SharedRegion.unlinkNamed('/x');
expectType<Equals<typeof unlinked, Result<void, MemportError>>>();
const copied = opened.andThen((r) => r.copyToUnnamed());
expectType<Equals<typeof copied, Result<SharedRegion, MemportError>>>();
const name: string | undefined = opened._unsafeUnwrap().name;
const named: boolean = opened._unsafeUnwrap().named;
void name;
void named;
// @ts-expect-error the size is required
SharedRegion.createNamed('x');
