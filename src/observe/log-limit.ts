/**
 * A policy that keeps events which repeat per row or per batch from flooding the log:
 * per key (event type and partition), the first `burst` lines are always printed, and
 * after that at most one line per `intervalMs`. Whatever it holds back is counted and
 * reported with the next line printed for that key, by `due` once the key was quiet for an
 * interval, or by `drain` at partition end.
 * It only decides about log lines: metrics, progress, alerts and the summary see every event.
 *
 * @example
 * const limit = new LogLimiter({ burst: 5, intervalMs: 5000 });
 * const d = limit.admit('row_dead_lettered', '0');
 * if (d.print) logger.warn({ suppressed: d.suppressed }, 'row dead-lettered');
 * // at partition end
 * for (const s of limit.drain('0')) logger.warn({}, `${s.suppressed} more ${s.type} lines suppressed`);
 */

export interface LogLimitOptions {
  /** Lines of each key always printed before the interval applies (default 5). */
  burst?: number;
  /** After the burst, at most one line per key in this many milliseconds (default 5000). */
  intervalMs?: number;
  /** The clock, in milliseconds; injected by tests. */
  now?: () => number;
}

export const DEFAULT_LOG_BURST = 5;
export const DEFAULT_LOG_INTERVAL_MS = 5000;

/** `print`: log this line; `suppressed`: lines of the key held back since the last one printed. */
export type LogDecision = { print: true; suppressed: number } | { print: false };

/** Lines held back for one key and not reported yet. */
export interface Suppressed {
  type: string;
  partition_id: string | undefined;
  suppressed: number;
}

interface KeyState {
  type: string;
  partition_id: string | undefined;
  seen: number;
  lastPrintedAt: number;
  suppressed: number;
}

export class LogLimiter {
  private readonly burst: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  /** event type → partition id (undefined: outside any partition) → state */
  private readonly keys = new Map<string, Map<string | undefined, KeyState>>();
  private nextDueCheckAt = Number.NEGATIVE_INFINITY;

  constructor(options: LogLimitOptions = {}) {
    this.burst = options.burst ?? DEFAULT_LOG_BURST;
    this.intervalMs = options.intervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.burst) || this.burst < 0) throw new RangeError(`burst must be an integer ≥ 0, got ${this.burst}`);
    if (!(this.intervalMs >= 0)) throw new RangeError(`intervalMs must be ≥ 0, got ${this.intervalMs}`);
  }

  /** Decides about one line of `type` in `partition_id` (undefined: not in a partition). */
  admit(type: string, partition_id?: string): LogDecision {
    const state = this.state(type, partition_id);
    const now = this.now();
    state.seen++;
    if (state.seen > this.burst && now - state.lastPrintedAt < this.intervalMs) {
      state.suppressed++;
      return { print: false };
    }
    const suppressed = state.suppressed;
    state.suppressed = 0;
    state.lastPrintedAt = now;
    return { print: true, suppressed };
  }

  /**
   * Keys that held lines back for a whole interval since their last printed line, so that an
   * endless partition reports a kind that went quiet: their counts are returned and start over,
   * as if a line had been printed. Looks at most once per interval (cheap to call per event),
   * so a count waits at most two intervals.
   */
  due(): Suppressed[] {
    const now = this.now();
    if (now < this.nextDueCheckAt) return [];
    this.nextDueCheckAt = now + this.intervalMs;
    const out: Suppressed[] = [];
    for (const s of this.states()) {
      if (s.suppressed === 0 || now - s.lastPrintedAt < this.intervalMs) continue;
      out.push({ type: s.type, partition_id: s.partition_id, suppressed: s.suppressed });
      s.suppressed = 0;
      s.lastPrintedAt = now;
    }
    return out;
  }

  /** Forgets the keys of one partition, returning those with lines still held back, for the caller to report. */
  drain(partition_id: string): Suppressed[] {
    return this.take((s) => s.partition_id === partition_id);
  }

  /** Forgets every key (at run end), returning those with lines still held back. */
  drainAll(): Suppressed[] {
    return this.take(() => true);
  }

  private take(which: (s: KeyState) => boolean): Suppressed[] {
    const out: Suppressed[] = [];
    for (const s of this.states()) {
      if (!which(s)) continue;
      this.keys.get(s.type)?.delete(s.partition_id);
      if (s.suppressed > 0) out.push({ type: s.type, partition_id: s.partition_id, suppressed: s.suppressed });
    }
    return out;
  }

  private *states(): Generator<KeyState> {
    for (const byPartition of this.keys.values()) yield* byPartition.values();
  }

  private state(type: string, partition_id: string | undefined): KeyState {
    let byPartition = this.keys.get(type);
    if (!byPartition) {
      byPartition = new Map();
      this.keys.set(type, byPartition);
    }
    let state = byPartition.get(partition_id);
    if (!state) {
      state = { type, partition_id, seen: 0, lastPrintedAt: Number.NEGATIVE_INFINITY, suppressed: 0 };
      byPartition.set(partition_id, state);
    }
    return state;
  }
}
