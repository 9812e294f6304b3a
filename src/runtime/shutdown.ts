/**
 * Shutdown plumbing shared by the CLI and the runtime.
 *
 * A stop has two stages. The first signal *drains*: no new batch is read, in-flight
 * batch writes may finish within `shutdown_timeout`, then they are aborted through
 * the task signal, partitions that did not finish are aborted, and the run ends as
 * `stopped` (resumable). A second signal exits at once: {@link Closers.closeAll}
 * closes whatever is still open (writers, source, sink, the checkpoint store) within
 * a short grace period, then the process exits.
 */

type CloseFn = () => Promise<unknown> | unknown;

/**
 * Every resource a run holds open, so an immediate exit can still close it.
 * The owner closes its resource normally and unregisters it; `closeAll` is only the
 * emergency path.
 */
export class Closers {
  private readonly open = new Map<number, { name: string; close: CloseFn }>();
  private next = 0;

  /** Registers a resource; returns the function that unregisters it. */
  register(name: string, close: CloseFn): () => void {
    const id = this.next++;
    this.open.set(id, { name, close });
    return () => {
      this.open.delete(id);
    };
  }

  get size(): number {
    return this.open.size;
  }

  /** Closes everything still registered, newest first, waiting at most `timeoutMs` in all. Never throws. */
  async closeAll(timeoutMs = 2000): Promise<string[]> {
    const entries = [...this.open.values()].reverse();
    this.open.clear();
    const failed: string[] = [];
    const all = (async () => {
      for (const { name, close } of entries) {
        try {
          await close();
        } catch {
          failed.push(name);
        }
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    if (timer) clearTimeout(timer);
    return failed;
  }
}

/**
 * The two signals of a run: `drain` (stop requested: read nothing new) and `abort`
 * (stop now: in-flight work is cancelled). A drain turns into an abort after
 * `timeoutMs`.
 */
export class StopController {
  private readonly drainController = new AbortController();
  private readonly abortController = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  get drain(): AbortSignal {
    return this.drainController.signal;
  }

  get abort(): AbortSignal {
    return this.abortController.signal;
  }

  /** Starts draining; aborts in-flight work after `timeoutMs`. */
  requestDrain(reason: unknown, timeoutMs: number): void {
    if (this.drainController.signal.aborted) return;
    this.drainController.abort(reason);
    this.timer = setTimeout(() => this.abortNow(reason), timeoutMs);
    this.timer.unref();
  }

  /** Aborts everything now (also drains). */
  abortNow(reason: unknown): void {
    if (!this.drainController.signal.aborted) this.drainController.abort(reason);
    if (!this.abortController.signal.aborted) this.abortController.abort(reason);
    this.dispose();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
