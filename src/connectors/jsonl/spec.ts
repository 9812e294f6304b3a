/**
 * Options of the `jsonl` connector (validated on the planner; the same values
 * reach every worker).
 */
import { jsonDepthOption, type OptionsOf, o } from '../../sdk/options.js';
import { COLUMN_TYPES } from '../../sdk/types.js';

/** The option spec of the `jsonl` connector, shared by its source and sink. */
export const jsonlOptions = {
  path: o
    .path()
    .describe(
      'The JSON Lines file to read (source) or write (sink): one JSON object per line. Relative paths resolve against the directory of the pipeline file.',
    )
    .required()
    .example('data/events.jsonl'),
  columns: o
    .map(o.enum(COLUMN_TYPES))
    .describe(
      'Source only. Column types by field name (integer, number, string, boolean, timestamp, json): those fields are converted to the type and a value that does not fit rejects its line. Other fields pass through as parsed; the schema is inferred from the first 1000 lines.',
    )
    .example({ id: 'integer', created_at: 'timestamp' }),
  max_depth: jsonDepthOption(),
  mode: o
    .enum(['overwrite', 'append'] as const)
    .describe(
      'Sink only. `overwrite` replaces the file; `append` adds the lines after the existing ones. Either way the file is replaced atomically when the run commits.',
    )
    .default('overwrite'),
};

/** Validated `jsonl` options, as the source and sink factories receive them. */
export type JsonlOptions = OptionsOf<typeof jsonlOptions>;
