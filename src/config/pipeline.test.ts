import { describe, expect, it } from 'vitest';
import { pipelineStateId } from './pipeline.js';

describe('pipelineStateId', () => {
  it('is the name as written when it holds no reference', () => {
    expect(pipelineStateId('events-to-pg', 'events-to-pg')).toBe('events-to-pg');
  });

  it('never holds a resolved reference: what was written plus a hash, one per value', () => {
    const a = pipelineStateId('${env:TEAM}-load', 'wcan-secret-team-load');
    expect(a).toMatch(/^\$\{env:TEAM\}-load@[0-9a-f]{16}$/);
    expect(a).not.toContain('wcan-secret');
    expect(pipelineStateId('${env:TEAM}-load', 'wcan-secret-team-load')).toBe(a);
    expect(pipelineStateId('${env:TEAM}-load', 'other-load')).not.toBe(a);
  });
});
