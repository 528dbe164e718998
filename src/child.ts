import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ResultAsync, err, errAsync, ok, okAsync } from 'neverthrow';
import { connect, listen, type ConnectOptions, type Connection, type Message, type Peer } from './channel.js';
import { memportError, toMemportError, type MemportError } from './errors.js';
import type { Notifier } from './notifier.js';
import type { SharedRegion } from './region.js';
import type { StreamWriter } from './stream.js';
import { describe, readArray, readOptions, readOwnOptions, thrownText, waitOptionsFrom } from './options.js';
import { Waiter, type WaitOptions } from './waiter.js';

/** Environment variables a child started by {@link spawnWithRegions} finds its parent with. */
export const PARENT_CHANNEL_ENV = 'MEMPORT_PARENT_CHANNEL';
/** The parent's PID, which {@link connectToParent} requires the listener to be. */
export const PARENT_PID_ENV = 'MEMPORT_PARENT_PID';

/** Options for {@link spawnWithRegions}: `child_process.spawn` options plus what to hand over. */
export interface SpawnWithRegionsOptions extends Omit<SpawnOptions, 'shell'> {
  /** Regions handed to the child (read-only twins for read-only sharing). */
  regions?: SharedRegion[];
  /** Notifiers handed to the child. */
  notifiers?: Notifier[];
  /**
   * Streams the child gets a reader of each (`message.streams` from
   * {@link connectToParent}), served while the returned connection is open.
   */
  streams?: StreamWriter[];
  /** JSON-serialisable data sent along. */
  data?: unknown;
  /** How long the child has to connect and take the regions (default 30 s). */
  timeoutMs?: number;
}

/** How long a failed spawnWithRegions waits for the child it killed to be reaped. */
const REAP_TIMEOUT_MS = 5_000;

/**
 * Starts a child process and hands it `regions` — no inheritable handles, no
 * shared-memory names. The parent listens on a fresh random channel, admits
 * only the process whose kernel-reported PID is the child's, and sends the
 * regions once the child calls {@link connectToParent}. Resolves when the
 * child has taken them, with the child and the open connection.
 *
 * If the handover fails once the child is running (it timed out, the child
 * was refused or exited, the send failed), the child is killed (`SIGKILL`;
 * `TerminateProcess` on Windows) and reaped before the error is returned, so
 * no orphan is left behind.
 *
 * Errors: `INVALID_ARGUMENT`, `PEER_CLOSED` (the child exited first),
 * `TIMEOUT`, or what `spawn` reported (`NOT_FOUND`, `OS`).
 */
