/**
 * Last line of defence: every byte the process writes to stdout or stderr passes
 * through the redactor, so even a stray `console.log`, a connector's debug print or a
 * crash printed by weir's handlers cannot show a registered secret value.
 *
 * Runs in the CLI process (and each worker process), installed once at start-up.
 *
 * - A string is scrubbed as the text it is, whatever encoding it is written in, and
 *   written in that encoding (`write(s, 'utf16le')` still writes UTF-16); a string in a
 *   binary encoding (`hex`, `base64`) is decoded to its bytes first.
 * - Buffers/Uint8Arrays are decoded as UTF-8 and scrubbed; a multi-byte character split
 *   across two writes is held back until it is complete (a per-stream `StringDecoder`),
 *   so it is neither mangled nor missed. Bytes that hold UTF-16 text (a NUL after each
 *   ASCII character) are decoded as UTF-16LE, scrubbed and written back as UTF-16LE.
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

/** Encodings in which a string is written as the text it holds (scrubbed as it is). */
const TEXT_ENCODINGS = new Set(['utf8', 'utf-8', 'utf16le', 'utf-16le', 'ucs2', 'ucs-2', 'latin1', 'binary', 'ascii']);

/** Whether bytes look like UTF-16LE text: mostly ASCII characters, each followed by a NUL. */
function looksUtf16(bytes: Buffer): boolean {
  if (bytes.length < 4 || bytes.length % 2 !== 0) return false;
  let nuls = 0;
  for (let i = 1; i < bytes.length; i += 2) if (bytes[i] === 0 && bytes[i - 1] !== 0) nuls++;
  return nuls * 2 >= bytes.length / 2;
}

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
      const write = (text: string, as: BufferEncoding = 'utf8') =>
        (original as (...a: unknown[]) => boolean).call(this, r.scrub(text), as, cb);
      if (typeof chunk === 'string') {
        // a string after an incomplete multi-byte Buffer ends that character (as U+FFFD)
        if (encoding && !TEXT_ENCODINGS.has(encoding)) return write(decoder.write(Buffer.from(chunk, encoding as BufferEncoding)));
        const pending = decoder.end();
        if (pending) (original as (...a: unknown[]) => boolean).call(this, r.scrub(pending), 'utf8');
        return write(chunk, (encoding ?? 'utf8') as BufferEncoding);
      }
      if (chunk instanceof Uint8Array) {
        const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (looksUtf16(bytes)) return write(decoder.end() + bytes.toString('utf16le'), 'utf16le');
        return write(decoder.write(bytes));
      }
      // not text (object mode is not used on stdio): let the stream report it
      return (original as (...a: unknown[]) => boolean).call(this, chunk, encodingOrCallback, callback);
    } as Write;
  });
  return () => {
    streams.forEach((stream, i) => {
      stream.write = originals[i] as Write;
    });
  };
}
