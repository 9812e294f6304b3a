#!/usr/bin/env node
// The weir CLI. Runs the compiled code in dist/ (npm run build): the bundle when there
// is one (faster start-up, see scripts/bundle.js), else the modules tsc wrote.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/cli/weir.bundle.js', import.meta.url);
const entry = existsSync(bundle) ? bundle : new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('weir is not built yet: run `npm run build` (or `npm start`, which builds first)\n');
  process.exit(2);
}
// once, the V8 flags weir's memory bounds assume where Node's defaults differ (src/cli/node-flags.ts
// says which and why); process.execve exists from Node 22.15
if (typeof process.execve === 'function') {
  const { weirNodeFlags } = await import(new URL('../dist/cli/node-flags.js', import.meta.url).href);
  const flags = weirNodeFlags();
  if (flags.length > 0) process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)], process.env);
}
await import(entry.href);