export function spawnWithRegions(
  command: string,
  args: readonly string[] = [],
  options?: SpawnWithRegionsOptions,
): ResultAsync<{
  /** The started child, as `child_process.spawn` returns it. */
  child: ChildProcess;
  /** The open connection to the child, for further messages. */
  connection: Connection;
}, MemportError> {
  const what = 'spawnWithRegions';
  if (typeof command !== 'string') {
    return errAsync(memportError('INVALID_ARGUMENT', `${what}(command: string, args: string[], options): command is ${describe(command)}`));
  }
  const argv = readArray(args, `${what}: args`);
  if (argv.isErr()) return errAsync(argv.error);
  const badArg = argv.value.findIndex((a) => typeof a !== 'string');
  if (badArg >= 0) return errAsync(memportError('INVALID_ARGUMENT', `${what}: args[${badArg}] is ${describe(argv.value[badArg])}, not a string`));
  // Every option read once; the rest go to child_process.spawn as read.
  const read = readOwnOptions(options, what);
  if (read.isErr()) return errAsync(read.error);
  const { regions = [], notifiers = [], streams = [], data, timeoutMs = 30_000, shell, env, ...spawnOptions } = read.value;
  if (shell !== undefined && shell !== false) {
    // With a shell in between, the process that connects is not `child.pid`.
    return errAsync(memportError('INVALID_ARGUMENT', `${what} cannot use a shell: the connecting process must be the child itself`));
  }
  const wait = waitOptionsFrom({ timeoutMs }, what);
  if (wait.isErr()) return errAsync(wait.error);
  const childEnv = readOwnOptions(env ?? process.env, `${what}: options.env`);
  if (childEnv.isErr()) return errAsync(childEnv.error);

  const name = `child-${process.pid}-${randomBytes(8).toString('hex')}`;
  let child: ChildProcess | undefined;
  // The child's PID is its alone until Node reaps it (which is when exitCode
  // or signalCode is set), and the listener checks after allow() that the
  // peer still runs: so a matching PID is the child, not a later process
  // that was given the same number.
  const isChild = (peer: Peer): boolean =>
    child !== undefined && child.exitCode === null && child.signalCode === null && peer.pid === child.pid;
  return listen(name, { allow: isChild }).andThen((listener) => {
    const handedOver = new Waiter<{ child: ChildProcess; connection: Connection }>('handing regions to the child', wait.value);
    try {
      child = spawn(command, argv.value as string[], {
        ...(spawnOptions as SpawnOptions),
        env: { ...childEnv.value, [PARENT_CHANNEL_ENV]: name, [PARENT_PID_ENV]: String(process.pid) },
      });
    } catch (e) {
      listener.close();
      // Node validates spawn's options by throwing (ERR_INVALID_ARG_TYPE and the like).
      const code = (e as { code?: unknown } | null)?.code;
      const invalid = e instanceof TypeError || (typeof code === 'string' && code.startsWith('ERR_INVALID_ARG'));
      return errAsync(invalid ? memportError('INVALID_ARGUMENT', `${what}: ${thrownText(e)}`, { cause: e }) : toMemportError(e));
    }
    const started = child;
    started.once('error', (e) => {
      // The documented NOT_FOUND for a program that does not exist.
      const missing = (e as { code?: unknown }).code === 'ENOENT';
      handedOver.settle(err(missing ? memportError('NOT_FOUND', `cannot start ${command}: ${e.message}`, { cause: e }) : toMemportError(e)));
    });
    started.once('exit', (code, signal) =>
      void handedOver.settle(err(memportError('PEER_CLOSED', `the child exited (${signal ?? `code ${code}`}) before taking its regions`))),
    );
    void listener.accept(wait.value).andThen((connection) =>
      connection
        .send({ regions: regions as SharedRegion[], notifiers: notifiers as Notifier[], streams: streams as StreamWriter[], data }, wait.value)
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
      return ResultAsync.fromSafePromise(stopChild(started)).andThen(() => errAsync(e));
    });
  });
}

/**
 * Kills a child whose handover failed and waits (at most REAP_TIMEOUT_MS) for
 * Node to reap it, so the caller is never left with an orphan it has no
 * handle to. Never rejects.
 */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, REAP_TIMEOUT_MS);
    timer.unref?.();
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone: 'exit' follows (or has been emitted, and the timer ends the wait).
    }
  });
}

/**
 * In a child started by {@link spawnWithRegions}: connects to the parent —
 * checking with the kernel that the listener really is the parent process —
 * and returns the regions, notifiers, stream readers and data it handed
 * over, plus the connection for further messages (keep it open while reading
 * the streams: a reader lives as long as its connection). `NOT_FOUND` when this process was not started that way.
 * `acceptNamedRegions: true` takes regions the parent opened by name (see
 * {@link ConnectOptions.acceptNamedRegions}); without it such a handover fails.
 */
export function connectToParent<T = unknown>(options?: WaitOptions & { acceptNamedRegions?: boolean }): ResultAsync<Message<T> & {
  /** The open connection to the parent, for further messages. */
  connection: Connection;
}, MemportError> {
  const read = readOptions(options, ['timeoutMs', 'signal', 'acceptNamedRegions'], 'connectToParent');
  if (read.isErr()) return errAsync(read.error);
  const wait = waitOptionsFrom(read.value, 'connectToParent');
  if (wait.isErr()) return errAsync(wait.error);
  const { acceptNamedRegions } = read.value;
  if (acceptNamedRegions !== undefined && typeof acceptNamedRegions !== 'boolean') {
    return errAsync(memportError('INVALID_ARGUMENT', `connectToParent: options.acceptNamedRegions must be true or false, got ${describe(acceptNamedRegions)}`));
  }
  const name = process.env[PARENT_CHANNEL_ENV];
  const parentPid = Number(process.env[PARENT_PID_ENV]);
  if (!name || !Number.isSafeInteger(parentPid) || parentPid <= 0) {
    return errAsync(memportError('NOT_FOUND', `this process was not started by spawnWithRegions (${PARENT_CHANNEL_ENV} is not set)`));
  }
  return connect(name, { ...wait.value, expectPid: parentPid, acceptNamedRegions: acceptNamedRegions === true }).andThen((connection) =>
    connection
      .receive<T>(wait.value)
      .map((message) => ({ ...message, connection }))
      .mapErr((e) => {
        connection.close();
        return e;
      }),
  );
}
