import { describe, expect, it } from 'vitest';
import { ConfigError } from '../sdk/errors.js';
import { excerpt, parsePipelineText, withLines } from './load.js';

function yamlError(text: string): ConfigError {
  try {
    parsePipelineText(text, 'p.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  return expect.unreachable('the text parsed');
}

describe('YAML syntax errors', () => {
  it('name the line and column, and show the line with a caret under the column', () => {
    const e = yamlError('pipeline: a\nsource: { type: generator\nsink: { type: sqlite }\n');
    expect(e.message).toMatch(/^p\.yaml is not valid YAML:\n {2}- line \d+:\d+: /);
    const issue = e.issues[0];
    const [, line, col] = /^line (\d+):(\d+): /.exec(issue?.message ?? '') ?? [];
    expect(issue?.excerpt).toBe(
      excerpt('pipeline: a\nsource: { type: generator\nsink: { type: sqlite }\n', { line: Number(line), col: Number(col) }),
    );
    expect(e.message).toContain(`      ${line} | `);
    expect(e.message).toContain('^');
  });

  it('point at a duplicate key', () => {
    const e = yamlError('pipeline: a\nsource: { type: generator }\npipeline: b\n');
    expect(e.issues[0]?.message).toBe('line 3:1: Map keys must be unique');
    expect(e.issues[0]?.excerpt).toBe('3 | pipeline: b\n  | ^');
  });

  it('point at an unclosed quote', () => {
    const e = yamlError('pipeline: a\nsink: { type: "sqlite }\n');
    expect(e.issues[0]?.message).toBe('line 2:24: Missing closing "quote');
    expect(e.issues[0]?.excerpt).toBe(`2 | sink: { type: "sqlite }\n  | ${' '.repeat(23)}^`);
  });
});

describe('excerpt', () => {
  it('puts the caret under the column, keeping tabs so it stays aligned', () => {
    expect(excerpt('a: 1\n\tb: 2\n', { line: 2, col: 2 })).toBe('2 | \tb: 2\n  | \t^');
    expect(excerpt('x\r\ny: [1\r\n', { line: 2, col: 4 })).toBe('2 | y: [1\n  |    ^');
  });

  it('widens the gutter for long line numbers and caps the column at the end of the line', () => {
    const text = `${'a: 1\n'.repeat(11)}b: c`;
    expect(excerpt(text, { line: 12, col: 99 })).toBe('12 | b: c\n   |     ^');
  });

  it('shows a window of a long line around the column', () => {
    const line = `k: ${'x'.repeat(300)}!${'y'.repeat(300)}`;
    const [shown, caret] = excerpt(line, { line: 1, col: 304 }).split('\n') as [string, string];
    expect(shown.length).toBeLessThan(120);
    expect(shown).toMatch(/^1 \| …x+!y+…$/);
    expect(shown[caret.indexOf('^')]).toBe('!');
  });
});

describe('secret values in excerpts', () => {
  it('are masked from a credential key to the end of the line, whatever the value looks like', () => {
    const e = yamlError('pipeline: a\nsink: { type: postgres, password: "hunter2XYZ }\n');
    expect(e.message).not.toContain('hunter2XYZ');
    expect(e.issues[0]?.excerpt?.split('\n')[0]).toBe('2 | sink: { type: postgres, password: ***REDACTED***');
    const list = excerpt('sink:\n  api_key: [hunter2XYZ, x]\n', { line: 2, col: 3 });
    expect(list).toBe('2 |   api_key: ***REDACTED***\n  |   ^');
  });

  it('are masked on a line that continues the value of a secret key', () => {
    const text = 'sink:\n  password: >\n    hunter2XYZ: oops\n  table: t\n';
    expect(excerpt(text, { line: 3, col: 5 })).toBe('3 |     ***REDACTED***\n  |     ^');
    expect(excerpt(text, { line: 4, col: 3 })).toBe('4 |   table: t\n  |   ^');
  });

  it("are masked under keys the caller names secret (a connector's secret options)", () => {
    const text = 'sink:\n  sasl_words: [hunter2XYZ]\n';
    expect(excerpt(text, { line: 2, col: 3 })).toContain('hunter2XYZ');
    expect(excerpt(text, { line: 2, col: 3 }, (k) => k === 'sasl_words')).toBe('2 |   sasl_words: ***REDACTED***\n  |   ^');
  });
});

describe('validation issues', () => {
  it('are located with the same rendering: (line L:C) after the path, and the excerpt', () => {
    const file = parsePipelineText('pipeline: a\nsink:\n  type: sqlite\n  tabel: t\n', 'p.yaml');
    const [issue] = withLines([{ path: 'sink.tabel', message: 'unknown option' }], file);
    expect(issue).toEqual({ path: 'sink.tabel (line 4:3)', message: 'unknown option', excerpt: '4 |   tabel: t\n  |   ^' });
    expect(new ConfigError([issue as never], 'p.yaml has 1 problem(s)').message).toBe(
      'p.yaml has 1 problem(s):\n  - sink.tabel (line 4:3): unknown option\n      4 |   tabel: t\n        |   ^',
    );
  });
});

describe('YAML errors on a line of a secret value', () => {
  const SECRET = 'wcanYamlS3cret0123456789';
  const issuesOf = (text: string) => {
    try {
      parsePipelineText(text);
    } catch (error) {
      return JSON.stringify((error as ConfigError).issues);
    }
    throw new Error('expected a ConfigError');
  };

  it.each([
    ['block tag', `sink:\n  type: x\n  password: !<${SECRET}>\n`],
    ['block local tag', `sink:\n  type: x\n  api_key: !${SECRET}\n`],
    ['flow tag', `sink: { type: x, token: !${SECRET} }\n`],
    ['alias', `sink:\n  type: x\n  password: *${SECRET}\n`],
    ['flow alias', `sink: { type: x, client_secret: *${SECRET} }\n`],
    ['continued value', `sink:\n  type: x\n  password:\n    !<${SECRET}>\n`],
  ])('%s: the message and the line hide the value', (_name, text) => {
    const issues = issuesOf(text);
    expect(issues).toMatch(/Unresolved (tag|alias)/);
    expect(issues).not.toContain(SECRET.slice(0, 8));
    expect(issues).toContain('***REDACTED***');
  });

  it('a tag on the line of an ordinary key is still shown', () => {
    expect(issuesOf(`sink:\n  type: !custom x\n`)).toContain('!custom');
    expect(issuesOf(`sink:\n  type: *nowhere\n`)).toContain('nowhere');
  });

  it('a secret key the spec declares (isSecretKey) is not known yet at parse time: credential names are', () => {
    expect(issuesOf(`sink:\n  webhook_token: !<${SECRET}>\n`)).not.toContain(SECRET.slice(0, 8));
  });
});
