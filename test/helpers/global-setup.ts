import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { runMigrations } from '../../src/platform/db/migrate.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/platform/db/embedded.js';
import { createLogger } from '../../src/platform/logger.js';

/** Names are scoped to this test run, so two runs against one server (or two engineers) never drop each other's databases. */
const RUN = (process.env.CAREBASE_TEST_RUN ??= `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`);
export const TEMPLATE_DB = `carebase_template_${RUN}`;
export const TEST_DB_PREFIX = `carebase_test_${RUN}_`;
export const APP_ROLE_TEST_PASSWORD = 'carebase_app_test_password';
/** DATA_DIR of the apps a test run starts (startTestApp): a temporary directory, removed at the end of the run */
export const testDataDir = () => path.join(os.tmpdir(), `carebase-test-${RUN}-data`);

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    appRolePassword: string;
    /** template and test-database names of this run (see TEMPLATE_DB / TEST_DB_PREFIX) */
    testDatabases: { template: string; prefix: string };
  }
}

/**
 * One PostgreSQL per test run: TEST_DATABASE_URL, or an embedded server in
 * .test-data/pg. A template database is migrated once; every test file clones
 * it (CREATE DATABASE ... TEMPLATE), see test/helpers/db.ts.
 */
export default async function setup(project: TestProject) {
  // the apps and CLIs that tests start as child processes inherit it: nothing is written to ./.data in the checkout
  process.env.DATA_DIR = testDataDir();
  const log = createLogger('warn');
  let embedded: EmbeddedDatabase | undefined;
  let adminUrl = process.env.TEST_DATABASE_URL;
  // a private embedded cluster per run (initdb ~1 s): concurrent runs cannot stop each other's server
  const embeddedDir = path.join(os.tmpdir(), `carebase-test-${RUN}`);
  if (!adminUrl) {
    embedded = await startEmbeddedPostgres(embeddedDir, log, 54329);
    adminUrl = embedded.url;
  }
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  await dropTestDatabases(admin);
  await admin.unsafe(`create database ${TEMPLATE_DB}`);
  await runMigrations(withDatabase(adminUrl, TEMPLATE_DB), log, { appRolePassword: APP_ROLE_TEST_PASSWORD });
  project.provide('pgAdminUrl', adminUrl);
  project.provide('appRolePassword', APP_ROLE_TEST_PASSWORD);
  project.provide('testDatabases', { template: TEMPLATE_DB, prefix: TEST_DB_PREFIX });

  return async () => {
    await dropTestDatabases(admin).catch(() => undefined);
    await admin.end({ timeout: 5 });
    rmSync(testDataDir(), { recursive: true, force: true });
    if (embedded) {
      await embedded.stop();
      rmSync(embeddedDir, { recursive: true, force: true });
    }
  };
}

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function dropTestDatabases(admin: postgres.Sql) {
  const rows = await admin<{ datname: string }[]>`
    select datname from pg_database where datname = ${TEMPLATE_DB} or starts_with(datname, ${TEST_DB_PREFIX})`;
  for (const { datname } of rows) {
    await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  }
}
