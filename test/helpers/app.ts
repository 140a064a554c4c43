import { Writable } from 'node:stream';
import { createApp, type App } from '../../src/app.js';
import type { BackgroundOptions } from '../../src/background.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/platform/logger.js';
import type { ModuleManifest } from '../../src/schema/index.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { testDataDir } from './global-setup.js';

export interface GqlResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: { data?: T | null; errors?: { message: string; extensions?: Record<string, unknown>; path?: unknown[] }[] };
}

export interface TestApp {
  app: App;
  url: string;
  db: TestDatabase;
  /** every log line the app wrote, parsed */
  logs: Record<string, unknown>[];
  /** raw log text (to search for leaked values) */
  logText(): string;
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GqlResponse<T>>;
  close(): Promise<void>;
}

/**
 * Starts the real app on a random port against a fresh test database. The
 * app connects as carebase_app (RLS applies) exactly as in production.
 */
export async function startTestApp(
  opts: { env?: Record<string, string>; modules?: readonly ModuleManifest[]; db?: TestDatabase; background?: BackgroundOptions } = {},
): Promise<TestApp> {
  const db = opts.db ?? (await createTestDatabase());
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: db.ownerUrl,
    DATABASE_APP_URL: db.appUrl,
    FEATURES: 'all',
    // local master key and checkpoint signing key of this test run: never ./.data in the checkout (global-setup removes it)
    DATA_DIR: testDataDir(),
    // a busy CI machine lags its event loop; shedding on lag is tested explicitly where wanted
    LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
    ...opts.env,
  });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const logger = createLogger(config.logLevel, sink);
  const app = await createApp(config, { modules: opts.modules, logger, database: db, background: opts.background });
  const url = await app.listen();
  return {
    app,
    url,
    db,
    get logs() {
      return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    logText: () => lines.join('\n'),
    async gql(query, variables, headers = {}) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      const text = await res.text();
      let body: GqlResponse['body'];
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error(`non-JSON response ${res.status}: ${text.slice(0, 200)}`);
      }
      return { status: res.status, headers: res.headers, body } as GqlResponse<never>;
    },
    async close() {
      await app.close();
      if (!opts.db) await db.drop();
    },
  };
}

/** many sign-ins from 127.0.0.1 (argon2id each) on a busy machine: the per-IP budgets and event-loop load shedding
 * would get in the way of tests about something else (the identity tests test those limits on purpose) */
export const UNLIMITED = { RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000', RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000', LOAD_SHED_EVENT_LOOP_DELAY_MS: '0' };
