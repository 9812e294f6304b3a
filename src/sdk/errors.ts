/**
 * weir's error vocabulary. Every error a user can cause is a {@link WeirError}
 * with a `kind` that the CLI maps to an exit code and a message that names the
 * field, the bad value (unless secret) and the fix.
 *
 * - `config`    — the pipeline file or an option is wrong (exit 2)
 * - `connector` — a system weir talks to failed (exit 1); may be retryable
 * - `data`      — one row is bad (dead-letter candidate with `errors.tolerance: all`)
 * - `cancelled` — the run was stopped by a signal
 * - `internal`  — a bug in weir or in a connector
 */
export type ErrorKind = 'config' | 'connector' | 'data' | 'cancelled' | 'internal';

export interface WeirErrorOptions {
  /** Stable machine-readable code, e.g. `ECONNREFUSED`, `invalid_option`. */
  code?: string;
  kind?: ErrorKind;
  /** Whether retrying the same operation may succeed (network blips, 429, 503). */
  retryable?: boolean;
  /** A server-provided wait before the next attempt (e.g. from `Retry-After`). */
  retryAfterMs?: number;
  cause?: unknown;
  /** A row error of a sink's write: the index, in the batch written, of the row at fault, when the target says (a COPY line). */
  rowIndex?: number;
}

/**
 * The one error type of weir.
 *
 * @example
 * throw new WeirError('HTTP 429 from api.example.com', { code: 'http_429', retryable: true, retryAfterMs: 2000 });
 */
export class WeirError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  /** See {@link WeirErrorOptions.rowIndex}. */
  readonly rowIndex: number | undefined;

  constructor(message: string, options: WeirErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeirError';
    this.code = options.code ?? 'weir_error';
    this.kind = options.kind ?? 'connector';
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.rowIndex = options.rowIndex;
  }
}

/** One problem found in a configuration, located by its dotted path (`sink.port`). */
export interface ConfigIssue {
  path: string;
  message: string;
  /** The lines of the file the issue points at (the line and a caret under its column), printed below the message. */
  excerpt?: string;
}

