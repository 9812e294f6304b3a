// Bundles the CLI (dist/cli/main.js and what it imports) into dist/cli/weir.bundle.js,
// run by `npm run build` after tsc. Why: Node 20 has no compile cache, and resolving and
// loading ~350 module files cost ~60 ms of every `weir` start-up; one file loads faster.
// bin/weir.js prefers the bundle and falls back to dist/cli/main.js.
//
// Kept outside the bundle:
// - the SDK (dist/sdk/*): custom connectors import `weir/sdk`, and WeirError, RowError and
//   the option builders must be the same classes on both sides of `instanceof`;
// - Node built-ins, and native or optional modules (better-sqlite3's binding, pg-native).
// Dynamic imports (drivers loaded on first use) stay separate chunks, loaded when used.
import { rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const sdk = `${resolve(root, 'dist', 'sdk')}/`;
const NATIVE = new Set(['better-sqlite3', 'pg-native']);

const bundle = await rolldown({
  input: resolve(root, 'dist', 'cli', 'main.js'),
  platform: 'node',
  external: (id) => id.startsWith('node:') || NATIVE.has(id),
  // paths of external modules are written relative to the output, so the SDK resolves to dist/sdk
  makeAbsoluteExternalsRelative: true,
  plugins: [
    {
      name: 'weir-sdk-external',
      resolveId(id, importer) {
        if (!importer || !id.startsWith('.')) return null;
        const path = resolve(dirname(importer), id);
        return path.startsWith(sdk) ? { id: path, external: true } : null;
      },
    },
  ],
  logLevel: 'warn',
});
// chunk names carry a content hash: without this, every build's chunks would pile up beside the last
rmSync(resolve(root, 'dist', 'cli', 'chunks'), { recursive: true, force: true });
await bundle.write({
  dir: resolve(root, 'dist', 'cli'),
  format: 'esm',
  entryFileNames: 'weir.bundle.js',
  chunkFileNames: 'chunks/[name]-[hash].js',
});
await bundle.close();
