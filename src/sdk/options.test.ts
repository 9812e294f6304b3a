import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { redactor } from '../secrets/redactor.js';
import { displayValue, IDENTIFIER, isValidHost, type Opt, o, validateOptions } from './options.js';

/** Parses one value with an option, as validation does; returns the value or the message. */
function parse<T>(opt: Opt<T, boolean>, value: unknown): { ok: true; value: T } | { ok: false; message: string } {
  const r = validateOptions({ x: opt }, { x: value }, 'sink');
  if (r.issues.length === 0) return { ok: true, value: (r.value as { x: T }).x };
  return { ok: false, message: r.issues.map((i) => `${i.path}: ${i.message}`).join('\n') };
}

const accepted = <T>(opt: Opt<T, boolean>, value: unknown) => parse(opt, value).ok;

/** Strings an attacker would try in a host, identifier or URL option. */
const INJECTIONS = [
  'users; DROP TABLE x',
  'a"b',
  "x' OR '1'='1",
  "'; DROP TABLE users; --",
  'x`; DROP TABLE y; --',
  'a]b',
  'name\u0000',
  'name\n',
  'name\r\nHost: evil.example',
  '$(id)',
  '`id`',
  '${jndi:ldap://evil/a}',
  '../../etc/passwd',
  'host;rm -rf /',
  'host|nc evil 1',
  'host&&id',
  'a b',
  '<script>alert(1)</script>',
  '%00',
  '\u202e',
  '',
  ' ',
];

const hostOpt = o.host();
const portOpt = o.port();
const identOpt = o.identifier();
const urlOpt = o.url({ schemes: ['http', 'https'] });
const durationOpt = o.duration();
const bytesOpt = o.bytes();

