/**
 * The expression language of `filter` and `set`: small, safe, exact.
 *
 * Written here rather than taken from a library (see docs/transforms.md, "Why a
 * language of its own"): the candidates either evaluate JavaScript property access
 * on user data (jexl, expr-eval: prototype-chain escapes reported in 2020–2026),
 * generate JavaScript source for `new Function` (filtrex), or are a large async
 * query language (JSONata); none keeps decimals and big integers exact.
 *
 * What makes it safe by construction:
 * - a field is a name (`amount`, or any name in backquotes: `` `Cost Total $` ``) looked
 *   up as the row's OWN property; there is no member access, no indexing, no
 *   assignment, so no path to a prototype, `constructor` or a global;
 * - functions come from a fixed table (a `Map`, so `constructor(…)` is just unknown);
 * - the text is parsed once per run into closures (no `eval`, no `new Function`),
 *   with bounds on its length, its tokens and its nesting depth;
 * - every operator checks the types of its operands; a value of the wrong type is a
 *   row error (dead-lettered under `errors.tolerance: all`), never a JavaScript coercion.
 *
 * Numbers are exact: an operand that is a {@link Decimal} or a bigint makes `+ - *`
 * and the comparisons exact (`0.1 + 0.2 == 0.3` holds for decimals); `/` divides
 * as doubles. Runs wherever the partition runs (worker), once per row.
 */
import { RowError } from '../sdk/errors.js';
import type { ColumnType, Row } from '../sdk/types.js';
import { Decimal } from '../sdk/values.js';

/** The run's metadata an expression can read: `$run_id`, `$pipeline`, `$partition`, `$attempt`, `$load_time`. */
export interface ExprMeta {
  readonly runId: string;
  readonly pipeline: string;
  readonly partitionId: string;
  readonly attempt: number;
  readonly loadTime: Date;
}

export type Value = null | boolean | number | bigint | string | Decimal | Date | Uint8Array | unknown;
export type Compiled = (row: Row, meta: ExprMeta) => Value;

/** Limits on an expression's text. */
export const MAX_EXPRESSION_LENGTH = 4096;
export const MAX_TOKENS = 1024;
export const MAX_DEPTH = 48;

/** An expression that does not parse: where (1-based line and column within the expression) and why. */
export class ExpressionError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly col: number,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'ExpressionError';
  }
}

// ---------------------------------------------------------------------------
// Lexer

type TokenKind = 'num' | 'str' | 'name' | 'field' | 'meta' | 'op' | 'eof';
interface Token {
  kind: TokenKind;
  text: string;
  at: number;
}

const OPS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '+', '-', '*', '/', '%', '(', ')', ',', '!', '[', ']'];
const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUMBER = /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/y;
const META_NAMES = new Set(['run_id', 'pipeline', 'partition', 'attempt', 'load_time']);

function position(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++)
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  return { line, col: offset - start + 1 };
}

function fail(text: string, offset: number, message: string): never {
  const { line, col } = position(text, offset);
  throw new ExpressionError(message, line, col, offset);
}

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (tokens.length >= MAX_TOKENS) fail(text, i, `the expression is too long: at most ${MAX_TOKENS} tokens`);
    const at = i;
    if (c === '"' || c === "'" || c === '`') {
      let out = '';
      i++;
      for (;;) {
        if (i >= text.length) fail(text, at, `unclosed ${c === '`' ? 'field name' : 'string'}: add the closing ${c}`);
        const ch = text[i] as string;
        if (ch === c) break;
        if (ch === '\\') {
          const next = text[i + 1];
          if (next === undefined) fail(text, i, 'a backslash at the end of the text');
          out += next === 'n' ? '\n' : next === 't' ? '\t' : next;
          i += 2;
          continue;
        }
        out += ch;
        i++;
      }
      i++;
      if (c === '`' && out === '') fail(text, at, 'an empty field name: write the name between the backquotes');
      tokens.push({ kind: c === '`' ? 'field' : 'str', text: out, at });
      continue;
    }
    if (c === '$') {
      NAME.lastIndex = i + 1;
      const m = NAME.exec(text);
      if (!m || !META_NAMES.has(m[0]))
        fail(text, at, `unknown run variable ${m ? `$${m[0]}` : '$'}; known: ${[...META_NAMES].map((n) => `$${n}`).join(', ')}`);
      tokens.push({ kind: 'meta', text: m[0], at });
      i += 1 + m[0].length;
      continue;
    }
    NUMBER.lastIndex = i;
    const num = /[0-9.]/.test(c) ? NUMBER.exec(text) : null;
    if (num) {
      tokens.push({ kind: 'num', text: num[0], at });
      i += num[0].length;
      continue;
    }
    NAME.lastIndex = i;
    const name = NAME.exec(text);
    if (name) {
      tokens.push({ kind: 'name', text: name[0], at });
      i += name[0].length;
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', text: op, at });
      i += op.length;
      continue;
    }
    if (c === '=') fail(text, at, 'use == to compare (there is no assignment)');
    if (c === '.') fail(text, at, 'there is no member access: a field is a name, or any name in backquotes such as `a.b`');
    fail(text, at, `unexpected character ${JSON.stringify(c)}`);
  }
  tokens.push({ kind: 'eof', text: '', at: text.length });
  return tokens;
}

