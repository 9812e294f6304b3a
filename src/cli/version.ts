/** weir's version, from package.json (two levels up from dist/cli, where both this module and the CLI bundle live). */
import { readFileSync } from 'node:fs';

export function weirVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}
