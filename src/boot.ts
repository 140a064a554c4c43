/**
 * One boot function for every process: the API (app.ts), the worker
 * (worker.ts) and the CLIs build the same module dependencies here (database,
 * field crypto, permission table, logger, and the rate limiter where requests
 * arrive), then the modules' instances (`initModules`), and close them all in
 * reverse order, each stage bounded by SHUTDOWN_TIMEOUT_MS (a dependency that
 * stopped answering must not hold the process).
 */
import type { Registry } from 'prom-client';
import type { Config } from './config.js';
import { createBlobStore } from './platform/blobs/index.js';
import { createDbIndexKeyStore, createFieldCrypto, createKeyProvider, cryptoMetrics } from './platform/crypto/index.js';
import { openDatabase, type Database } from './platform/db/index.js';
import { settledWithin } from './platform/deadline.js';
import type { Logger } from './platform/logger.js';
import { createAppRateLimiter } from './platform/ratelimit/index.js';
import { ModuleInstances } from './platform/scope/index.js';
import { permissionCatalog, type ModuleDeps, type ModuleManifest } from './schema/index.js';

export type ProcessRole = 'api' | 'worker' | 'cli';

export interface BootOptions {
  role: ProcessRole;
  /** the enabled modules (their permission vocabularies make the permission table) */
  modules: readonly ModuleManifest[];
  /** an already open database (tests): not closed by close() */
  database?: Database;
  /** metrics registry for KMS and rate limiter metrics (API) */
  registry?: Registry;
}

export interface Booted {
  deps: ModuleDeps;
  /**
   * Runs each enabled module's init(deps) in order and keeps what it returns in deps.instances; each instance's
   * close() becomes a shutdown stage (so modules close in reverse order, before the dependencies).
   */
  initModules(): Promise<void>;
  /** adds a shutdown stage of the process (closed before everything opened earlier) */
  onClose(name: string, close: () => Promise<unknown> | unknown): void;
  /** closes what boot opened (module instances included), in reverse order, each stage within config.shutdownTimeoutMs */
  close(): Promise<void>;
}

export async function bootDependencies(config: Config, log: Logger, opts: BootOptions): Promise<Booted> {
  const stages: { name: string; close: () => Promise<unknown> | unknown }[] = [];
  const close = async () => {
    for (const stage of stages.splice(0).reverse()) {
      const work = Promise.resolve()
        .then(stage.close)
        .catch((e: Error) => log.error({ stage: stage.name, errorName: e?.name }, 'close failed'));
      if (!(await settledWithin(work, config.shutdownTimeoutMs))) log.warn({ stage: stage.name }, 'shutdown timeout: moving on');
    }
  };
  try {
    const database = opts.database ?? (await openDatabase(config, log));
    if (!opts.database) stages.push({ name: 'database', close: () => database.close() });
    const kmsMetrics = opts.registry ? cryptoMetrics(opts.registry) : undefined;
    const crypto = createFieldCrypto({
      provider: createKeyProvider(config, log, kmsMetrics ? { metrics: kmsMetrics } : undefined),
      // side pool: a request may need its tenant's index key while its own transaction holds an app-pool connection
      indexKeys: createDbIndexKeyStore(database.sideSql),
      metrics: kmsMetrics,
    });
    stages.push({
      name: 'crypto',
      close: async () => {
        crypto.close();
        await crypto.provider.close();
      },
    });
    const blobs = await createBlobStore(config);
    stages.push({ name: 'blob store', close: () => blobs.close() });
    const deps: ModuleDeps = { config, log, database, crypto, blobs, permissions: permissionCatalog(opts.modules), instances: new ModuleInstances() };
    if (opts.role === 'api') {
      if (!opts.registry) throw new Error('bootDependencies: the API needs a metrics registry');
      const rateLimit = createAppRateLimiter(config, { log, sql: database.sql, registry: opts.registry });
      stages.push({ name: 'rate limiter', close: () => rateLimit.limiter.close() });
      // bounded: without Redis at boot the per-process fallback answers until it connects
      await rateLimit.limiter.ready();
      deps.rateLimit = rateLimit;
    }
    let initialised = false;
    return {
      deps,
      close,
      onClose: (name, stageClose) => void stages.push({ name, close: stageClose }),
      async initModules() {
        if (initialised) throw new Error('initModules: modules are already initialised');
        initialised = true;
        for (const m of opts.modules) for (const [key, value] of Object.entries(m.provides ?? {})) deps.instances.provide(key, m.name, value);
        for (const m of opts.modules) {
          const instance = await m.init?.(deps);
          if (!instance) continue;
          deps.instances.set(m.name, instance);
          if (instance.close) stages.push({ name: `module ${m.name}`, close: () => instance.close!() });
        }
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}
