import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/cli.js';
import { REDACTED, Redactor } from '../secrets/redactor.js';
import { resolveReferences } from './resolve.js';

const VALUE = 'res0lve-Secret-value-42';

describe('resolveReferences', () => {
  let dir: string;
  let r: Redactor;
  const env: string[] = [];
  const setEnv = (name: string, value: string) => {
    process.env[name] = value;
    env.push(name);
  };
  const secretFile = (name: string, text: string, mode = 0o600) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    chmodSync(p, mode);
    return p;
  };
  const resolve = (data: unknown) => {
    const out = resolveReferences(data, dir, r);
    // nothing a user sees may contain a resolved value
    const shown = JSON.stringify([out.issues, out.warnings]);
    expect(shown).not.toContain(VALUE);
    return out;
  };

  beforeEach(() => {
    dir = tempDir('weir-resolve-');
    r = new Redactor();
  });
  afterEach(() => {
    for (const name of env.splice(0)) delete process.env[name];
    rmSync(dir, { recursive: true, force: true });
  });

  it('resolves ${env:NAME} anywhere and registers the value with the redactor', () => {
    setEnv('WEIR_T_PW', VALUE);
    const out = resolve({ sink: { password: '${env:WEIR_T_PW}', url: 'postgres://u:${env:WEIR_T_PW}@h/db' }, list: ['${env:WEIR_T_PW}'] });
    expect(out.issues).toEqual([]);
    expect(out.data).toEqual({ sink: { password: VALUE, url: `postgres://u:${VALUE}@h/db` }, list: [VALUE] });
    expect(r.scrub(`x ${VALUE} y`)).toBe(`x ${REDACTED} y`);
  });

  it('reports a missing variable by the reference, with its path', () => {
    const out = resolve({ sink: { password: '${env:WEIR_T_MISSING}' } });
    expect(out.issues).toEqual([{ path: 'sink.password', message: expect.stringContaining('${env:WEIR_T_MISSING}') }]);
    expect(out.issues[0]?.message).toContain('is not set');
  });

  it('${env:NAME:-default} takes the default when NAME is unset or empty, the variable otherwise', () => {
    setEnv('WEIR_T_EMPTY', '');
    setEnv('WEIR_T_SET', VALUE);
    const out = resolve({
      host: '${env:WEIR_T_UNSET_HOST:-localhost}',
      port: '${env:WEIR_T_EMPTY:-5432}',
      password: '${env:WEIR_T_SET:-fallback}',
      url: 'http://${env:WEIR_T_UNSET_HOST:-h}:${env:WEIR_T_UNSET_PORT:-80}/x',
      none: '${env:WEIR_T_UNSET_X:-}',
    });
    expect(out.issues).toEqual([]);
    expect(out.data).toEqual({ host: 'localhost', port: '5432', password: VALUE, url: 'http://h:80/x', none: '' });
    // the variable's value is a secret; a default is written in the file and is not
    expect(r.scrub(`x ${VALUE} y`)).toBe(`x ${REDACTED} y`);
    expect(r.scrub('localhost 5432')).toBe('localhost 5432');
  });

  it('refuses an invalid variable name', () => {
    const out = resolve({ a: '${env:NOT-VALID}' });
    expect(out.issues[0]?.message).toContain('not a valid environment variable name');
  });

  it('reads a whole file, trimmed, and keys of JSON and dotenv files', () => {
    secretFile('pw.txt', `  ${VALUE}\n\n`);
    secretFile('creds.json', JSON.stringify({ db: { password: VALUE }, token: 'tok-xyz' }));
    secretFile('app.env', `# comment\nexport API_KEY="${VALUE}"\nPLAIN=plain-value # trailing comment\nSINGLE='a # b'\n`);
    const out = resolve({
      a: '${file:pw.txt}',
      b: '${file:creds.json#token}',
      c: '${file:creds.json#db.password}',
      d: '${file:app.env#API_KEY}',
      e: '${file:app.env#PLAIN}',
      f: `\${file:${join(dir, 'app.env')}#SINGLE}`,
    });
    expect(out.issues).toEqual([]);
    expect(out.data).toEqual({ a: VALUE, b: 'tok-xyz', c: VALUE, d: VALUE, e: 'plain-value', f: 'a # b' });
    expect(out.warnings).toEqual([]);
  });

  it('reports a missing file and a missing key by the reference', () => {
    secretFile('creds.json', JSON.stringify({ password: VALUE }));
    const out = resolve({ a: '${file:nope.txt}', b: '${file:creds.json#pasword}' });
    expect(out.issues).toHaveLength(2);
    expect(out.issues[0]).toEqual({ path: 'a', message: expect.stringContaining('${file:nope.txt}') });
    expect(out.issues[0]?.message).toContain('does not exist');
    expect(out.issues[1]?.message).toContain('${file:creds.json#pasword}');
    expect(out.issues[1]?.message).toContain('did you mean "password"');
  });

  it('never quotes the content of a file that does not parse', () => {
    secretFile('bad.json', `{"password": "${VALUE}",,}`);
    const out = resolve({ a: '${file:bad.json#password}' });
    expect(out.issues[0]?.message).toContain('does not parse');
  });

  it('refuses files that are not regular files', () => {
    const out = resolve({ a: '${file:/dev/zero}' });
    expect(out.issues[0]?.message).toContain('not a regular file');
  });

  it('warns, like ssh, when a secret file is readable by group or others', () => {
    secretFile('open.txt', VALUE, 0o644);
    const out = resolve({ a: '${file:open.txt}', b: '${file:open.txt}' });
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toMatch(/readable by group or others \(mode 644\); run chmod 600/);
  });

  it('writes a literal ${ for $${ and refuses anything else that looks like a reference', () => {
    const out = resolve({ a: 'cost: $${PRICE}', b: 'x ${PGPASSWORD} y', c: 'x ${ unfinished', d: '${ENV:HOME}', e: '${weird thing}' });
    expect((out.data as Record<string, string>).a).toBe('cost: ${PRICE}');
    const byPath = Object.fromEntries(out.issues.map((i) => [i.path, i.message]));
    expect(byPath.b).toContain('write ${env:PGPASSWORD}');
    expect(byPath.c).toContain('never closed');
    expect(byPath.d).toContain('did you mean "env"');
    expect(byPath.e).toContain('not a reference');
  });

  it('resolves named scopes: file, dir and env providers', () => {
    secretFile('vault.json', JSON.stringify({ db_password: VALUE }));
    mkdirSync(join(dir, 'run-secrets'), { mode: 0o700 });
    secretFile('run-secrets/api_token', `${VALUE}-dir\n`);
    setEnv('APP_TOKEN', `${VALUE}-env`);
    setEnv('WEIR_T_VAULT', join(dir, 'vault.json'));
    const out = resolve({
      secrets: {
        vault: { provider: 'file', path: '${env:WEIR_T_VAULT}' },
        k8s: { provider: 'dir', path: 'run-secrets' },
        app: { provider: 'env', prefix: 'APP_' },
      },
      sink: { a: '${secret:vault/db_password}', b: '${secret:k8s/api_token}', c: '${secret:app/TOKEN}' },
    });
    expect(out.issues).toEqual([]);
    expect((out.data as { sink: unknown }).sink).toEqual({ a: VALUE, b: `${VALUE}-dir`, c: `${VALUE}-env` });
  });

  it('reports unknown scopes and keys, bad providers and path traversal by name', () => {
    secretFile('vault.json', JSON.stringify({ db_password: VALUE }));
    mkdirSync(join(dir, 'd'));
    const out = resolve({
      secrets: {
        vault: { provider: 'file', path: 'vault.json' },
        d: { provider: 'dir', path: 'd' },
        bad: { provider: 'vualt' },
        self: { provider: 'file', path: '${secret:vault/x}' },
      },
      sink: { a: '${secret:valt/db_password}', b: '${secret:vault/nope}', c: '${secret:d/../vault.json}', e: '${secret:novalue}' },
    });
    const byPath = Object.fromEntries(out.issues.map((i) => [i.path, i.message]));
    expect(byPath['sink.a']).toContain('did you mean "vault"');
    expect(byPath['sink.b']).toContain('scope "vault" has no key "nope"');
    expect(byPath['sink.c']).toContain('not a plain file name');
    expect(byPath['sink.e']).toContain('must name a scope and a key');
    expect(byPath['secrets.bad.provider']).toContain('must be one of env, file, dir');
    expect(byPath['secrets.self.path']).toContain('cannot be used here');
  });

  it('a name that is an Object.prototype property resolves to nothing of Object.prototype', () => {
    for (const name of ['toString', 'constructor', 'hasOwnProperty', '__proto__', 'valueOf']) {
      const out = resolve({ sink: { password: `\${env:${name}}` } });
      expect(out.issues.map((i) => i.message).join('\n')).toMatch(/is not set/);
      expect(JSON.stringify(out.data)).not.toMatch(/native code|function/);
    }
    secretFile('keys.json', JSON.stringify({ password: 'p' }));
    secretFile('keys.env', 'password=p\n');
    for (const file of ['keys.json', 'keys.env'])
      for (const key of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
        const out = resolve({ sink: { password: `\${file:${file}#${key}}` } });
        expect(out.issues.map((i) => i.message).join('\n')).toMatch(/has no key/);
        expect(JSON.stringify(out.data)).not.toMatch(/native code|function/);
      }
    secretFile('proto.json', '{"__proto__": "from-json", "constructor": {"name": "n"}}');
    const out = resolve({ a: '${file:proto.json#__proto__}', b: '${file:proto.json#constructor.name}' });
    expect(out.issues).toEqual([]);
    expect(out.data).toEqual({ a: 'from-json', b: 'n' });
  });

  it('keeps a key named __proto__ in the pipeline data as a key (validation then reports it)', () => {
    const data = JSON.parse('{"sink": {"__proto__": {"table": "evil"}, "path": "x"}}');
    const out = resolve(data);
    const sink = (out.data as { sink: Record<string, unknown> }).sink;
    expect(Object.keys(sink)).toEqual(['__proto__', 'path']);
    expect(sink.table).toBeUndefined();
  });

  it('warns when a credential resolves to a value too short to be redacted by value', () => {
    setEnv('WEIR_T_SHORT', 'ab');
    const out = resolve({ sink: { password: '${env:WEIR_T_SHORT}', batch: '${env:WEIR_T_SHORT}' } });
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toContain('${env:WEIR_T_SHORT} (sink.password) is shorter than 8 characters');
  });

  it('warns when a credential is shorter than SHORT_SECRET_LENGTH: scrubbed only as a whole word', () => {
    setEnv('WEIR_T_WEAK', 'test');
    const out = resolve({ sink: { password: '${env:WEIR_T_WEAK}' } });
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toContain('is shorter than 8 characters: weir scrubs it only as a whole word');
  });
});
