/**
 * Last line of defence: every byte the process writes to stdout or stderr passes
 * through the redactor, so even a stray `console.log` or a crash printed by Node
 * itself cannot show a registered secret value.
 */
import type { Redactor } from './redactor.js';

type Write = typeof process.stdout.write;

export function guardProcessOutput(r: Redactor): () => void {
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((s) => s.write);
  streams.forEach((stream, i) => {
    const original = originals[i] as Write;
    stream.write = function guardedWrite(this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
      const text = typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : chunk;
      const safe = typeof text === 'string' ? r.scrub(text) : text;
      return (original as (...a: unknown[]) => boolean).call(this, safe, ...rest);
    } as Write;
  });
  return () => {
    streams.forEach((stream, i) => {
      stream.write = originals[i] as Write;
    });
  };
}
