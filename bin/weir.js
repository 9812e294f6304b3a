#!/usr/bin/env node
// The weir CLI. Runs the compiled code in dist/ (npm run build).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('weir is not built yet: run `npm run build` (or `npm start`, which builds first)\n');
  process.exit(2);
}
await import(entry.href);