describe('o.host()', () => {
  it('accepts IPv4, IPv6 and RFC 1123 names', () => {
    fc.assert(fc.property(fc.ipV4(), (ip) => accepted(hostOpt, ip)));
    fc.assert(fc.property(fc.ipV6(), (ip) => accepted(hostOpt, ip)));
    fc.assert(fc.property(fc.domain(), (name) => parse(hostOpt, name).ok || /\.\d+$/.test(name)));
    for (const h of ['localhost', 'db-1.internal', 'DB.Example.COM', '[::1]', 'example.com.', 'xn--bcher-kva.example'])
      expect(accepted(hostOpt, h), h).toBe(true);
  });

  it('strips the brackets of an IPv6 literal', () => {
    expect(parse(hostOpt, '[::1]')).toEqual({ ok: true, value: '::1' });
  });

  it.each([
    ...INJECTIONS,
    'db:5432',
    'http://db',
    'db/path',
    '-db',
    'db-',
    'a..b',
    '999.1.1.1',
    '1.2.3',
    '123',
    'a_b.example',
    'bücher.example',
    'x'.repeat(64),
    `${'a.'.repeat(127)}ab`,
  ])('refuses %j', (h) => {
    expect(accepted(hostOpt, h)).toBe(false);
  });

  it('accepts a random string only if it is an IP address or a plain host name', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40, unit: 'binary' }), (s) => {
        const r = parse(hostOpt, s);
        if (!r.ok) return true;
        return isIP(r.value) !== 0 || /^[A-Za-z0-9.-]+$/.test(r.value);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9.;'"` $|&-]{1,20}$/), (s) => {
        const r = parse(hostOpt, s);
        return !r.ok || (isValidHost(s) && !/[;'"` $|&]/.test(s));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('o.port()', () => {
  it('accepts 1-65535 as numbers and strings (resolved references are strings)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 65535 }),
        (n) => parse(portOpt, n).ok && (parse(portOpt, String(n)) as { value: number }).value === n,
      ),
    );
  });

  it('refuses everything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 65536 })),
        (n) => !accepted(portOpt, n) && !accepted(portOpt, String(n)),
      ),
    );
    for (const p of [
      ...INJECTIONS,
      5432.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      '5432abc',
      '0x10',
      '1e3',
      true,
      null,
      [5432],
      { port: 1 },
    ]) {
      if (p === null) continue; // absent: the default applies
      expect(accepted(portOpt, p), String(p)).toBe(false);
    }
    fc.assert(
      fc.property(fc.string({ maxLength: 10 }), (s) => {
        const r = parse(portOpt, s);
        return !r.ok || (Number.isInteger(r.value) && r.value >= 1 && r.value <= 65535);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('o.identifier()', () => {
  it('accepts plain identifiers', () => {
    fc.assert(fc.property(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/), (s) => accepted(identOpt, s)));
  });

  it.each([...INJECTIONS, '1abc', 'a-b', 'a.b', 'schema.table', 'é', 'x'.repeat(64)])('refuses %j', (s) => {
    const r = parse(identOpt, s);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain('must be a plain SQL identifier');
  });

  it('accepts a random string only if it matches the identifier rule', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70, unit: 'binary' }), (s) => {
        const r = parse(identOpt, s);
        return r.ok === IDENTIFIER.test(s);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('o.url()', () => {
  it('accepts web URLs', () => {
    fc.assert(fc.property(fc.webUrl({ withQueryParameters: true, withFragments: true }), (u) => accepted(urlOpt, u)));
  });

  it.each([
    ...INJECTIONS,
    'javascript:alert(1)',
    'file:///etc/passwd',
    'gopher://evil:70/x',
    'data:text/html,<b>x</b>',
    'http://exa mple.com/',
    ' http://example.com',
    'http://example.com/\r\nX-Injected: 1',
    'http://example.com/\tx',
    '//example.com/x',
    'example.com',
    'http://',
  ])('refuses %j', (u) => {
    expect(accepted(urlOpt, u)).toBe(false);
  });

  it('accepts a random string only if it parses, uses an allowed scheme and has no whitespace or control characters', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 40, unit: 'binary' }),
          fc.string({ maxLength: 30 }).map((s) => `http://${s}`),
        ),
        (s) => {
          const r = parse(urlOpt, s);
          if (!r.ok) return true;
          const u = new URL(r.value);
          return ['http:', 'https:'].includes(u.protocol) && !/[\s\u0000-\u001f\u007f]/.test(r.value);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('o.duration() and o.bytes()', () => {
  const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  it('parses a number with a unit, and bare numbers as milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(...Object.keys(UNITS)), (n, unit) => {
        const r = parse(durationOpt, `${n}${unit}`);
        return r.ok && r.value === n * (UNITS[unit] as number);
      }),
    );
    expect(parse(durationOpt, '250')).toEqual({ ok: true, value: 250 });
    expect(parse(durationOpt, 250)).toEqual({ ok: true, value: 250 });
  });

  it('refuses garbage, negative, infinite and out-of-range durations', () => {
    for (const d of [...INJECTIONS, '-1s', '1 week', '1e999d', `${'9'.repeat(400)}d`, Number.POSITIVE_INFINITY, -5, '10 s; DROP']) {
      expect(accepted(durationOpt, d), String(d)).toBe(false);
    }
    expect(parse(o.duration({ max: 60_000 }), '2m')).toEqual({ ok: false, message: 'sink.x: must be a duration at most 1m; got "2m"' });
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (s) => {
        const r = parse(durationOpt, s);
        return !r.ok || (Number.isFinite(r.value) && r.value >= 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('parses sizes, and refuses garbage and sizes beyond a safe integer', () => {
    expect(parse(bytesOpt, '16MB')).toEqual({ ok: true, value: 16 * 1024 * 1024 });
    expect(parse(bytesOpt, '1024')).toEqual({ ok: true, value: 1024 });
    for (const b of [...INJECTIONS, '-1MB', '1.5.5MB', '99999999999999TB', 1.5, -1]) expect(accepted(bytesOpt, b), String(b)).toBe(false);
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (s) => {
        const r = parse(bytesOpt, s);
        return !r.ok || (Number.isSafeInteger(r.value) && r.value >= 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('int and number options stay within their ranges', () => {
    const intOpt = o.int({ min: 1, max: 100 });
    const numOpt = o.number({ min: 0, max: 1 });
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 8 })), (v) => {
        const a = parse(intOpt, v);
        const b = parse(numOpt, v);
        return (!a.ok || (Number.isInteger(a.value) && a.value >= 1 && a.value <= 100)) && (!b.ok || (b.value >= 0 && b.value <= 1));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('validation messages', () => {
  const spec = {
    host: o.host().describe('Server.'),
    port: o.port().describe('Port.').default(5432),
    mode: o.enum(['append', 'replace'] as const).describe('Mode.'),
    table: o.identifier().describe('Table.').required(),
    password: o.secret().describe('Password.'),
    headers: o
      .map(o.string({ minLength: 8 }))
      .secret()
      .describe('Headers.'),
    auth: o
      .object({ token: o.string({ pattern: /^tk-/ }).describe('Token.'), user: o.string().describe('User.') })
      .secret()
      .describe('Auth.'),
  };

  it('name the path, the bad value and what is allowed, with did-you-mean hints, all at once', () => {
    const r = validateOptions(spec, { host: 'db:5432', port: '99999', mode: 'apend', tabel: 'x', tables: 'y' }, 'sink');
    const byPath = Object.fromEntries(r.issues.map((i) => [i.path, i.message]));
    expect(byPath['sink.host']).toMatch(/^must be an IPv4 address, an IPv6 address or a host name .*; got "db:5432"$/);
    expect(byPath['sink.port']).toBe('must be a whole number between 1 and 65535; got "99999"');
    expect(byPath['sink.mode']).toBe('must be one of "append", "replace" (did you mean "append"?); got "apend"');
    expect(byPath['sink.tabel']).toBe('unknown option (did you mean "table"?)');
    expect(byPath['sink.table']).toBe('is required (Table)');
    expect(r.issues).toHaveLength(6);
  });

  it('never echo the value of a secret option, nor the items of a secret map or object', () => {
    const r = validateOptions(
      spec,
      {
        table: 't',
        password: { nested: 'pw-VALUE-1' },
        headers: { Authorization: 'hd-VALUE-2', X: 7 },
        auth: { token: 'tok-VALUE-3', user: ['us-VALUE-4'] },
      },
      'sink',
    );
    const text = JSON.stringify(r.issues);
    expect(r.issues.length).toBeGreaterThanOrEqual(4);
    expect(text).not.toMatch(/VALUE/);
    expect(text).toContain('sink.headers.X');
    expect(text).toContain('sink.auth.token');
  });

  it('mask a value that holds a registered secret (one that came from a reference), even inside a long value', () => {
    const secret = `opt-canary-${Date.now().toString(36)}`;
    redactor.addValue(secret);
    for (const value of [`${secret}_x`, `db.${secret}.example:5432`, `${'h'.repeat(70)}_${secret}`]) {
      const r = parse(hostOpt, value);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.message).not.toContain(secret);
        expect(r.message).not.toContain(secret.slice(0, 10));
      }
    }
  });

  it('mask URL passwords and shorten long values', () => {
    expect(displayValue('postgres://u:hunter22@h/db')).toBe('"postgres://u:***REDACTED***@h/db"');
    expect(displayValue('x'.repeat(200))).toHaveLength(80);
    expect(displayValue('anything', { secret: true } as never)).toBe('(secret value hidden)');
  });
});

describe('secret numbers', () => {
  it('an out-of-range secret number is not echoed either', () => {
    const r = parse(o.int({ min: 1, max: 10 }).secret(), 987654);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).not.toContain('987654');
  });
});

describe('names that are Object.prototype properties', () => {
  const spec = { path: o.path().describe('p'), columns: o.map(o.string()).describe('c') };
  for (const key of ['toString', 'constructor', 'hasOwnProperty', 'valueOf', '__proto__']) {
    it(`an option key ${key} is unknown, not a match with Object.prototype`, () => {
      const input = JSON.parse(`{"path": "x", ${JSON.stringify(key)}: "y"}`);
      const r = validateOptions(spec, input, 'source');
      expect(r.issues.map((i) => i.path)).toEqual([`source.${key}`]);
      expect(r.issues[0]?.message).toMatch(/unknown option/);
    });

    it(`a map keeps an entry named ${key}, and has no other`, () => {
      const input = JSON.parse(`{"columns": {${JSON.stringify(key)}: "integer"}}`);
      const r = validateOptions(spec, input, 'source');
      expect(r.issues).toEqual([]);
      const columns = (r.value as { columns: Record<string, string> }).columns;
      expect(Object.keys(columns)).toEqual([key]);
      expect(columns[key]).toBe('integer');
      const other = key === 'toString' ? 'valueOf' : 'toString';
      expect(columns[other]).toBeUndefined();
    });
  }
});
