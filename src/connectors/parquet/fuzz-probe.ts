/**
 * The parquet reader's fuzz driver: mutates valid files (their footers, their
 * page headers, their bytes) with a seeded fast-check run and reads each
 * mutant through the source the way a run does. Not part of the connector:
 * fuzz.test.ts bundles it and runs it in a child process, so that a hang can be
 * cut off and the peak memory is the reader's alone.
 *
 * Two contracts, by what was changed:
 * - strict (a count, size or offset in the footer or a page header; entries of
 *   the footer's lists duplicated or dropped; the file truncated or cut): the
 *   mutant reads exactly as the original did, or is refused as corrupt
 *   (`parquet_corrupt`). Such a lie is always detectable.
 * - robust (any other field, or random bytes anywhere): bytes of values can
 *   change undetectably (Parquet pages carry no checksum here) and so can type
 *   annotations, so any rows may come back; but a refusal is a WeirError of a
 *   known code, never a TypeError or RangeError, never a hang.
 *
 * Prints `case N <mutation>` to stderr before each case (so the parent can name
 * the case that hung) and one JSON line of counts and peak RSS to stdout.
 *
 * Usage: node fuzz-probe.mjs DIR SEED RUNS FILE...
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { WeirError } from '../../sdk/errors.js';
import type { Row } from '../../sdk/types.js';
import { joinFile, pagesOf, readWithSource, splitFile, withPageHeader } from './test-files.js';
import { T, type TField, type TList, type TStruct, type TValue } from './thrift.js';

const [dir = '.', seedText = '1', runsText = '200', ...names] = process.argv.slice(2);

/** Field-id paths (`*` for any list index) of the counts, sizes and offsets: the strict contract. */
const STRICT_FOOTER = [
  '3', // num_rows
  '2.*.5', // schema num_children
  '2.*.2', // schema type_length
  '4.*.2', // row group total_byte_size (unused: the same rows)
  '4.*.3', // row group num_rows
  '4.*.5', // row group file_offset
  '4.*.6', // row group total_compressed_size
  '4.*.1.*.2', // column chunk file_offset
  ...['5', '6', '7', '9', '10', '11'].map((id) => `4.*.1.*.3.${id}`), // num_values, sizes, page offsets
];
const STRICT_PAGE = ['2', '3', '5.1', '7.1', '8.1', '8.2', '8.3', '8.5', '8.6'];
/** The footer's lists whose entries a mutation duplicates or drops: schema elements, row groups, column chunks. */
const LISTS = ['2', '4', '4.*.1'];

/** Codes a refusal may carry under the robust contract: a changed codec, type or magic is a file of another kind. */
const ROBUST_CODES = new Set(['parquet_corrupt', 'unsupported_codec', 'unsupported_type', 'not_parquet', 'parquet_encrypted']);

interface Slot {
  path: string;
  owner: TStruct;
  field: TField;
}

const isInt = (f: TField) => f.type === T.I16 || f.type === T.I32 || f.type === T.I64 || f.type === T.BYTE;

/** Every integer field and every list of a struct tree, with its field-id path. */
function walk(s: TStruct, prefix: string, ints: Slot[], lists: Slot[]): void {
  for (const f of s.fields) {
    const path = prefix ? `${prefix}.${f.id}` : String(f.id);
    if (isInt(f)) ints.push({ path, owner: s, field: f });
    else if (f.type === T.STRUCT) walk(f.value as TStruct, path, ints, lists);
    else if (f.type === T.LIST) {
      lists.push({ path, owner: s, field: f });
      const list = f.value as TList;
      if (list.elemType === T.STRUCT) for (const item of list.items) walk(item as TStruct, `${path}.*`, ints, lists);
    }
  }
}

const matches = (patterns: readonly string[], path: string) => patterns.includes(path);

/** A value to put in an integer field: near the old one, an edge of a width, or anything. */
function newValue(old: bigint, choice: number, random: bigint): bigint {
  const table = [
    0n,
    -1n,
    1n,
    old - 1n,
    old + 1n,
    old * 2n,
    old / 2n,
    old + 1000n,
    2n ** 31n - 1n,
    -(2n ** 31n),
    2n ** 32n,
    2n ** 53n,
    2n ** 63n - 1n,
    -(2n ** 63n),
    10n ** 12n,
    random,
  ];
  return table[choice % table.length] as bigint;
}

