import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { guardProcessOutput } from './guard.js';
import { REDACTED, Redactor } from './redactor.js';

const SECRET = 'gu4rd-s3cret-ÄÖÜ-密码';

describe('guardProcessOutput', () => {
  let written: { stream: 'stdout' | 'stderr'; chunk: unknown; encoding: unknown }[];
  let restoreCapture: () => void;
  let unguard: () => void;

  beforeEach(() => {
    written = [];
    const saved = [process.stdout.write, process.stderr.write];
    for (const [name, stream] of [
      ['stdout', process.stdout],
      ['stderr', process.stderr],
    ] as const) {
      stream.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
        written.push({ stream: name, chunk, encoding });
        const callback = typeof encoding === 'function' ? encoding : cb;
        if (typeof callback === 'function') callback();
        return true;
      }) as typeof stream.write;
    }
    restoreCapture = () => {
      process.stdout.write = saved[0] as typeof process.stdout.write;
      process.stderr.write = saved[1] as typeof process.stderr.write;
    };
    const r = new Redactor();
    r.addValue(SECRET);
    unguard = guardProcessOutput(r);
  });

  afterEach(() => {
    unguard();
    restoreCapture();
  });

  const text = (stream?: 'stdout' | 'stderr') =>
    written
      .filter((w) => !stream || w.stream === stream)
      .map((w) => String(w.chunk))
      .join('');

  // console.log goes through the same write in a real process (vitest captures console itself): see test/security
  it('scrubs strings on stdout and stderr', () => {
    process.stdout.write(`a ${SECRET} b\n`);
    process.stderr.write(`password=hunter22 ${SECRET}\n`);
    expect(text('stdout')).toBe(`a ${REDACTED} b\n`);
    expect(text('stderr')).toBe(`password=${REDACTED} ${REDACTED}\n`);
  });

  it('scrubs Buffers and Uint8Array views', () => {
    process.stdout.write(Buffer.from(`buf ${SECRET}\n`));
    const bytes = Buffer.from(`xxxx view ${SECRET}\n`);
    process.stdout.write(new Uint8Array(bytes.buffer, bytes.byteOffset + 4, bytes.byteLength - 4));
    expect(text()).toBe(`buf ${REDACTED}\n view ${REDACTED}\n`);
  });

  it('keeps a multi-byte character split across two Buffer writes intact, and still scrubs', () => {
    const bytes = Buffer.from(`é ${SECRET} 密\n`);
    // split inside the 3-byte '密' at the end, and inside 'é' at the start
    process.stdout.write(bytes.subarray(0, 1));
    process.stdout.write(bytes.subarray(1, bytes.length - 3));
    process.stdout.write(bytes.subarray(bytes.length - 3));
    const out = text();
    expect(out).not.toContain('\uFFFD');
    expect(out).toBe(`é ${REDACTED} 密\n`);
  });

  it('decodes strings written in another encoding before scrubbing', () => {
    process.stdout.write(Buffer.from(`hex ${SECRET}\n`).toString('hex'), 'hex');
    process.stdout.write(Buffer.from(`b64 ${SECRET}\n`).toString('base64'), 'base64');
    expect(text()).toBe(`hex ${REDACTED}\nb64 ${REDACTED}\n`);
  });

  it('scrubs a string written as UTF-16, UCS-2 or latin1, and keeps writing it in that encoding', () => {
    const ascii = 'gu4rd-s3cret-ascii-only';
    const r = new Redactor();
    r.addValue(ascii);
    unguard();
    unguard = guardProcessOutput(r);
    for (const encoding of ['utf16le', 'ucs2', 'latin1'] as const) process.stdout.write(`${encoding} ${ascii}\n`, encoding);
    expect(written.map((w) => w.chunk)).toEqual([`utf16le ${REDACTED}\n`, `ucs2 ${REDACTED}\n`, `latin1 ${REDACTED}\n`]);
    expect(written.map((w) => w.encoding)).toEqual(['utf16le', 'ucs2', 'latin1']);
  });

  it('scrubs UTF-16 bytes in a Buffer or a Uint8Array', () => {
    process.stdout.write(Buffer.from(`utf16 buffer ${SECRET}\n`, 'utf16le'));
    process.stderr.write(new Uint8Array(Buffer.from(`utf16 view ${SECRET}\n`, 'utf16le')));
    expect(written.map((w) => Buffer.from(String(w.chunk), w.encoding as BufferEncoding).toString('utf16le'))).toEqual([
      `utf16 buffer ${REDACTED}\n`,
      `utf16 view ${REDACTED}\n`,
    ]);
  });

  it('scrubs an upper- or lower-cased secret', () => {
    process.stdout.write(`${SECRET.toUpperCase()} ${SECRET.toLowerCase()}\n`);
    expect(text()).toBe(`${REDACTED} ${REDACTED}\n`);
  });

  it('passes the callback through', async () => {
    await new Promise<void>((resolve) => process.stdout.write('cb\n', () => resolve()));
    await new Promise<void>((resolve) => process.stdout.write('cb2\n', 'utf8', () => resolve()));
    expect(text()).toBe('cb\ncb2\n');
  });
});
