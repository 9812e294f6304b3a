import { describe, expect, it } from 'vitest';
import { Registry } from '../config/registry.js';
import { builtinConnectors } from '../connectors/index.js';
import { ConfigError, RowError } from '../sdk/errors.js';
import { asRow, type Row } from '../sdk/types.js';
import { Decimal } from '../sdk/values.js';
import { type TransformChain, transformsOption } from './index.js';
import { snakeCase } from './rename.js';

const registry = new Registry(builtinConnectors);
const ctx = { runId: 'run-1', pipeline: 'p', partitionId: '0', attempt: 1, loadTime: new Date('2024-05-06T07:08:09Z') };

function chain(steps: unknown[]): TransformChain {
  const r = transformsOption(registry).parse(steps, 'transforms');
  if ('issues' in r) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

function issues(steps: unknown[]): string[] {
  const r = transformsOption(registry).parse(steps, 'transforms');
  if ('issues' in r) return r.issues.map((i) => `${i.path}: ${i.message}`);
  if (!r.ok) return [r.message];
  return [];
}

async function apply(c: TransformChain, rows: Record<string, unknown>[]) {
  const rejected: { record: Row; error: unknown }[] = [];
  const run = c.start(ctx);
  const out = await run.apply(
    rows.map((r) => asRow({ ...r })),
    async (record, error) => {
      rejected.push({ record, error });
    },
  );
  return { out: out.map((r) => ({ ...r })), rejected, metrics: run.metrics() };
}

describe('steps', () => {
  it('rename: a map, snake case, and collisions', async () => {
    expect(snakeCase('Cost Total $')).toBe('cost_total');
    expect(snakeCase('orderID')).toBe('order_id');
    expect(snakeCase('HTTPServer Name')).toBe('http_server_name');
    expect(snakeCase('E-mail Address')).toBe('e_mail_address');
    expect(snakeCase('already_snake')).toBe('already_snake');
    expect(snakeCase('$')).toBe('$');
    const { out } = await apply(chain([{ rename: { 'Cost Total $': 'amount' } }, { rename: { case: 'snake' } }]), [
      { 'Cost Total $': 1, 'First Name': 'a' },
    ]);
    expect(out).toEqual([{ amount: 1, first_name: 'a' }]);
    const both = await apply(chain([{ rename: { fields: { A: 'x' }, case: 'upper' } }]), [{ A: 1, b: 2 }]);
    expect(both.out).toEqual([{ x: 1, B: 2 }]);
    const clash = await apply(chain([{ rename: { case: 'snake' } }]), [{ 'A B': 1, a_b: 2 }]);
    expect(clash.out).toEqual([]);
    expect(String(clash.rejected[0]?.error)).toMatch(/two columns would both be named "a_b"/);
    expect(issues([{ rename: { a: 'x', b: 'x' } }])).toEqual([
      'transforms[0].rename.fields.b: "a" and "b" would both become "x"; give each its own name',
    ]);
  });

  it('select and drop', async () => {
    const { out } = await apply(chain([{ select: ['c', 'a'] }]), [{ a: 1, b: 2, c: 3 }]);
    expect(out).toEqual([{ c: 3, a: 1 }]);
    expect(Object.keys(out[0] as object)).toEqual(['c', 'a']);
    expect((await apply(chain([{ drop: { fields: ['b'] } }]), [{ a: 1, b: 2 }])).out).toEqual([{ a: 1 }]);
  });

  it('cast: exact, and a value that does not convert is a row error', async () => {
    const c = chain([{ cast: { amount: 'decimal', qty: 'integer', ok: 'boolean', at: 'timestamp', n: 'number', s: 'string' } }]);
    const { out, rejected } = await apply(c, [
      { amount: '375.30', qty: '12', ok: 'yes', at: '2024-01-02 03:04:05', n: '1.5', s: 12 },
      { amount: '12345678901234567890.123456789', qty: '18446744073709551615', ok: 'f', at: null, n: 2, s: null },
      { amount: 'abc', qty: '1', ok: 'true', at: null, n: 1, s: 'x' },
      { amount: '1', qty: '1.5', ok: 'true', at: null, n: 1, s: 'x' },
      { amount: '1', qty: '1', ok: 'true', at: null, n: '0.12345678901234567891', s: 'x' },
    ]);
    expect(out).toHaveLength(2);
    expect(((out[0] as Row).amount as Decimal).text).toBe('375.30');
    expect(out[0]).toMatchObject({ qty: 12, ok: true, at: new Date('2024-01-02T03:04:05Z'), n: 1.5, s: '12' });
    expect(((out[1] as Row).amount as Decimal).text).toBe('12345678901234567890.123456789');
    expect(out[1]?.qty).toBe(18446744073709551615n);
    expect(rejected.map((r) => String((r.error as Error).message))).toEqual([
      'transforms[0] cast: column "amount" to decimal: string "abc" is not a decimal number',
      'transforms[0] cast: column "qty" to integer: 1.5 has a fraction; round it first (set: { x: round(x) })',
      'transforms[0] cast: column "n" to number: 0.12345678901234567891 cannot be held exactly by a number (a double); cast it to decimal',
    ]);
    expect(rejected.every((r) => r.error instanceof RowError)).toBe(true);
    expect(issues([{ cast: { a: 'decimel' } }])[0]).toMatch(/transforms\[0\]\.cast\.a: must be one of .* \(did you mean "decimal"\?\)/);
  });

  it('filter keeps rows where the expression is true and counts the others', async () => {
    const { out, metrics } = await apply(chain([{ filter: 'amount > 0 and country != "XX"' }]), [
      { amount: 1, country: 'DE' },
      { amount: 0, country: 'DE' },
      { amount: null, country: 'DE' },
      { amount: 5, country: 'XX' },
    ]);
    expect(out).toEqual([{ amount: 1, country: 'DE' }]);
    expect(metrics).toEqual([{ step: 0, name: 'filter', rows_in: 4, rows_out: 1, rows_filtered: 3, rows_failed: 0 }]);
  });

  it('set: expressions and run metadata, each seeing the row as it came in', async () => {
    const { out } = await apply(
      chain([{ set: { cents: 'amount * 100', amount: 'amount + 1', run: '$run_id', part: '$partition', at: '$load_time', src: '"crm"' } }]),
      [{ amount: Decimal.parse('1.25') }],
    );
    expect(((out[0] as Row).cents as Decimal).text).toBe('125.00');
    expect(((out[0] as Row).amount as Decimal).text).toBe('2.25');
    expect(out[0]).toMatchObject({ run: 'run-1', part: '0', at: ctx.loadTime, src: 'crm' });
  });

  it('mask: fixed, last and hmac (same input, same token)', async () => {
    const key = 'k'.repeat(32);
    const { out } = await apply(
      chain([
        { mask: { fields: ['a'] } },
        { mask: { fields: ['card'], method: 'last', keep: 4 } },
        { mask: { fields: ['email', 'other'], method: 'hmac', key } },
      ]),
      [
        { a: 'secret', card: '4111111111111111', email: 'x@y.de', other: 'x@y.de' },
        { a: null, card: '12', email: 'z@y.de', other: null },
      ],
    );
    expect(out[0]).toMatchObject({ a: '****', card: '************1111' });
    expect(out[0]?.email).toMatch(/^[0-9a-f]{64}$/);
    expect(out[0]?.email).toBe(out[0]?.other);
    expect(out[1]?.email).not.toBe(out[0]?.email);
    expect(out[1]).toMatchObject({ a: null, card: '*2', other: null });
    expect(issues([{ mask: { fields: ['e'], method: 'hmac' } }])[0]).toMatch(/key is required when method is "hmac"/);
    expect(issues([{ mask: { fields: ['e'], method: 'hmac', key: 'short' } }])[0]).toMatch(
      /transforms\[0\]\.mask\.key: must be at least 16/,
    );
  });

  it('timestamp: parse with a format and a zone, and format', async () => {
    const { out, rejected } = await apply(
      chain([
        { timestamp: { field: 'd', format: 'dd.MM.yyyy HH:mm', zone: 'Europe/Berlin' } },
        { timestamp: { field: 'd', target: 'text', mode: 'format', format: 'yyyy/MM/dd HH:mm:ss', zone: 'America/New_York' } },
        { timestamp: { field: 'e', format: 'epoch_seconds' } },
      ]),
      [
        { d: '01.07.2024 14:30', e: '1700000000' },
        { d: '15.01.2024 08:00', e: 0 },
        { d: '31.02.2024 08:00', e: 0 },
        { d: 'yesterday', e: 0 },
      ],
    );
    expect(out[0]?.d).toEqual(new Date('2024-07-01T12:30:00Z'));
    expect(out[0]?.text).toBe('2024/07/01 08:30:00');
    expect(out[0]?.e).toEqual(new Date(1_700_000_000_000));
    expect(out[1]?.d).toEqual(new Date('2024-01-15T07:00:00Z'));
    expect(rejected.map((r) => (r.error as Error).message)).toEqual([
      'transforms[0] timestamp: column "d": the text is not a real date and time',
      'transforms[0] timestamp: column "d": the text does not match the format "dd.MM.yyyy HH:mm"',
    ]);
    expect(issues([{ timestamp: { field: 'd', zone: 'Mars/Olympus' } }])[0]).toMatch(/is not a time zone/);
    expect(issues([{ timestamp: { field: 'd', format: 'yyyy-QQ' } }])[0]).toMatch(/unknown pattern letter "Q"/);
  });

  it('the schema flows through every step, and a step naming a missing column is a config error', () => {
    const c = chain([
      { rename: { case: 'snake' } },
      { cast: { amount: 'decimal' } },
      { set: { cents: 'amount * 100', loaded: '$load_time', big: 'amount > 10' } },
      { drop: ['note'] },
      { mask: { fields: ['e_mail'], method: 'fixed' } },
    ]);
    const input = [
      { name: 'Amount', type: 'string' as const },
      { name: 'E Mail', type: 'integer' as const },
      { name: 'Note', type: 'string' as const },
    ];
    expect(c.schema(input)?.map((x) => `${x.name}:${x.type}`)).toEqual([
      'amount:decimal',
      'e_mail:string',
      'cents:decimal',
      'loaded:timestamp',
      'big:boolean',
    ]);
    expect(() => chain([{ mask: { fields: ['email'] } }]).schema(input)).toThrow(ConfigError);
    expect(() => chain([{ mask: { fields: ['email'] } }]).schema(input)).toThrow(
      /transforms\[0\]\.mask\.fields: mask: "email" is not a column of the rows at this step; columns: Amount, E Mail, Note/,
    );
  });
});
