/**
 * `--set PATH=VALUE` (repeatable): changes to the pipeline file given on the command
 * line, e.g. `--set sink.batch_size=10000 --set source.partitions=8`. They are applied
 * to the file's text (its YAML document, comments kept) before anything else reads it,
 * so they are validated like the file, errors point at the changed key, and a task run
 * in another process (child or BullMQ worker) carries the pipeline as changed.
 *
 * VALUE is YAML: `10000` is a number, `true` a boolean, `[a, b]` a list, `'10'` a
 * string; a secret is passed as a reference (`--set 'sink.password=${env:PGPASSWORD}'`),
 * never as its value, since a command line is visible to every user of the machine.
 */
import { isMap, isSeq, parse, parseDocument } from 'yaml';
import { ConfigError } from '../sdk/errors.js';

export interface Override {
  path: (string | number)[];
  value: unknown;
  /** As written, for messages. */
  text: string;
}

/** Parses one `--set` argument. */
export function parseOverride(arg: string): Override {
  const eq = arg.indexOf('=');
  const key = eq > 0 ? arg.slice(0, eq).trim() : '';
  const fail = (why: string) =>
    new ConfigError([
      { path: '--set', message: `${JSON.stringify(arg)} ${why}; write --set PATH=VALUE, e.g. --set sink.batch_size=10000` },
    ]);
  if (!key) throw fail('has no PATH before "="');
  const segments = key.split('.');
  if (segments.some((s) => s === '')) throw fail(`has an empty segment in its PATH ${JSON.stringify(key)}`);
  let value: unknown;
  try {
    value = parse(arg.slice(eq + 1), { schema: 'core', strict: true, uniqueKeys: true });
  } catch (error) {
    throw fail(`has a VALUE that is not valid YAML (${(error as Error).message.split('\n')[0]})`);
  }
  return { path: segments.map((s) => (/^\d+$/.test(s) ? Number(s) : s)), value: value ?? null, text: arg };
}

/** The pipeline text with every override applied, in order. */
export function applyOverrides(text: string, overrides: readonly Override[]): string {
  if (overrides.length === 0) return text;
  const doc = parseDocument(text, { schema: 'core', uniqueKeys: true });
  if (doc.errors.length) return text; // the file's own errors are reported by the loader, with their lines
  for (const o of overrides) {
    // a step into a scalar (`sink.type.x` where `type` is text) would throw deep in yaml: say it plainly
    let node: unknown = doc.contents;
    for (const [i, seg] of o.path.slice(0, -1).entries()) {
      const next = isMap(node) || isSeq(node) ? node.get(seg, true) : undefined;
      if (next !== undefined && !isMap(next) && !isSeq(next))
        throw new ConfigError([
          {
            path: '--set',
            message: `${JSON.stringify(o.text)}: ${o.path.slice(0, i + 1).join('.')} is a value, not a section; set it as a whole, e.g. --set ${o.path.slice(0, i + 1).join('.')}=…`,
          },
        ]);
      node = next;
    }
    doc.setIn(o.path, o.value);
  }
  return doc.toString();
}