// ---------------------------------------------------------------------------
// Parser (precedence climbing) producing closures

/** The column type an expression gives, from the types of the columns it reads (undefined: unknown). */
export type Infer = (columns: ReadonlyMap<string, ColumnType>) => ColumnType | undefined;

interface Node {
  eval: Compiled;
  infer?: Infer;
  /** A constant, for folding and for argument checks. */
  constant?: { value: Value };
  at: number;
}

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'true', 'false', 'null']);

class Parser {
  private pos = 0;
  private depth = 0;
  /** Fields the expression reads. */
  readonly fields = new Set<string>();
  readonly usesMeta = new Set<string>();

  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
  ) {}

  private peek(): Token {
    return this.tokens[this.pos] as Token;
  }
  private next(): Token {
    return this.tokens[this.pos++] as Token;
  }
  private isOp(text: string): boolean {
    const t = this.peek();
    return t.kind === 'op' && t.text === text;
  }
  private isWord(text: string): boolean {
    const t = this.peek();
    return t.kind === 'name' && t.text === text;
  }
  private expect(text: string, what: string): Token {
    const t = this.peek();
    if (t.kind === 'op' && t.text === text) return this.next();
    return fail(this.text, t.at, `expected ${what}, found ${describe(t)}`);
  }
  private enter(at: number): void {
    if (++this.depth > MAX_DEPTH) fail(this.text, at, `the expression nests too deeply: at most ${MAX_DEPTH} levels`);
  }

  parse(): Node {
    if (this.peek().kind === 'eof') fail(this.text, 0, 'the expression is empty');
    const node = this.or();
    const t = this.peek();
    if (t.kind !== 'eof') fail(this.text, t.at, `unexpected ${describe(t)}; an operator such as and, or, ==, + was expected`);
    return node;
  }

  private or(): Node {
    let left = this.and();
    while (this.isWord('or') || this.isOp('||')) {
      const at = this.next().at;
      const right = this.and();
      const [l, r] = [left.eval, right.eval];
      left = { at, infer: BOOL, eval: (row, m) => truthy(l(row, m), 'or', this.text, at) || truthy(r(row, m), 'or', this.text, at) };
    }
    return left;
  }

  private and(): Node {
    let left = this.not();
    while (this.isWord('and') || this.isOp('&&')) {
      const at = this.next().at;
      const right = this.not();
      const [l, r] = [left.eval, right.eval];
      left = { at, infer: BOOL, eval: (row, m) => truthy(l(row, m), 'and', this.text, at) && truthy(r(row, m), 'and', this.text, at) };
    }
    return left;
  }

  private not(): Node {
    if (this.isWord('not') || this.isOp('!')) {
      const at = this.next().at;
      this.enter(at);
      const inner = this.not().eval;
      this.depth--;
      return { at, infer: BOOL, eval: (row, m) => !truthy(inner(row, m), 'not', this.text, at) };
    }
    return this.comparison();
  }

  private comparison(): Node {
    const left = this.additive();
    const t = this.peek();
    let op: string | undefined;
    if (t.kind === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(t.text)) op = t.text;
    else if (t.kind === 'name' && t.text === 'in') op = 'in';
    else if (t.kind === 'name' && t.text === 'not' && this.tokens[this.pos + 1]?.text === 'in') {
      this.next();
      op = 'not in';
    }
    if (!op) return left;
    const at = this.next().at;
    if (op === 'in' || op === 'not in') {
      const list = this.list();
      const l = left.eval;
      const negate = op === 'not in';
      return {
        at,
        infer: BOOL,
        eval: (row, m) => {
          const v = l(row, m);
          let found = false;
          for (const item of list) if (equals(v, item(row, m))) found = true;
          return negate ? !found : found;
        },
      };
    }
    const right = this.additive();
    const [l, r] = [left.eval, right.eval];
    const text = this.text;
    switch (op) {
      case '==':
        return { at, infer: BOOL, eval: (row, m) => equals(l(row, m), r(row, m)) };
      case '!=':
        return { at, infer: BOOL, eval: (row, m) => !equals(l(row, m), r(row, m)) };
      default: {
        const test =
          op === '<'
            ? (c: number) => c < 0
            : op === '<='
              ? (c: number) => c <= 0
              : op === '>'
                ? (c: number) => c > 0
                : (c: number) => c >= 0;
        return {
          at,
          infer: BOOL,
          eval: (row, m) => {
            const c = compare(l(row, m), r(row, m), op as string, text, at);
            return c === undefined ? false : test(c);
          },
        };
      }
    }
  }

  private list(): Compiled[] {
    const open = this.expect('[', 'a list such as ["a", "b"] after in');
    this.enter(open.at);
    const items: Compiled[] = [];
    if (!this.isOp(']')) {
      do items.push(this.or().eval);
      while (this.isOp(',') && this.next());
    }
    this.expect(']', 'a comma or ] to close the list');
    this.depth--;
    return items;
  }

  private additive(): Node {
    let left = this.multiplicative();
    while (this.isOp('+') || this.isOp('-')) {
      const t = this.next();
      const right = this.multiplicative();
      left = this.arith(t.text, left, right, t.at);
    }
    return left;
  }

  private multiplicative(): Node {
    let left = this.unary();
    while (this.isOp('*') || this.isOp('/') || this.isOp('%')) {
      const t = this.next();
      const right = this.unary();
      left = this.arith(t.text, left, right, t.at);
    }
    return left;
  }

  private arith(op: string, left: Node, right: Node, at: number): Node {
    const [l, r] = [left.eval, right.eval];
    const text = this.text;
    const infer: Infer = (cols) => arithmeticType(op, left.infer?.(cols), right.infer?.(cols));
    return fold({ at, infer, eval: (row, m) => arithmetic(op, l(row, m), r(row, m), text, at) }, [left, right]);
  }

  private unary(): Node {
    if (this.isOp('-')) {
      const at = this.next().at;
      this.enter(at);
      const inner = this.unary();
      this.depth--;
      const f = inner.eval;
      const text = this.text;
      return fold({ at, infer: (cols) => inner.infer?.(cols), eval: (row, m) => arithmetic('-', 0, f(row, m), text, at) }, [inner]);
    }
    return this.primary();
  }

  private primary(): Node {
    const t = this.next();
    switch (t.kind) {
      case 'num': {
        const value = numberLiteral(t.text);
        return { at: t.at, constant: { value }, infer: () => columnTypeOf(value), eval: () => value };
      }
      case 'str': {
        const value = t.text;
        return { at: t.at, constant: { value }, infer: () => 'string', eval: () => value };
      }
      case 'field':
        return this.field(t.text, t.at);
      case 'meta': {
        const name = t.text;
        this.usesMeta.add(name);
        const type: ColumnType = name === 'load_time' ? 'timestamp' : name === 'attempt' ? 'integer' : 'string';
        return { at: t.at, infer: () => type, eval: (_row, m) => metaValue(name, m) };
      }
      case 'name': {
        if (t.text === 'true' || t.text === 'false') {
          const value = t.text === 'true';
          return { at: t.at, constant: { value }, infer: BOOL, eval: () => value };
        }
        if (t.text === 'null') return { at: t.at, constant: { value: null }, eval: () => null };
        if (this.isOp('(')) return this.call(t);
        if (KEYWORDS.has(t.text)) fail(this.text, t.at, `unexpected ${t.text}; a value was expected`);
        return this.field(t.text, t.at);
      }
      case 'op':
        if (t.text === '(') {
          this.enter(t.at);
          const inner = this.or();
          this.expect(')', 'a closing )');
          this.depth--;
          return inner;
        }
        return fail(this.text, t.at, `unexpected ${describe(t)}; a value was expected`);
      default:
        return fail(this.text, t.at, 'the expression ends too early; a value was expected');
    }
  }

  private field(name: string, at: number): Node {
    this.fields.add(name);
    return { at, infer: (cols) => cols.get(name), eval: (row) => (Object.hasOwn(row, name) ? (row[name] ?? null) : null) };
  }

  private call(name: Token): Node {
    const fn = FUNCTIONS.get(name.text);
    if (!fn) fail(this.text, name.at, `unknown function ${name.text}(); known: ${[...FUNCTIONS.keys()].join(', ')}`);
    const open = this.expect('(', 'an opening (');
    this.enter(open.at);
    const args: Node[] = [];
    if (!this.isOp(')')) {
      do args.push(this.or());
      while (this.isOp(',') && this.next());
    }
    this.expect(')', `a comma or ) to close ${name.text}(`);
    this.depth--;
    if (args.length < fn.min || args.length > fn.max) {
      const want = fn.min === fn.max ? `${fn.min}` : fn.max === Number.POSITIVE_INFINITY ? `at least ${fn.min}` : `${fn.min} to ${fn.max}`;
      fail(this.text, name.at, `${name.text}() takes ${want} argument(s), got ${args.length}: ${fn.usage}`);
    }
    const evals = args.map((a) => a.eval);
    const text = this.text;
    const at = name.at;
    const fname = name.text;
    const infer: Infer = (cols) => (typeof fn.type === 'function' ? fn.type(args.map((a) => a.infer?.(cols))) : fn.type);
    if (fn.lazy) return { at, infer, eval: (row, m) => fn.lazy?.(evals, row, m) };
    return {
      at,
      infer,
      eval: (row, m) => {
        const values = new Array(evals.length);
        for (let i = 0; i < evals.length; i++) values[i] = (evals[i] as Compiled)(row, m);
        try {
          return fn.call(values);
        } catch (error) {
          if (error instanceof TypeProblem) rowFail(text, at, `${fname}(): ${error.message}`);
          throw error;
        }
      },
    };
  }
}

