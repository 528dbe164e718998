// The listener's side of the handshake: a client that connected is counted
// against the listener's bounds, judged by its `allow`, and then either
// welcomed (WELCOME, and only then is anything read from it) or refused
// (REJECT, then closed, nothing read). docs/PROTOCOL.md, "Admission".
import { FrameType, type NativeConnection } from '../native/binding.js';
import { Result } from 'neverthrow';
import { toMemportError } from '../errors.js';
import type { ResolvedLimits } from '../limits.js';
import { thrownText } from '../options.js';
import { encodeText } from './codec.js';
import { Connection } from './connection.js';
import { REFUSAL_TEXT, UNREPORTED_WRITE, type Peer } from './protocol.js';

/** What the admission needs from its listener. */
export interface AdmissionPolicy {
  readonly limits: ResolvedLimits;
  readonly allow: (peer: Peer) => boolean | Promise<boolean>;
}

/** Counts a listener's open connections and admits or refuses each new client. */
export class Admissions {
  readonly #policy: AdmissionPolicy;
  readonly #onAdmitted: (connection: Connection) => void;
  /** Open connections (admitted, or waiting for allow()), in all and per peer PID. */
  #open = 0;
  readonly #openPerPeer = new Map<number, number>();
  /** Clients whose allow() has not answered yet. */
  readonly #judging = new Set<Connection>();
  #stopped = false;

  constructor(policy: AdmissionPolicy, onAdmitted: (connection: Connection) => void) {
    this.#policy = policy;
    this.#onAdmitted = onAdmitted;
  }

  /** Open connections that came through this listener (admitted or being judged). */
  get open(): number {
    return this.#open;
  }

  /** The listener closed or failed: clients being judged are closed, and nobody is admitted any more. */
  stop(): void {
    this.#stopped = true;
    for (const connection of [...this.#judging]) connection.close();
    this.#judging.clear();
  }

  /** A client connected (nothing read from it yet). */
  onConnection(native: NativeConnection): void {
    if (this.#stopped) {
      native.close();
      return;
    }
    const pid = Result.fromThrowable(() => native.peer().pid, toMemportError)();
    if (pid.isErr()) {
      native.close();
      return;
    }
    const { limits } = this.#policy;
    const fromPeer = this.#openPerPeer.get(pid.value) ?? 0;
    const full =
      this.#open >= limits.maxConnections
        ? `the listener has too many connections (limits.maxConnections = ${limits.maxConnections})`
        : fromPeer >= limits.maxConnectionsPerPeer
          ? `this process has too many connections to the listener (limits.maxConnectionsPerPeer = ${limits.maxConnectionsPerPeer})`
          : undefined;
    if (full !== undefined) {
      // Refused before allow() and before anything is read.
      refuse(native, full, () => native.close());
      return;
    }
    this.#open++;
    this.#openPerPeer.set(pid.value, fromPeer + 1);
    const connection = Connection._server(native, () => {
      this.#open--;
      const left = (this.#openPerPeer.get(pid.value) ?? 1) - 1;
      if (left > 0) this.#openPerPeer.set(pid.value, left);
      else this.#openPerPeer.delete(pid.value);
    });
    this.#judging.add(connection);
    void this.#judge(connection.peer).then((allowed) => {
      if (!this.#judging.delete(connection) || this.#stopped || connection.closed) {
        connection.close();
        return;
      }
      if (!allowed) {
        refuse(native, REFUSAL_TEXT, () => connection.close());
        return;
      }
      if (!native.peerRunning()) {
        // The peer exited while allow() judged it: its PID may by now name
        // another process, so the verdict may not have been about the peer.
        // Nobody is left to tell.
        connection.close();
        return;
      }
      // Nothing was read from the client so far. A frame it sent before
      // WELCOME is a violation, and a client that already left (it gave up
      // waiting) is not handed to accept(): both end here.
      if (connection._admit(limits).isErr()) return;
      this.#onAdmitted(connection);
    });
  }

  /** allow()'s answer; a throw or rejection refuses, and is reported as a process warning only. */
  async #judge(peer: Peer): Promise<boolean> {
    try {
      await undefined; // allow() runs after the native callback has returned
      return (await this.#policy.allow(peer)) === true;
    } catch (e) {
      // The application's error stays here: the client learns only that it
      // was refused (docs: ListenOptions.allow).
      process.emitWarning(`memport: allow() threw while judging process ${peer.pid}, which was refused: ${thrownText(e)}`, {
        code: 'MEMPORT_ALLOW_FAILED',
      });
      return false;
    }
  }
}

/**
 * Sends REJECT to a client that was never started, then closes it. The
 * frame is written before `close` runs (a fresh connection's socket or pipe
 * buffer takes it at once); closing then keeps what was written readable,
 * and releases unread whatever the client sent.
 */
function refuse(native: NativeConnection, reason: string, close: () => void): void {
  try {
    native.write(UNREPORTED_WRITE, FrameType.Reject, 0, [], encodeText(reason));
  } catch {
    // already gone
  }
  close();
}
