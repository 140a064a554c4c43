import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/platform/logger.js';

describe('config', () => {
  it('defaults to the embedded column when nothing is set', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 4000, nodeEnv: 'development', databaseUrl: undefined, redisUrl: undefined, features: 'all' });
    expect(c.kms.keyId).toBeUndefined();
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['NODE_ENV', 'staging'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'not a url'],
    ['PUBLIC_ORIGINS', 'app.example.com'],
    ['KMS_ENDPOINT', 'ftp://kms'],
    ['AWS_REGION', 'mars'],
  ])('a malformed %s=%s names the variable', (name, value) => {
    try {
      loadConfig({ [name]: value });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).variable).toBe(name);
      expect((e as Error).message).toMatch(new RegExp(`^Invalid configuration: ${name} `));
      expect((e as Error).message).not.toContain('\n');
    }
  });

  it('production refuses the local key provider and the embedded database', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/x' })).toThrow(/KMS_KEY_ID/);
    expect(() => loadConfig({ NODE_ENV: 'production', KMS_KEY_ID: 'alias/x' })).toThrow(/DATABASE_URL/);
    expect(loadConfig({ NODE_ENV: 'production', KMS_KEY_ID: 'alias/x', DATABASE_URL: 'postgres://db/x' }).isProduction).toBe(true);
  });

  it('the server stops the boot with one line naming the variable', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { ...process.env, PORT: 'not-a-port', NODE_OPTIONS: '' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('npm warn'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^carebase: Invalid configuration: PORT /);
  });
});

describe('logger', () => {
  it('redacts PHI, secrets and tokens wherever they appear', () => {
    const out: string[] = [];
    const sink = new Writable({
      write(c, _e, cb) {
        out.push(String(c));
        cb();
      },
    });
    const log = createLogger('info', sink);
    log.info(
      {
        ssn: '123-45-6789',
        input: { password: 'hunter2hunter2', dateOfBirth: '1980-01-02', nested: { email: 'a@b.c' } },
        req: { headers: { authorization: 'Bearer abc.def.ghi', cookie: 'rt=secret' } },
        token: 'tok_123',
        patientId: 'keep-me',
      },
      'x',
    );
    const text = out.join('');
    for (const leaked of ['123-45-6789', 'hunter2hunter2', '1980-01-02', 'a@b.c', 'abc.def.ghi', 'rt=secret', 'tok_123']) {
      expect(text).not.toContain(leaked);
    }
    expect(text).toContain('keep-me');
  });
});
