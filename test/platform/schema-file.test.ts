import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { currentSDL, SCHEMA_FILE } from '../../src/cli/print-schema.js';

describe('schema.graphql', () => {
  it('is up to date (run `npm run schema:print` and commit it)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(currentSDL());
  });
});