function describe(t: Token): string {
  if (t.kind === 'eof') return 'the end of the expression';
  if (t.kind === 'str') return 'a string';
  return JSON.stringify(t.text);
}

/** Folds an operation on constants once, at compile time (an error then stays a row error at run time). */
function fold(node: Node, inputs: Node[]): Node {
  if (!inputs.every((n) => n.constant)) return node;
  try {
    const value = node.eval(Object.create(null), NO_META);
    return { ...node, constant: { value }, eval: () => value };
  } catch {
    return node;
  }
}

const NO_META: ExprMeta = { runId: '', pipeline: '', partitionId: '', attempt: 0, loadTime: new Date(0) };

function metaValue(name: string, m: ExprMeta): Value {
  switch (name) {
    case 'run_id':
      return m.runId;
    case 'pipeline':
      return m.pipeline;
    case 'partition':
      return m.partitionId;
    case 'attempt':
      return m.attempt;
    default:
      return m.loadTime;
  }
}

function numberLiteral(text: string): Value {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  }
  // a literal with a point is exact: `0.1` compares equal to a decimal 0.1
  return Decimal.parse(text) as Decimal;
}

// ---------------------------------------------------------------------------
// Types

const BOOL: Infer = () => 'boolean';

/** The column type of a value. */
export function columnTypeOf(v: Value): ColumnType | undefined {
  if (v === null || v === undefined) return undefined;
  if (Decimal.is(v)) return 'decimal';
  if (v instanceof Date) return 'timestamp';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'boolean';
  return 'json';
}

