/**
 * The V8 flags weir runs with where Node's defaults differ from what its memory bounds
 * assume. `bin/weir.js` re-executes itself once with them (`process.execve`: same pid,
 * stdio and signals); tests that run weir's code in a process of their own pass them too.
 *
 * Node 24's V8 lets the young generation grow to two 64 MB semi-spaces (Node 20 and 22
 * stop at 16 MB), which took a 1M-row run from ~160 to 250–315 MB peak RSS at the same
 * speed. A flag of the user's own (in execArgv or NODE_OPTIONS) wins, and
 * `WEIR_NODE_DEFAULTS=1` keeps Node's sizing.
 */
const SEMI_SPACE = '--max-semi-space-size';

/** The flags to add to a node process started with `execArgv` and `env`; none when Node's own defaults do. */
export function weirNodeFlags(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string[] {
  if (Number(process.versions.node.split('.')[0]) < 24 || env.WEIR_NODE_DEFAULTS === '1') return [];
  if (`${execArgv.join(' ')} ${env.NODE_OPTIONS ?? ''}`.includes(SEMI_SPACE)) return [];
  return [`${SEMI_SPACE}=16`];
}