function setValue(f: TField, value: bigint): void {
  if (f.type === T.I64) f.value = BigInt.asIntN(64, value);
  else if (f.type === T.BYTE) f.value = Number(BigInt.asUintN(8, value));
  else f.value = Number(BigInt.asIntN(32, value)); // what an i32 on the wire can say
}

type Mutation =
  | { kind: 'footer-int'; file: number; pick: number; choice: number; random: bigint }
  | { kind: 'footer-list'; file: number; pick: number; item: number; drop: boolean }
  | { kind: 'page-int'; file: number; page: number; pick: number; choice: number; random: bigint }
  | { kind: 'truncate'; file: number; at: number }
  | { kind: 'cut'; file: number; at: number; length: number }
  | { kind: 'flip'; file: number; footer: boolean; at: number[]; xor: number[] };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('footer-int' as const),
    file: fc.nat(),
    pick: fc.nat(),
    choice: fc.nat(),
    random: fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
  }),
  fc.record({ kind: fc.constant('footer-list' as const), file: fc.nat(), pick: fc.nat(), item: fc.nat(), drop: fc.boolean() }),
  fc.record({
    kind: fc.constant('page-int' as const),
    file: fc.nat(),
    page: fc.nat(),
    pick: fc.nat(),
    choice: fc.nat(),
    random: fc.bigInt(-(2n ** 31n), 2n ** 31n - 1n),
  }),
  fc.record({ kind: fc.constant('truncate' as const), file: fc.nat(), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({
    kind: fc.constant('cut' as const),
    file: fc.nat(),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    length: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({
    kind: fc.constant('flip' as const),
    file: fc.nat(),
    footer: fc.boolean(),
    at: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 4 }),
    xor: fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 4, maxLength: 4 }),
  }),
);

interface Seed {
  name: string;
  bytes: Uint8Array;
  rows: Row[];
}

/** The mutant's bytes and which contract it is held to (undefined: the mutation did not apply to this file). */
function mutate(seed: Seed, m: Mutation): { bytes: Uint8Array; strict: boolean; what: string } | undefined {
  const { bytes } = seed;
  switch (m.kind) {
    case 'footer-int': {
      const { data, footer } = splitFile(bytes);
      const ints: Slot[] = [];
      walk(footer, '', ints, []);
      const slot = ints[m.pick % ints.length] as Slot;
      const value = newValue(BigInt(slot.field.value as number | bigint), m.choice, m.random);
      setValue(slot.field, value);
      return {
        bytes: joinFile(data, footer),
        strict: matches(STRICT_FOOTER, slot.path),
        what: `footer ${slot.path} = ${slot.field.value}`,
      };
    }
    case 'footer-list': {
      const { data, footer } = splitFile(bytes);
      const lists: Slot[] = [];
      walk(footer, '', [], lists);
      const chosen = lists.filter((l) => LISTS.includes(l.path));
      const slot = chosen[m.pick % chosen.length] as Slot;
      const list = slot.field.value as TList;
      if (list.items.length === 0) return undefined;
      const i = m.item % list.items.length;
      if (m.drop) list.items.splice(i, 1);
      else list.items.splice(i, 0, list.items[i] as TValue);
      return { bytes: joinFile(data, footer), strict: true, what: `footer ${slot.path}[${i}] ${m.drop ? 'dropped' : 'doubled'}` };
    }
    case 'page-int': {
      const pages = pagesOf(bytes);
      const page = pages[m.page % pages.length];
      if (!page) return undefined;
      let what = '';
      let strict = false;
      const mutant = withPageHeader(bytes, page.at, (header) => {
        const here: Slot[] = [];
        walk(header, '', here, []);
        const target = here[m.pick % here.length] as Slot;
        setValue(target.field, newValue(BigInt(target.field.value as number | bigint), m.choice, m.random));
        strict = matches(STRICT_PAGE, target.path);
        what = `page at ${page.at}: ${target.path} = ${target.field.value}`;
      });
      return { bytes: mutant, strict, what };
    }
    case 'truncate': {
      const at = Math.floor(m.at * (bytes.length - 1));
      // shorter than the magic: nothing says it was ever Parquet
      return { bytes: bytes.slice(0, at), strict: at >= 4, what: `truncated at ${at}` };
    }
    case 'cut': {
      const { data, footer } = splitFile(bytes);
      const at = 4 + Math.floor(m.at * Math.max(0, data.length - 4 - m.length));
      const cut = new Uint8Array(data.length - m.length);
      cut.set(data.subarray(0, at));
      cut.set(data.subarray(at + m.length), at);
      return { bytes: joinFile(cut, footer), strict: true, what: `${m.length} data bytes cut at ${at}` };
    }
    case 'flip': {
      const out = bytes.slice();
      const { data } = splitFile(bytes);
      const [from, to] = m.footer ? [data.length, bytes.length] : [4, data.length];
      const at = m.at.map((x) => from + Math.floor(x * (to - from - 1)));
      at.forEach((p, i) => {
        out[p] = (out[p] as number) ^ (m.xor[i] as number);
      });
      return { bytes: out, strict: false, what: `bytes ${at.join(',')} of ${m.footer ? 'the footer' : 'the data'} flipped` };
    }
  }
}

