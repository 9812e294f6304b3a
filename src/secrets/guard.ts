/**
 * Last line of defence: every byte the process writes to stdout or stderr passes
 * through the redactor, so even a stray `console.log`, a connector's debug print or a
 * crash printed by weir's handlers cannot show a registered secret value.
 *
 * Runs in the CLI process (and each worker process), installed once at start-up.
 *
 * - Strings in any encoding and Buffers/Uint8Arrays are decoded as text and scrubbed;
 *   a multi-byte character split across two Buffer writes is held back until it is
 *   complete (a per-stream `StringDecoder`), so it is neither mangled nor missed.
 * - The unit of scrubbing is one `write()`: a secret split across two writes is not
 *   recognised. pino writes whole lines and weir's messages are written whole.
 * - Output that does not go through `process.stdout`/`process.stderr` (`fs.writeSync(1)`,
 *   a child process inheriting the file descriptors, Node's own fatal-error printer
 *   before weir's handlers are installed) is not covered.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Redactor } from './redactor.js';

type Write = typeof process.stdout.write;
type Callback = (error?: Error | null) => void;

const TEXT_ENCODINGS = new Set(['utf8', 'utf-8']);

/** Installs the guard on stdout and stderr; returns a function that removes it. */
export function guardProcessOutput(r: Redactor): () => void {
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((s) => s.write);
  streams.forEach((stream, i) => {
    const original = originals[i] as Write;
    const decoder = new StringDecoder('utf8');
    stream.write = function guardedWrite(this: NodeJS.WriteStream, chunk: unknown, encodingOrCallback?: unknown, callback?: unknown) {
      const cb = (typeof encodingOrCallback === 'function' ? encodingOrCallback : callback) as Callback | undefined;
      const encoding = typeof encodingOrCallback === 'string' ? encodingOrCallback.toLowerCase() : undefined;
      let text: string;
      if (typeof chunk === 'string') {
        // a string after an incomplete multi-byte Buffer ends that character (as U+FFFD)
        text =
          encoding && !TEXT_ENCODINGS.has(encoding) ? decoder.write(Buffer.from(chunk, encoding as BufferEncoding)) : decoder.end() + chunk;
      } else if (chunk instanceof Uint8Array) {
        text = decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } else {
        // not text (object mode is not used on stdio): let the stream report it
        return (original as (...a: unknown[]) => boolean).call(this, chunk, encodingOrCallback, callback);
      }
      return (original as (...a: unknown[]) => boolean).call(this, r.scrub(text), 'utf8', cb);
    } as Write;
  });
  return () => {
    streams.forEach((stream, i) => {
      stream.write = originals[i] as Write;
    });
  };
}