function arithmeticType(op: string, a: ColumnType | undefined, b: ColumnType | undefined): ColumnType | undefined {
  if (op === '+' && a === 'string' && b === 'string') return 'string';
  if (!a || !b) return a ?? b;
  if (op === '/') return 'number';
  if (a === 'number' || b === 'number') return 'number';
  if (a === 'decimal' || b === 'decimal') return 'decimal';
  if (a === 'integer' && b === 'integer') return 'integer';
  return undefined;
}

// ---------------------------------------------------------------------------
// Values

/** A wrong type inside a function: turned into a row error naming the function. */
class TypeProblem extends Error {}

function rowFail(text: string, at: number, message: string): never {
  const { line, col } = position(text, at);
  const where = text.includes('\n') ? `line ${line}:${col}` : `column ${col}`;
  throw new RowError(`expression ${JSON.stringify(clip(text))} at ${where}: ${message}`, { code: 'expression_error' });
}

const clip = (text: string) => (text.length > 60 ? `${text.slice(0, 57)}...` : text);

/** The type name shown in messages. */
export function typeOf(v: Value): string {
  if (v === null || v === undefined) return 'null';
  if (Decimal.is(v)) return 'decimal';
  if (v instanceof Date) return 'timestamp';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v === 'object' ? 'object' : typeof v;
}