/** All configuration problems at once; the CLI prints each and exits 2. */
export class ConfigError extends WeirError {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], title = 'invalid configuration') {
    super(`${title}:\n${issues.map(issueText).join('\n')}`, {
      code: 'invalid_config',
      kind: 'config',
    });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function issueText(i: ConfigIssue): string {
  const head = `  - ${i.path ? `${i.path}: ` : ''}${i.message}`;
  return i.excerpt ? `${head}\n${i.excerpt.replace(/^/gm, '      ')}` : head;
}

/**
 * Where a row came from in its source, for the messages of its errors: a file and
 * its line (csv, jsonl), or a table and the row's key (databases). Sources give it
 * with `ctx.reject`; the runtime puts it in front of the error's message.
 */
export interface RowLocation {
  /** The file's path. */
  file?: string;
  /** The line the record starts on (1 is the file's first line). */
  line?: number;
  /** The table (or query) the row was read from. */
  table?: string;
  /** The row's key in it, as `column=value` text. */
  key?: string;
}

/** A row's key as {@link RowLocation.key} has it, `id=7` or `a=1 b=x`, from its values of these columns (undefined when it has none of them). */
export function keyText(row: Readonly<Record<string, unknown>>, columns: readonly string[]): string | undefined {
  const parts = columns
    .filter((c) => row[c] !== undefined)
    .map((c) => `${c}=${typeof row[c] === 'object' && row[c] !== null ? JSON.stringify(row[c]) : String(row[c])}`);
  return parts.length ? parts.join(' ') : undefined;
}

/** The one text form of a row's location: `data/events.csv:42`, `line 42`, `table public.users, key id=7`. */
export function locationText(at: RowLocation): string | undefined {
  const parts: string[] = [];
  if (at.file !== undefined) parts.push(at.line !== undefined ? `${at.file}:${at.line}` : at.file);
  else if (at.line !== undefined) parts.push(`line ${at.line}`);
  if (at.table !== undefined) parts.push(`table ${at.table}`);
  if (at.key !== undefined) parts.push(`key ${at.key}`);
  return parts.length ? parts.join(', ') : undefined;
}

/**
 * The error of the row at `at`, its message led by the location
 * (`data.csv:3: column "n": "x" is not an integer`): a copy with the same class,
 * code, kind and cause; an error that is no WeirError becomes a {@link RowError}.
 * An error located already is returned as it is, so a row is located once however
 * many layers see it. Runs only for rows that failed (worker), never for good ones.
 *
 * @example
 * await ctx.reject(record, error, { file: path, line }); // the runtime calls locateError
 */
export function locateError(error: unknown, at: RowLocation | undefined): unknown {
  const text = at && locationText(at);
  if (!text || locationOf(error)) return error;
  if (!(error instanceof WeirError))
    return Object.assign(new RowError(`${text}: ${errorMessage(error)}`, { code: errorType(error), cause: error }), { location: at });
  const located = Object.assign(Object.create(Object.getPrototypeOf(error)) as WeirError, error, { location: at });
  Object.defineProperty(located, 'message', { value: `${text}: ${error.message}`, writable: true, configurable: true });
  if (error.stack !== undefined) Object.defineProperty(located, 'stack', { value: error.stack, writable: true, configurable: true });
  if (error.cause !== undefined) Object.defineProperty(located, 'cause', { value: error.cause, writable: true, configurable: true });
  return located;
}

/** The location {@link locateError} gave an error, if any. */
export function locationOf(error: unknown): RowLocation | undefined {
  const at = error instanceof Error ? (error as { location?: unknown }).location : undefined;
  return typeof at === 'object' && at !== null ? (at as RowLocation) : undefined;
}

/** Where each row of an array is in the source, by index; undefined where it is not known. */
export type RowLocator = (index: number) => RowLocation | undefined;

const LOCATORS = new WeakMap<readonly object[], RowLocator>();

/**
 * Marks an array of rows a source yields (or `EncodedRows.decode` returns) with where
 * each row is, so that errors a sink raises on them name it too (worker, once per
 * array: no work per row). The runtime keeps it through batching; transforms drop it.
 *
 * @example
 * yield withLocations(chunk, (i) => ({ file: path, line: lines[i] }));
 */
export function withLocations<T extends readonly object[]>(rows: T, locate: RowLocator): T {
  LOCATORS.set(rows, locate);
  return rows;
}

/** The locator {@link withLocations} gave an array of rows, if any. */
export function locationsOf(rows: readonly object[]): RowLocator | undefined {
  return LOCATORS.get(rows);
}

/**
 * The error of a row a sink refused, located: a one-row batch's row, else the row the
 * error names by its index in the batch (`WeirErrorOptions.rowIndex`, e.g. PostgreSQL's
 * COPY line). Only row (data) errors are located; any other error is returned as it is.
 */
export function locateRefused(error: unknown, rows: number, locate: RowLocator | undefined): unknown {
  if (!locate || !(error instanceof WeirError) || error.kind !== 'data') return error;
  const index = rows === 1 ? 0 : error.rowIndex;
  return index === undefined || index >= rows ? error : locateError(error, locate(index));
}

/** A single bad row. With `errors.tolerance: all` it goes to the dead-letter sink. */
export class RowError extends WeirError {
  constructor(message: string, options: Omit<WeirErrorOptions, 'kind'> = {}) {
    super(message, { ...options, kind: 'data', retryable: false, code: options.code ?? 'bad_row' });
    this.name = 'RowError';
  }
}

/** Socket-level error codes of a connection that failed or broke: worth retrying. Connectors add their driver's own. */
export const NETWORK_ERROR_CODES: readonly string[] = [
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
];

const RETRYABLE_CODES = new Set([
  ...NETWORK_ERROR_CODES,
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTDOWN',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

/**
 * Whether an error is worth retrying: a {@link WeirError} says so itself; otherwise
 * network errors and timeouts are retryable and everything else is not.
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof WeirError) return error.retryable;
  if (error && typeof error === 'object') {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true;
    const name = (error as { name?: unknown }).name;
    if (name === 'TimeoutError') return true;
  }
  return false;
}

/** Longest wait a `Retry-After` header may ask for; longer values are clamped to this. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * Parses an HTTP `Retry-After` header into milliseconds: either delay-seconds
 * (`"120"`, `"1.5"`) or an HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`), measured
 * from `now`. A date in the past gives 0. Returns `undefined` when the header is
 * missing or malformed. Call it where the response arrives (worker, per response)
 * and put the result in `WeirError`'s `retryAfterMs`.
 *
 * @example
 * throw new WeirError('HTTP 429', { code: 'http_429', retryable: true, retryAfterMs: parseRetryAfter(res.headers['retry-after']) });
 */
export function parseRetryAfter(header: string | null | undefined, now: number | Date = Date.now()): number | undefined {
  if (typeof header !== 'string') return undefined;
  const value = header.trim();
  if (value === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.min(MAX_RETRY_AFTER_MS, Math.ceil(Number(value) * 1000));
  // HTTP-date (IMF-fixdate, and the obsolete RFC 850 / asctime forms Date.parse also reads)
  if (!/[a-z]/i.test(value)) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  const from = typeof now === 'number' ? now : now.getTime();
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - from));
}

/** A short type name for metrics and logs (`error_type`). */
export function errorType(error: unknown): string {
  if (error instanceof WeirError) return error.code;
  if (error && typeof error === 'object') {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name) return name;
  }
  return typeof error;
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
