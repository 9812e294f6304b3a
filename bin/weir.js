#!/usr/bin/env node
// The weir CLI. Runs the compiled code in dist/ (npm run build): the bundle when there
// is one (faster start-up, see scripts/bundle.js), else the modules tsc wrote.
import { existsSync } from 'node:fs';

// Flat memory on Node 24: its V8 lets the young generation grow to two 64 MB semi-spaces
// (Node 20 and 22 stop at 16 MB), which lifts a 1M-row run's peak from ~160 to ~300 MB
// with no gain in speed. The process replaces itself once (same pid, stdio and
// signals: execve) with Node 20's bound, unless the flag was given (execArgv or
// NODE_OPTIONS) or WEIR_NODE_DEFAULTS=1 asks for Node's own sizing.
const SEMI_SPACE = '--max-semi-space-size';
if (
  Number(process.versions.node.split('.')[0]) >= 24 &&
  typeof process.execve === 'function' &&
  process.env.WEIR_NODE_DEFAULTS !== '1' &&
  !`${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`.includes(SEMI_SPACE)
) {
  process.execve(process.execPath, [process.execPath, `${SEMI_SPACE}=16`, ...process.execArgv, ...process.argv.slice(1)], process.env);
}

const bundle = new URL('../dist/cli/weir.bundle.js', import.meta.url);
const entry = existsSync(bundle) ? bundle : new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('weir is not built yet: run `npm run build` (or `npm start`, which builds first)\n');
  process.exit(2);
}
await import(entry.href);
