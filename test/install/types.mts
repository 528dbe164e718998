// Compiled (not run) by the install test against the installed memport's
// .d.ts with strict, exactOptionalPropertyTypes and skipLibCheck: false, as a
// user's strict project would. The @ts-expect-error lines fail the compile
// if the types were loose (any) instead of the real ones.
import { SharedRegion, connect, isMemportError, listen, MEMPORT_ERROR_CODES, type MemportError, type MemportErrorCode } from 'memport';

export function describe(error: MemportError): string {
  const code: MemportErrorCode = error.code;
  return `${code}: ${error.message}`;
}

export function firstByte(size: number): number | string {
  return SharedRegion.create(size)
    .andThen((region) => region.view(0, 1).map((view) => ({ region, view })))
    .match(
      ({ region, view }) => {
        const value = view[0] ?? 0;
        region.close();
        return value;
      },
      (error) => describe(error),
    );
}

export async function handOver(name: string): Promise<void> {
  const listener = await listen(name);
  if (listener.isErr()) {
    console.error(describe(listener.error));
    return;
  }
  const conn = await listener.value.accept({ timeoutMs: 1000 });
  const region = SharedRegion.create(4096).andThen((r) => r.toReadOnly());
  if (conn.isOk() && region.isOk()) {
    const sent = await conn.value.send({ regions: [region.value], data: { kind: 'frame' } });
    if (sent.isErr() && sent.error.code === 'PEER_CLOSED') console.log('the peer left');
  }
  listener.value.close();
}

export async function receive(name: string): Promise<number> {
  const conn = await connect(name, { timeoutMs: 1000 });
  return conn.match(
    async (c) => {
      const message = await c.receive<{ kind: string }>();
      c.close();
      return message.isOk() ? message.value.regions.length : -1;
    },
    async () => -1,
  );
}

export const codes: readonly string[] = MEMPORT_ERROR_CODES;
export const guard: (value: unknown) => boolean = isMemportError;

// @ts-expect-error SharedRegion.create returns a Result, not a region
export const notARegion: SharedRegion = SharedRegion.create(1);
// @ts-expect-error exactOptionalPropertyTypes: timeoutMs may be omitted, not undefined
export const badOptions = connect('x', { timeoutMs: undefined });
