// What the numbers were measured on, and how busy the machine was meanwhile
// (other processes competing for the CPUs make every figure slower).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

function firstLine(command, args) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim();
  } catch {
    return undefined;
  }
}

function cpuModel() {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.split(':').slice(1).join(':').trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown CPU';
}

export function describeMachine() {
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    ramGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    cc: firstLine('cc', ['--version']),
    hypervisor: firstLine('systemd-detect-virt', []),
  };
}

/** One line for the table header and the chart. */
export function machineLine(m) {
  return `${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.os}, Node ${m.node}`;
}

// CPU time from /proc: the whole machine's busy ticks, and this process's own
// plus its reaped children's (every benchmark process is one of those).
function machineTicks() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

function ownTicks() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime, cutime, cstime are fields 14-17 of stat(5); here shifted by the two skipped.
  return fields.slice(11, 15).map(Number).reduce((a, b) => a + b, 0);
}

/**
 * Starts watching for competing load. `stop()` returns the share of the
 * machine's CPU time (0..1) that processes other than the benchmark used, or
 * undefined where /proc is missing. Wine's long-lived wineserver is counted as
 * "other", so the figure is an upper bound when the Wine part ran.
 */
export function watchBackgroundLoad() {
  try {
    const m0 = machineTicks();
    const o0 = ownTicks();
    const load0 = os.loadavg()[0];
    return {
      loadAtStart: load0,
      stop() {
        const m1 = machineTicks();
        const o1 = ownTicks();
        const total = m1.total - m0.total;
        if (total <= 0) return undefined;
        return Math.max(0, (m1.busy - m0.busy - (o1 - o0)) / total);
      },
    };
  } catch {
    return { loadAtStart: os.loadavg()[0], stop: () => undefined };
  }
}