const counts = { cases: 0, same: 0, refused: 0, changed: 0, skipped: 0, strict: 0 };
const byCode: Record<string, number> = {};

/** Reads one mutant; a message when the outcome breaks its contract. */
async function check(seed: Seed, m: Mutation, index: number): Promise<string | undefined> {
  const mutant = mutate(seed, m);
  if (!mutant) {
    counts.skipped++;
    return undefined;
  }
  counts.cases++;
  if (mutant.strict) counts.strict++;
  const label = `${seed.name}: ${mutant.what} (${mutant.strict ? 'strict' : 'robust'})`;
  process.stderr.write(`case ${index} ${label}\n`);
  const name = 'mutant.parquet';
  await writeFile(join(dir, name), mutant.bytes);
  let rows: Row[];
  try {
    rows = await readWithSource(dir, name);
  } catch (error) {
    const code = error instanceof WeirError ? error.code : `${(error as Error).name} (not a WeirError)`;
    byCode[code] = (byCode[code] ?? 0) + 1;
    counts.refused++;
    if (!(error instanceof WeirError)) return `${label}: ${(error as Error).stack}`;
    const allowed = mutant.strict ? code === 'parquet_corrupt' : ROBUST_CODES.has(code);
    if (!allowed) return `${label}: refused with ${code}: ${error.message}\ncause: ${(error.cause as Error)?.stack}`;
    if (code === 'parquet_corrupt' && !/ is a corrupt Parquet file: /.test(error.message))
      return `${label}: unclear message ${error.message}`;
    return undefined;
  }
  if (isDeepStrictEqual(rows, seed.rows)) {
    counts.same++;
    return undefined;
  }
  counts.changed++;
  if (mutant.strict) return `${label}: read ${rows.length} rows that differ from the original's ${seed.rows.length}`;
  return undefined;
}

const seeds: Seed[] = [];
for (const name of names) {
  const bytes = new Uint8Array(await readFile(join(dir, name)));
  seeds.push({ name, bytes, rows: await readWithSource(dir, name) });
}
const started = performance.now();
let index = 0;
let failure: string | undefined;
let lastProblem: string | undefined;
try {
  await fc.assert(
    fc.asyncProperty(mutation, async (m) => {
      const seed = seeds[m.file % seeds.length] as Seed;
      const problem = await check(seed, m, index++);
      if (problem) {
        lastProblem = problem;
        throw new Error(problem);
      }
    }),
    { seed: Number(seedText), numRuns: Number(runsText), endOnFailure: true },
  );
} catch (error) {
  failure = `${(error as Error).message}\n${lastProblem}`;
}
process.stdout.write(
  `${JSON.stringify({
    ...counts,
    byCode,
    seconds: (performance.now() - started) / 1000,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    failure,
  })}\n`,
);