function show(v: Value): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (v instanceof Date) return v.toISOString();
  if (Decimal.is(v) || typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') {
    const t = String(v);
    return t.length > 40 ? `${t.slice(0, 20)}…(${t.length} characters)` : t;
  }
  return typeOf(v);
}

function truthy(v: Value, op: string, text: string, at: number): boolean {
  if (typeof v === 'boolean') return v;
  if (v === null || v === undefined) return false;
  return rowFail(text, at, `${op} needs true or false, got ${typeOf(v)} ${show(v)}; compare it, e.g. x > 0 or x != ""`);
}

const isNumeric = (v: Value): v is number | bigint | Decimal => typeof v === 'number' || typeof v === 'bigint' || Decimal.is(v);

interface Exact {
  u: bigint;
  s: number;
}

/** A number as an exact unscaled integer and scale; undefined for NaN or an infinity. */
function exact(v: number | bigint | Decimal): Exact | undefined {
  if (typeof v === 'bigint') return { u: v, s: 0 };
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return { u: BigInt(v), s: 0 };
    if (!Number.isFinite(v)) return undefined;
    const d = Decimal.parse(String(v));
    return d ? exact(d) : undefined;
  }
  const s = v.scale;
  if (s > MAX_EXACT_DIGITS || v.integerDigits > MAX_EXACT_DIGITS) return undefined; // `1e999999` would make a number of a million digits
  return { u: v.unscaled(s) as bigint, s };
}

function align(a: Exact, b: Exact): [bigint, bigint, number] {
  if (a.s === b.s) return [a.u, b.u, a.s];
  if (a.s > b.s) return [a.u, b.u * 10n ** BigInt(a.s - b.s), a.s];
  return [a.u * 10n ** BigInt(b.s - a.s), b.u, b.s];
}

/** A numeric string as a number, for comparisons with numbers (`"12.50" > 10`). */
function numericText(v: string): Decimal | undefined {
  return v.length <= 64 ? Decimal.parse(v) : undefined;
}

function compareNumbers(a: number | bigint | Decimal, b: number | bigint | Decimal): number | undefined {
  if (typeof a === 'number' && typeof b === 'number') return Number.isNaN(a) || Number.isNaN(b) ? undefined : a < b ? -1 : a > b ? 1 : 0;
  const x = exact(a);
  const y = exact(b);
  if (!x || !y) {
    const [p, q] = [Number(Decimal.is(a) ? a.text : a), Number(Decimal.is(b) ? b.text : b)];
    return p < q ? -1 : p > q ? 1 : p === q ? 0 : undefined;
  }
  const [p, q] = align(x, y);
  return p < q ? -1 : p > q ? 1 : 0;
}

/** Equality without coercion, except numbers of any representation (and numeric text against a number). */
export function equals(a: Value, b: Value): boolean {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  if (isNumeric(a) && isNumeric(b)) return compareNumbers(a, b) === 0;
  if (isNumeric(a) && typeof b === 'string') {
    const d = numericText(b);
    return d !== undefined && compareNumbers(a, d) === 0;
  }
  if (typeof a === 'string' && isNumeric(b)) return equals(b, a);
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  return a === b;
}

/** -1, 0, 1; undefined when one side is null (the comparison is then false). */
function compare(a: Value, b: Value, op: string, text: string, at: number): number | undefined {
  if (a === null || a === undefined || b === null || b === undefined) return undefined;
  if (isNumeric(a) && isNumeric(b)) return compareNumbers(a, b);
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (a instanceof Date && b instanceof Date) return Math.sign(a.getTime() - b.getTime());
  if (isNumeric(a) && typeof b === 'string' && numericText(b)) return compareNumbers(a, numericText(b) as Decimal);
  if (typeof a === 'string' && isNumeric(b) && numericText(a)) return compareNumbers(numericText(a) as Decimal, b);
  if (a instanceof Date && typeof b === 'string') {
    const t = Date.parse(b);
    if (!Number.isNaN(t)) return Math.sign(a.getTime() - t);
  }
  if (typeof a === 'string' && b instanceof Date) {
    const t = Date.parse(a);
    if (!Number.isNaN(t)) return Math.sign(t - b.getTime());
  }
  return rowFail(text, at, `cannot compare ${typeOf(a)} ${show(a)} ${op} ${typeOf(b)} ${show(b)}; cast the field first`);
}

