/**
 * Options of the `csv` connector (validated on the planner; the same values
 * reach every worker).
 */
import { type OptionsOf, o, type Rule, rules } from '../../sdk/options.js';
import { COLUMN_TYPES } from '../../sdk/types.js';

const oneChar = () => o.string({ minLength: 1, maxLength: 1 });

/** The option spec of the `csv` connector, shared by its source and sink. */
export const csvOptions = {
  path: o
    .path()
    .describe('The CSV file to read (source) or write (sink). Relative paths resolve against the directory of the pipeline file.')
    .required()
    .example('data/orders.csv'),
  header: o
    .bool()
    .describe('Whether the first row (after `skip_lines`) holds the column names. As a sink: whether to write a header row.')
    .default(true),
  columns: o
    .map(o.enum(COLUMN_TYPES))
    .describe(
      'Column types by column name (integer, decimal, number, string, boolean, timestamp, json): `decimal` is exact, `number` a double. As a source, the named columns are converted to these types and the other columns are inferred from the first 1000 rows, choosing only types that keep the text as it is: integer (64-bit, canonical digits), decimal (any other number, with the precision and scale seen), boolean (`true`/`false`), ISO-8601 timestamp, else string. Required when `header` is false, and then it also gives the column order. As a sink: the columns to write, in this order (other fields of a row are left out).',
    )
    .example({ id: 'integer', amount: 'decimal', created_at: 'timestamp' }),
  delimiter: oneChar().describe('The field separator, one character, e.g. "," or ";" or "\\t".').default(','),
  quote: oneChar().describe('The character that quotes fields containing the delimiter, quotes or line breaks.').default('"'),
  encoding: o
    .enum(['utf8', 'utf8-lossy', 'latin1'] as const)
    .describe(
      'Text encoding of the file. `utf8` is strict: as a source, a record with bytes that encode no character is a row error (dead-lettered with `errors.tolerance: all`). `utf8-lossy` reads such bytes as U+FFFD (the replacement character) instead; `latin1` reads every byte as one character. A sink writes UTF-8 for both utf8 settings.',
    )
    .default('utf8'),
  null_value: o
    .string()
    .describe(
      'The text that means null, besides an unquoted empty field. As a source, an unquoted empty field and an unquoted field equal to it are null, while quoted text is always text (`""` is the empty string, as PostgreSQL reads CSV); in columns that are not strings, empty text and this text are null too. As a sink, nulls are written as it, unquoted, and any text that would read back as null (`""`) is quoted.',
    )
    .default(''),
  mode: o
    .enum(['overwrite', 'append'] as const)
    .describe(
      'Sink only. `overwrite` replaces the file; `append` adds the rows after the existing ones (and writes no second header). Either way the file is replaced atomically when the run commits.',
    )
    .default('overwrite'),
  formula_escape: o
    .bool()
    .describe(
      "Sink only. Writes text that starts with `=`, `+`, `-`, `@`, a tab or a carriage return with a `'` in front (OWASP's advice against CSV injection), in values and in the header, so a spreadsheet shows it as text instead of running it as a formula. Numbers (integer, decimal and number values) are written as they are. The file then no longer holds the exact text: leave it off for files that programs read.",
    )
    .default(false),
  split_bytes: o
    .bytes({ min: 0 })
    .describe(
      "Source only. A file with more data than this is read as several partitions of about this size, each a range of whole records, read and written in parallel (up to the pipeline's `concurrency`) and committed on its own (4096 partitions at most: larger ones when the file is bigger). Finding the record boundaries reads the file once at planning (quoted line breaks are followed). 0 reads every file as one partition.",
    )
    .default('32MB')
    .example('128MB', 0)
    .advanced(),
  max_record_bytes: o
    .bytes({ min: 1024, max: 1024 * 1024 * 1024 })
    .describe(
      'Source only. A record larger than this (an unclosed quote that swallows the rest of the file, a runaway field) is one row error: one dead letter with `errors.tolerance: all`, counted once against `max_failed_rows`, and reading goes on at the next record. Bounds the memory one record takes.',
    )
    .default('64MB')
    .advanced(),
  skip_lines: o
    .int({ min: 0 })
    .describe('Source only. Lines to skip at the top of the file before the header or first row (titles, comments).')
    .default(0)
    .advanced(),
};

/** Validated `csv` options, as the source and sink factories receive them. */
export type CsvOptions = OptionsOf<typeof csvOptions>;

/** The Node.js encoding of the file's text (`utf8-lossy` decodes as `utf8` does). */
export const textEncoding = (opts: CsvOptions): BufferEncoding => (opts.encoding === 'latin1' ? 'latin1' : 'utf8');

/** Cross-field rules of the `csv` connector in both roles. */
export const csvRules: Rule[] = [
  rules.custom('`delimiter` and `quote` must differ', ['delimiter', 'quote'], (opts) =>
    opts.delimiter === opts.quote ? `delimiter and quote are both ${JSON.stringify(opts.delimiter)}; change one of them` : undefined,
  ),
];

/** Rules checked only when `csv` is used as a source. */
export const csvSourceRules: Rule[] = [
  rules.custom('`columns` is required when `header` is false', ['columns', 'header'], (opts) =>
    opts.header === false && (opts.columns === undefined || Object.keys(opts.columns as object).length === 0)
      ? 'columns is required when header is false (the file has no column names); set columns, e.g. { id: integer, name: string }, or set header: true'
      : undefined,
  ),
];
