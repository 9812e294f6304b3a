import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigError } from '../sdk/errors.js';
import { applyOverrides, parseOverride } from './overrides.js';

const file = `# the pipeline
pipeline: p
source: { type: generator, rows: 10 } # ten rows
sink:
  type: jsonl
  path: out.jsonl
alerts:
  - { name: A, when: error_rate > 0.1 }
`;

const issue = (f: () => unknown) => {
  try {
    f();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    throw error;
  }
  throw new Error('no error');
};

describe('--set PATH=VALUE', () => {
  it('reads VALUE as YAML: numbers, booleans, strings, lists, references', () => {
    expect(parseOverride('sink.batch_size=10000')).toMatchObject({ path: ['sink', 'batch_size'], value: 10000 });
    expect(parseOverride('sink.create_table=false').value).toBe(false);
    expect(parseOverride("sink.table='10'").value).toBe('10');
    expect(parseOverride('sink.key_columns=[id, region]').value).toEqual(['id', 'region']);
    expect(parseOverride('sink.password=${env:PGPASSWORD}').value).toBe('${env:PGPASSWORD}');
    expect(parseOverride('alerts.0.for=5m').path).toEqual(['alerts', 0, 'for']);
    expect(parseOverride('source.query=a = b').value).toBe('a = b'); // only the first "=" splits
  });

  it('changes the text, keeps its comments, creates missing sections', () => {
    const text = applyOverrides(file, [
      parseOverride('source.rows=5'),
      parseOverride('sink.batch_size=100'),
      parseOverride('alerts.0.for=5m'),
      parseOverride('retry.max_attempts=2'),
    ]);
    expect(text).toContain('# the pipeline');
    expect(parse(text)).toMatchObject({
      source: { type: 'generator', rows: 5 },
      sink: { type: 'jsonl', path: 'out.jsonl', batch_size: 100 },
      alerts: [{ name: 'A', for: '5m' }],
      retry: { max_attempts: 2 },
    });
  });

  it('says what is wrong and how to write it', () => {
    expect(issue(() => parseOverride('batch_size'))).toMatch(/--set: "batch_size" has no PATH before "="; write --set PATH=VALUE/);
    expect(issue(() => parseOverride('sink..x=1'))).toMatch(/empty segment/);
    expect(issue(() => parseOverride('sink.x=[1,'))).toMatch(/VALUE that is not valid YAML/);
    expect(issue(() => applyOverrides(file, [parseOverride('source.type.x=1')]))).toMatch(/source.type is a value, not a section/);
  });
});