/** Safe integers as numbers, larger ones as bigint. */
const integer = (n: bigint): number | bigint => (n >= -9007199254740991n && n <= 9007199254740991n ? Number(n) : n);

/** Digits an exact result may have: a bound on the work `*` can cause. */
const MAX_EXACT_DIGITS = 2000;

function arithmetic(op: string, a: Value, b: Value, text: string, at: number): Value {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  if (op === '+' && typeof a === 'string' && typeof b === 'string') return a + b;
  if (!isNumeric(a) || !isNumeric(b)) {
    const hint = op === '+' && (typeof a === 'string' || typeof b === 'string') ? '; join text with concat()' : '; cast the field first';
    return rowFail(text, at, `cannot compute ${typeOf(a)} ${show(a)} ${op} ${typeOf(b)} ${show(b)}${hint}`);
  }
  if (typeof a === 'number' && typeof b === 'number') {
    const r = op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : op === '/' ? a / b : a % b;
    if (op === '/' || op === '%') {
      if (b === 0) return rowFail(text, at, `division by zero (${show(a)} ${op} 0)`);
      return r;
    }
    // integers stay exact beyond 2^53
    if (Number.isInteger(a) && Number.isInteger(b) && !Number.isSafeInteger(r)) return arithmetic(op, BigInt(a), BigInt(b), text, at);
    return r;
  }
  if (op === '/') {
    const q = Number(Decimal.is(b) ? b.text : b);
    if (q === 0) return rowFail(text, at, `division by zero (${show(a)} / 0)`);
    return Number(Decimal.is(a) ? a.text : a) / q;
  }
  const x = exact(a);
  const y = exact(b);
  if (!x || !y) return rowFail(text, at, `${show(a)} ${op} ${show(b)} cannot be computed exactly`);
  const whole = (v: number | bigint | Decimal) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
  const decimal = !whole(a) || !whole(b);
  let u: bigint;
  let s: number;
  if (op === '*') {
    u = x.u * y.u;
    s = x.s + y.s;
  } else {
    const [p, q, scale] = align(x, y);
    s = scale;
    if (op === '%') {
      if (q === 0n) return rowFail(text, at, `division by zero (${show(a)} % 0)`);
      u = p % q;
    } else u = op === '+' ? p + q : p - q;
  }
  if (u.toString().length > MAX_EXACT_DIGITS) return rowFail(text, at, `the result has more than ${MAX_EXACT_DIGITS} digits`);
  if (!decimal && s === 0) return integer(u);
  return Decimal.fromUnscaled(u, s);
}

// ---------------------------------------------------------------------------
// Functions

interface Fn {
  /** The result's column type, or how it follows from the arguments'. */
  type?: ColumnType | ((args: (ColumnType | undefined)[]) => ColumnType | undefined);
  min: number;
  max: number;
  usage: string;
  call(args: Value[]): Value;
  /** Evaluates its own arguments (if, coalesce): only the needed ones run. */
  lazy?(args: Compiled[], row: Row, meta: ExprMeta): Value;
}

const text = (v: Value, fn: string): string => {
  if (typeof v === 'string') return v;
  throw new TypeProblem(`needs text, got ${typeOf(v)} ${show(v)}; use string(x) to convert (${fn})`);
};

/** Text of any scalar (numbers exactly as they are). */
export function stringOf(v: Value): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (Decimal.is(v)) return v.text;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  try {
    return JSON.stringify(v);
  } catch {
    return null;
  }
}

const nullable =
  (f: (args: Value[]) => Value) =>
  (args: Value[]): Value =>
    args.some((a) => a === null || a === undefined) ? null : f(args);

const MAX_STRING_RESULT = 1 << 24;

function checkedLength(s: string): string {
  if (s.length > MAX_STRING_RESULT) throw new TypeProblem(`the result would be longer than ${MAX_STRING_RESULT} characters`);
  return s;
}

