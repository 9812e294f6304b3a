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
await import(entry.href);
