/**
 * A closed pipe on stdout or stderr (`weir run … | head -1`, `weir schema | head`):
 * not a crash. The stream is marked closed, later writes to it are dropped, and
 * `weir run` stops as on SIGTERM — it drains, commits or aborts what it holds, leaves
 * no stage table, and exits 141 (128 + SIGPIPE); the other commands finish quietly.
 */
type Listener = (stream: 'stdout' | 'stderr') => void;

const listeners = new Set<Listener>();
const closed = new Set<'stdout' | 'stderr'>();

const CLOSED_CODES = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/** Installs the error handlers on stdout and stderr (once, at start-up). */
export function watchOutput(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = process[name];
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (!CLOSED_CODES.has(error.code ?? '')) throw error;
      if (closed.has(name)) return;
      closed.add(name);
      // whatever is still written goes nowhere, and says it went (callbacks run)
      stream.write = ((_chunk: unknown, encodingOrCallback?: unknown, callback?: unknown) => {
        const cb = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback;
        if (typeof cb === 'function') queueMicrotask(() => (cb as () => void)());
        return true;
      }) as typeof stream.write;
      for (const l of listeners) l(name);
    });
  }
}

/** Whether a stream's reader went away. */
export const outputClosed = (name: 'stdout' | 'stderr'): boolean => closed.has(name);

/** Calls `listener` when stdout or stderr is closed by its reader; returns the unsubscribe function. */
export function onOutputClosed(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