function rounded(v: Value, digits: Value, mode: 'round' | 'floor' | 'ceil'): Value {
  if (!isNumeric(v)) throw new TypeProblem(`needs a number, got ${typeOf(v)} ${show(v)}`);
  const d = digits === undefined ? 0 : Number(digits);
  if (!Number.isInteger(d) || d < 0 || d > 30) throw new TypeProblem('the number of digits must be a whole number from 0 to 30');
  if (typeof v === 'number') {
    const f = 10 ** d;
    const r = mode === 'round' ? Math.round(v * f) / f : mode === 'floor' ? Math.floor(v * f) / f : Math.ceil(v * f) / f;
    return r;
  }
  const x = exact(v);
  if (!x) throw new TypeProblem(`${show(v)} cannot be rounded exactly`);
  if (x.s <= d) return v;
  const div = 10n ** BigInt(x.s - d);
  let q = x.u / div;
  const r = x.u % div;
  if (r !== 0n) {
    const negative = x.u < 0n;
    if (mode === 'floor' && negative) q -= 1n;
    else if (mode === 'ceil' && !negative) q += 1n;
    else if (mode === 'round') {
      const twice = (r < 0n ? -r : r) * 2n;
      if (twice >= div) q += negative ? -1n : 1n; // half away from zero
    }
  }
  return Decimal.is(v) || d > 0 ? Decimal.fromUnscaled(q, d) : integer(q);
}

