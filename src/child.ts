import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ResultAsync, err, errAsync, ok, okAsync } from 'neverthrow';
import { connect, listen, type Connection, type Message, type Peer } from './channel.js';
import { memportError, toMemportError, type MemportError } from './errors.js';
import type { SharedRegion } from './region.js';
import { Waiter, checkWaitOptions, type WaitOptions } from './waiter.js';

/** Environment variables a child started by {@link spawnWithRegions} finds its parent with. */
export const PARENT_CHANNEL_ENV = 'MEMPORT_PARENT_CHANNEL';
/** The parent's PID, which {@link connectToParent} requires the listener to be. */
export const PARENT_PID_ENV = 'MEMPORT_PARENT_PID';

/** Options for {@link spawnWithRegions}: `child_process.spawn` options plus what to hand over. */
export interface SpawnWithRegionsOptions extends Omit<SpawnOptions, 'shell'> {
  /** Regions handed to the child (read-only twins for read-only sharing). */
  regions?: SharedRegion[];
  /** JSON-serialisable data sent along. */
  data?: unknown;
  /** How long the child has to connect and take the regions (default 30 s). */
  timeoutMs?: number;
}

/**
 * Starts a child process and hands it `regions` — no inheritable handles, no
 * shared-memory names. The parent listens on a fresh random channel, admits
 * only the process whose kernel-reported PID is the child's, and sends the
 * regions once the child calls {@link connectToParent}. Resolves when the
 * child has taken them, with the child and the open connection.
 *
 * Errors: `INVALID_ARGUMENT`, `PEER_CLOSED` (the child exited first),
 * `TIMEOUT`, or what `spawn` reported (`NOT_FOUND`, `OS`).
 */
export function spawnWithRegions(
  command: string,
  args: readonly string[] = [],
  options: SpawnWithRegionsOptions = {},
): ResultAsync<{
  /** The started child, as `child_process.spawn` returns it. */
  child: ChildProcess;
  /** The open connection to the child, for further messages. */
  connection: Connection;
}, MemportError> {
  if (typeof command !== 'string' || !Array.isArray(args)) {
    return errAsync(memportError('INVALID_ARGUMENT', 'spawnWithRegions(command: string, args: string[], options)'));
  }
  const { regions = [], data, timeoutMs = 30_000, ...spawnOptions } = options ?? {};
  if ((spawnOptions as { shell?: unknown }).shell) {
    // With a shell in between, the process that connects is not `child.pid`.
    return errAsync(memportError('INVALID_ARGUMENT', 'spawnWithRegions cannot use a shell: the connecting process must be the child itself'));
  }
  const bad = checkWaitOptions({ timeoutMs });
  if (bad) return errAsync(bad);

  const name = `child-${process.pid}-${randomBytes(8).toString('hex')}`;
  let child: ChildProcess | undefined;
  // The child's PID is its alone until Node reaps it (which is when exitCode
  // or signalCode is set), and the listener checks after allow() that the
  // peer still runs: so a matching PID is the child, not a later process
  // that was given the same number.
  const isChild = (peer: Peer): boolean =>
    child !== undefined && child.exitCode === null && child.signalCode === null && peer.pid === child.pid;
  return listen(name, { allow: isChild }).andThen((listener) => {
    const handedOver = new Waiter<{ child: ChildProcess; connection: Connection }>('handing regions to the child', { timeoutMs });
    try {
      child = spawn(command, [...args], {
        ...spawnOptions,
        env: { ...(spawnOptions.env ?? process.env), [PARENT_CHANNEL_ENV]: name, [PARENT_PID_ENV]: String(process.pid) },
      });
    } catch (e) {
      listener.close();
      return errAsync(toMemportError(e));
    }
    const started = child;
    started.once('error', (e) => void handedOver.settle(err(toMemportError(e))));
    started.once('exit', (code, signal) =>
      void handedOver.settle(err(memportError('PEER_CLOSED', `the child exited (${signal ?? `code ${code}`}) before taking its regions`))),
    );
    void listener.accept({ timeoutMs }).andThen((connection) =>
      connection
        .send({ regions, data }, { timeoutMs })
        .map(() => {
          if (!handedOver.settle(ok({ child: started, connection }))) connection.close();
        })
        .mapErr((e) => {
          connection.close();
          handedOver.settle(err(e));
        }),
    );
    return handedOver.toResultAsync().andThen((value) => {
      listener.close();
      return okAsync(value);
    }).orElse((e) => {
      listener.close();
      return errAsync(e);
    });
  });
}

/**
 * In a child started by {@link spawnWithRegions}: connects to the parent —
 * checking with the kernel that the listener really is the parent process —
 * and returns the regions and data it handed over, plus the connection for
 * further messages. `NOT_FOUND` when this process was not started that way.
 */
export function connectToParent<T = unknown>(options: WaitOptions = {}): ResultAsync<Message<T> & {
  /** The open connection to the parent, for further messages. */
  connection: Connection;
}, MemportError> {
  const bad = checkWaitOptions(options);
  if (bad) return errAsync(bad);
  const name = process.env[PARENT_CHANNEL_ENV];
  const parentPid = Number(process.env[PARENT_PID_ENV]);
  if (!name || !Number.isSafeInteger(parentPid) || parentPid <= 0) {
    return errAsync(memportError('NOT_FOUND', `this process was not started by spawnWithRegions (${PARENT_CHANNEL_ENV} is not set)`));
  }
  return connect(name, { ...options, expectPid: parentPid }).andThen((connection) =>
    connection
      .receive<T>(options)
      .map((message) => ({ ...message, connection }))
      .mapErr((e) => {
        connection.close();
        return e;
      }),
  );
}
