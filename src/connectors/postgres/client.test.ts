import { describe, expect, it } from 'vitest';
import { pgError } from './client.js';

describe('pgError', () => {
  it('keeps the server’s reason readable with a one-letter password (the redactor scrubs secrets, as whole tokens when short)', () => {
    const opts = { password: 'x', user: 'x' } as unknown as Parameters<typeof pgError>[2];
    const error = pgError(Object.assign(new Error('role "loader" does not exist'), { code: '28000' }), 'connecting', opts);
    expect(error.message).toContain('role "loader" does not exist');
  });
});
