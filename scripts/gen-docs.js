// Regenerates docs/pipeline.md and docs/connectors/*.md from the option specs (run `npm run docs`).
// A test fails when these files are stale.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { generatedDocs } from '../dist/config/generated-docs.js';

const root = new URL('../docs/', import.meta.url);
mkdirSync(new URL('connectors/', root), { recursive: true });
for (const f of readdirSync(new URL('connectors/', root))) if (f.endsWith('.md')) rmSync(new URL(`connectors/${f}`, root));
const files = await generatedDocs();
for (const [path, text] of Object.entries(files)) writeFileSync(new URL(path, root), text);
console.log(`wrote ${Object.keys(files).length} files under docs/`);
