import { ConfigError, errorMessage, WeirError } from '../sdk/errors.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, check: 3, sigint: 130, sigpipe: 141, sigterm: 143 } as const;

/** Prints an error the way users see it: message only, never a stack trace. */
export function printError(error: unknown): number {
  if (error instanceof ConfigError) {
    process.stderr.write(`error: ${error.message}\n`);
    return EXIT.usage;
  }
  if (error instanceof WeirError) {
    process.stderr.write(`error: ${error.message}\n`);
    return error.kind === 'config' ? EXIT.usage : EXIT.failed;
  }
  process.stderr.write(`internal error: ${errorMessage(error)}\n`);
  if (process.env.WEIR_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  else process.stderr.write('  (this is a bug in weir or a connector; set WEIR_DEBUG=1 for the stack trace)\n');
  return EXIT.failed;
}