const FUNCTIONS = new Map<string, Fn>([
  ['lower', { type: 'string', min: 1, max: 1, usage: 'lower(text)', call: nullable(([s]) => text(s, 'lower').toLowerCase()) }],
  ['upper', { type: 'string', min: 1, max: 1, usage: 'upper(text)', call: nullable(([s]) => text(s, 'upper').toUpperCase()) }],
  ['trim', { type: 'string', min: 1, max: 1, usage: 'trim(text)', call: nullable(([s]) => text(s, 'trim').trim()) }],
  ['length', { type: 'integer', min: 1, max: 1, usage: 'length(text)', call: nullable(([s]) => [...text(s, 'length')].length) }],
  [
    'concat',
    {
      type: 'string',
      min: 1,
      max: 64,
      usage: 'concat(a, b, ...) — null parts are left out',
      call: (args) => checkedLength(args.map((a) => stringOf(a) ?? '').join('')),
    },
  ],
  [
    'substr',
    {
      type: 'string',
      min: 2,
      max: 3,
      usage: 'substr(text, start, length?) — start counts from 0',
      call: nullable(([s, start, len]) => {
        const chars = [...text(s, 'substr')];
        const from = Number(start);
        const n = len === undefined ? chars.length : Number(len);
        if (!Number.isInteger(from) || !Number.isInteger(n) || n < 0) throw new TypeProblem('start and length must be whole numbers');
        return chars
          .slice(from < 0 ? Math.max(0, chars.length + from) : from, (from < 0 ? Math.max(0, chars.length + from) : from) + n)
          .join('');
      }),
    },
  ],
  [
    'replace',
    {
      type: 'string',
      min: 3,
      max: 3,
      usage: 'replace(text, find, with) — every occurrence, plain text (no patterns)',
      call: nullable(([s, find, by]) => {
        const f = text(find, 'replace');
        if (f === '') throw new TypeProblem('the text to find is empty');
        return checkedLength(text(s, 'replace').split(f).join(text(by, 'replace')));
      }),
    },
  ],
  [
    'starts_with',
    {
      type: 'boolean',
      min: 2,
      max: 2,
      usage: 'starts_with(text, prefix)',
      call: nullable(([s, p]) => text(s, 'starts_with').startsWith(text(p, 'starts_with'))),
    },
  ],
  [
    'ends_with',
    {
      type: 'boolean',
      min: 2,
      max: 2,
      usage: 'ends_with(text, suffix)',
      call: nullable(([s, p]) => text(s, 'ends_with').endsWith(text(p, 'ends_with'))),
    },
  ],
  [
    'contains',
    {
      type: 'boolean',
      min: 2,
      max: 2,
      usage: 'contains(text, part)',
      call: nullable(([s, p]) => text(s, 'contains').includes(text(p, 'contains'))),
    },
  ],
  ['is_null', { type: 'boolean', min: 1, max: 1, usage: 'is_null(x)', call: ([v]) => v === null || v === undefined }],
  [
    'string',
    { type: 'string', min: 1, max: 1, usage: 'string(x) — exact text of a number, ISO text of a timestamp', call: ([v]) => stringOf(v) },
  ],
  [
    'number',
    {
      type: 'decimal',
      min: 1,
      max: 1,
      usage: 'number(x) — text to an exact number',
      call: nullable(([v]) => {
        if (isNumeric(v)) return v;
        const d = typeof v === 'string' ? numericText(v.trim()) : undefined;
        if (!d) throw new TypeProblem(`${show(v)} is not a number`);
        return /^-?\d+$/.test(d.text) ? integer(BigInt(d.text)) : d;
      }),
    },
  ],
  [
    'abs',
    {
      type: (a) => a[0],
      min: 1,
      max: 1,
      usage: 'abs(number)',
      call: nullable(([v]) => {
        if (typeof v === 'number') return Math.abs(v);
        if (typeof v === 'bigint') return v < 0n ? -v : v;
        if (Decimal.is(v)) return v.text.startsWith('-') ? (Decimal.parse(v.text.slice(1)) as Decimal) : v;
        throw new TypeProblem(`needs a number, got ${typeOf(v)} ${show(v)}`);
      }),
    },
  ],
  [
    'round',
    {
      type: (a) => a[0],
      min: 1,
      max: 2,
      usage: 'round(number, digits?) — half away from zero, exact for decimals',
      call: nullable(([v, d]) => rounded(v, d, 'round')),
    },
  ],
  ['floor', { type: (a) => a[0], min: 1, max: 2, usage: 'floor(number, digits?)', call: nullable(([v, d]) => rounded(v, d, 'floor')) }],
  ['ceil', { type: (a) => a[0], min: 1, max: 2, usage: 'ceil(number, digits?)', call: nullable(([v, d]) => rounded(v, d, 'ceil')) }],
  [
    'coalesce',
    {
      type: (a) => a.find((t) => t !== undefined),
      min: 1,
      max: 64,
      usage: 'coalesce(a, b, ...) — the first that is not null',
      call: () => null,
      lazy: (args, row, m) => {
        for (const a of args) {
          const v = a(row, m);
          if (v !== null && v !== undefined) return v;
        }
        return null;
      },
    },
  ],
  [
    'if',
    {
      type: (a) => a[1] ?? a[2],
      min: 3,
      max: 3,
      usage: 'if(condition, then, else)',
      call: () => null,
      lazy: ([c, a, b], row, m) => {
        const v = (c as Compiled)(row, m);
        if (v !== null && typeof v !== 'boolean')
          throw new RowError(`if(): the condition must be true or false, got ${typeOf(v)}`, { code: 'expression_error' });
        return v === true ? (a as Compiled)(row, m) : (b as Compiled)(row, m);
      },
    },
  ],
]);

/** Names of the functions, for docs. */
export const FUNCTION_USAGE: readonly string[] = [...FUNCTIONS.values()].map((f) => f.usage);

export interface CompiledExpression {
  readonly source: string;
  readonly evaluate: Compiled;
  /** Fields the expression reads. */
  readonly fields: ReadonlySet<string>;
  /** The value, when the expression is a constant. */
  readonly constant?: { value: Value };
  /** The column type of the result, given the types of the columns it reads. */
  readonly infer: Infer;
}

/**
 * Parses an expression once (planner at validation, and each worker). Throws an
 * {@link ExpressionError} with the line and column within the text.
 *
 * @example
 * const e = compileExpression('amount > 0 and country in ["DE", "FR"]');
 * e.evaluate(row, meta); // true or false
 */
export function compileExpression(source: string): CompiledExpression {
  if (typeof source !== 'string') throw new ExpressionError('the expression must be text', 1, 1, 0);
  if (source.length > MAX_EXPRESSION_LENGTH)
    throw new ExpressionError(`the expression is ${source.length} characters long; at most ${MAX_EXPRESSION_LENGTH} are allowed`, 1, 1, 0);
  const parser = new Parser(source, lex(source));
  const node = parser.parse();
  return {
    source,
    evaluate: node.eval,
    fields: parser.fields,
    infer: node.infer ?? (() => undefined),
    ...(node.constant ? { constant: node.constant } : {}),
  };
}
