import { afterAll, describe, expect, it } from 'vitest';
import { graphql } from 'graphql';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createApp } from '../../src/app.js';
import { modules as realModules } from '../../src/modules/index.js';
import { buildSchema, resolveModules, type ModuleManifest } from '../../src/schema/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/db.js';

const mod = (name: string, phase: number, dependsOn: string[] = [], extra: Partial<ModuleManifest> = {}): ModuleManifest => ({
  name,
  phase,
  dependsOn,
  description: name,
  schema: (b) => {
    b.queryField(`${name}Ping`, (t) => t.string({ authScopes: { public: true }, resolve: () => name }));
  },
  jobs: { [`${name}.job`]: async () => undefined },
  ...extra,
});
const alpha = mod('alpha', 0);
const beta = mod('beta', 1, ['alpha']);
const gamma = mod('gamma', 2, ['beta']);
const known = [alpha, beta, gamma];

describe('FEATURES', () => {
  it('all, phase:N and comma lists', () => {
    expect(resolveModules('all', known).map((m) => m.name)).toEqual(['alpha', 'beta', 'gamma']);
    expect(resolveModules('phase:0', known).map((m) => m.name)).toEqual(['alpha']);
    expect(resolveModules('phase:1', known).map((m) => m.name)).toEqual(['alpha', 'beta']);
    expect(resolveModules('alpha,beta', known).map((m) => m.name)).toEqual(['alpha', 'beta']);
    expect(resolveModules('', known)).toEqual([]);
  });

  it('a module without its dependency is a boot error naming FEATURES', () => {
    expect(() => resolveModules('alpha,gamma', known)).toThrow(ConfigError);
    expect(() => resolveModules('alpha,gamma', known)).toThrow(/FEATURES enables module "gamma" without its dependency "beta"/);
  });

  it('an unknown module or a malformed value is a boot error', () => {
    expect(() => resolveModules('alpha,nope', known)).toThrow(/FEATURES names an unknown module "nope"/);
    expect(() => resolveModules('phase:x', known)).toThrow(ConfigError);
  });

  it('a disabled module contributes no GraphQL field', async () => {
    const schema = buildSchema(resolveModules('phase:0', known));
    expect(schema.getQueryType()!.getFields().alphaPing).toBeDefined();
    expect(schema.getQueryType()!.getFields().betaPing).toBeUndefined();
    const res = await graphql({ schema, source: '{ betaPing }', contextValue: {} });
    expect(res.errors?.[0]?.message).toMatch(/Cannot query field "betaPing"/);
  });

  it('every real module lists only real, earlier dependencies', () => {
    const names: string[] = [];
    for (const m of realModules) {
      for (const d of m.dependsOn) expect(names, `${m.name} depends on ${d}`).toContain(d);
      names.push(m.name);
    }
    expect(resolveModules('all', realModules)).toHaveLength(realModules.length);
  });
});

describe('an app with FEATURES=phase:0', () => {
  let t: TestApp;
  afterAll(async () => {
    await t?.close();
  });

  it('serves only enabled modules, lists them in serverInfo and in the boot log', async () => {
    t = await startTestApp({ modules: known, env: { FEATURES: 'phase:0' } });
    const res = await t.gql<{ serverInfo: { enabledModules: string[]; phase: number } }>('{ serverInfo { enabledModules phase } alphaPing }');
    expect(res.body.data?.serverInfo).toEqual({ enabledModules: ['alpha'], phase: 0 });
    const denied = await t.gql('{ betaPing }');
    expect(denied.status).toBe(400);
    const boot = t.logs.find((l) => l.msg === 'modules enabled');
    expect(boot?.modules).toEqual(['alpha']);
    expect(t.app.modules.flatMap((m) => Object.keys(m.jobs ?? {}))).toEqual(['alpha.job']);
  });

  it('refuses to boot with a module missing its dependency', async () => {
    const db = await createTestDatabase();
    try {
      const config = loadConfig({ DATABASE_URL: db.ownerUrl, DATABASE_APP_URL: db.appUrl, FEATURES: 'gamma', LOG_LEVEL: 'silent' });
      await expect(createApp(config, { modules: known, database: db })).rejects.toThrow(/FEATURES enables module "gamma" without its dependency "beta"/);
    } finally {
      await db.drop();
    }
  });
});
