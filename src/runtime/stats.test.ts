import { describe, expect, it } from 'vitest';
import { redactor } from '../secrets/redactor.js';
import { PartitionStats } from './stats.js';

describe('PartitionStats error samples', () => {
  it('are scrubbed before they are cut to 300 characters (a cut would leave part of a secret)', () => {
    const secret = `stats-canary-${Math.random().toString(36).slice(2)}-secret`;
    redactor.addValue(secret);
    const stats = new PartitionStats('0', 1);
    for (const lead of [296, 290, 280]) stats.recordError(new Error(`${'x'.repeat(lead)}${secret} and the rest`));
    const samples = Object.values(stats.snapshot().errors).flatMap((e) => e.samples);
    expect(samples).toHaveLength(3);
    for (const s of samples) {
      expect(s.length).toBeLessThanOrEqual(300);
      expect(s).not.toContain(secret.slice(0, 4));
    }
  });
});
