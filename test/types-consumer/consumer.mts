// A user's project: its own neverthrow (7.x or 8.x, whichever run.mjs
// installed), memport installed from the packed tarball, and the strictest
// settings (tsconfig.json: strict, exactOptionalPropertyTypes, no skipLibCheck).
// It must compile, and run: memport's Results and the user's are one type.
import { Result, ResultAsync, err, errAsync, ok, okAsync } from 'neverthrow';
import {
  SharedRegion,
  connect,
  listen,
  isMemportError,
  ok as memportOk,
  type Connection,
  type MemportError,
  type MemportErrorOf,
  type Result as MemportResult,
  type ResultAsync as MemportResultAsync,
} from 'memport';
import { tryWriteEscalation } from 'memport/testing';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

// memport's re-exports are the user's neverthrow, not a look-alike.
expectType<Equals<MemportResult<number, string>, Result<number, string>>>();
expectType<Equals<MemportResultAsync<number, string>, ResultAsync<number, string>>>();
const fromMemport: Result<number, never> = memportOk(1);

interface ConfigError {
  kind: 'config';
  message: string;
}
type AppError = ConfigError | MemportError;

// The user's own Result in a signature, fed by memport's.
function frameBuffer(width: number, height: number): Result<SharedRegion, AppError> {
  if (width <= 0 || height <= 0) return err({ kind: 'config', message: `bad frame size ${width}x${height}` });
  return SharedRegion.create(width * height * 4, { label: 'frame' });
}

// andThen chains across both libraries' constructors.
const readOnly: Result<SharedRegion, AppError> = ok<{ w: number; h: number }, AppError>({ w: 64, h: 32 })
  .andThen(({ w, h }) => frameBuffer(w, h))
  .andThen((region) => region.toReadOnly());

// combine: a memport Result next to the user's. (An `as const` tuple would
// make neverthrow infer Result<never, never>, which checks nothing.)
const both = Result.combine([SharedRegion.create(16), ok<string, ConfigError>('label')]);
expectType<Equals<typeof both, Result<[SharedRegion, string], MemportError | ConfigError>>>();

// An error type is still checked: memport's errors are not strings.
// @ts-expect-error MemportError is not assignable to string
const wrong: Result<SharedRegion, string> = SharedRegion.create(1);
void wrong;

function describe(e: AppError): string {
  if ('kind' in e) return `config: ${e.message}`;
  const timeout: MemportErrorOf<'TIMEOUT'> | undefined = e.code === 'TIMEOUT' ? e : undefined;
  return `${e.code}${timeout ? ' (timed out)' : ''}: ${e.message}`;
}

// Async: the user's ResultAsync type, memport's channel calls and the user's okAsync/errAsync.
function handoff(name: string, region: SharedRegion): ResultAsync<string, AppError> {
  return listen(name).andThen((listener) => {
    const accepted: ResultAsync<Connection, MemportError> = listener.accept({ timeoutMs: 5000 });
    const client = connect(name, { timeoutMs: 5000 });
    const pair = ResultAsync.combine([accepted, client]);
    expectType<Equals<typeof pair, ResultAsync<[Connection, Connection], MemportError>>>();
    return pair
      .andThen(([server, conn]) =>
        // send() resolves on the peer's acknowledgement, so receive at the same time.
        ResultAsync.combine([server.send({ regions: [region], data: { note: 'hi' } }), conn.receive<{ note: string }>({ timeoutMs: 5000 })])
          .andThen(([, { regions: [got], data }]) =>
            got === undefined
              ? errAsync<string, AppError>({ kind: 'config', message: 'no region arrived' })
              : okAsync(`${data.note} ${got.readOnly} ${got.bytes[0]}`).map((s) => {
                  got.close();
                  return s;
                }),
          )
          .map((s) => {
            server.close();
            conn.close();
            return s;
          }),
      )
      .map((s) => {
        listener.close();
        return s;
      });
  });
}

const writable = frameBuffer(8, 8);
if (writable.isErr()) throw new Error(describe(writable.error));
writable.value.bytes[0] = 42;
const twin = writable.value.toReadOnly();
const escalation = twin.andThen((t) => tryWriteEscalation(t));
const refusedAll = escalation.match(
  (paths) => Object.values(paths).every((allowed) => !allowed),
  () => false,
);

const line = await twin
  .asyncAndThen((t) => handoff(`types-consumer-${process.pid}`, t))
  .match(
    (s) => s,
    (e) => `failed ${describe(e)}`,
  );
expectType<Equals<typeof line, string>>();
console.log(`esm: ${line}; combined ${both.isOk()}; chained ${readOnly.isOk()}; escalation refused ${refusedAll}; ${fromMemport.isOk()}`);
const bad = frameBuffer(0, 1).mapErr(describe);
const negative = SharedRegion.create(-1);
const code = negative.isErr() && isMemportError(negative.error) ? negative.error.code : 'unexpected';
console.log(`esm: ${bad.isErr() ? bad.error : 'unexpected'}; ${code}`);
twin.map((t) => t.close());
writable.value.close();
