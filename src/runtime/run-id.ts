import { randomBytes } from 'node:crypto';

/** A new run id: the UTC start time and 8 random hex digits, e.g. `20261202T131500Z-1a2b3c4d`. */
export function newRunId(): string {
  const t = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${t}-${randomBytes(4).toString('hex')}`;
}
