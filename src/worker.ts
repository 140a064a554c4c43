/**
 * `npm run worker`: job workers only (no HTTP API, no sockets, no relay).
 * The API processes relay the outbox into the queues; any number of worker
 * processes consume them. Same queues and datastore choice as the API
 * (Redis with REDIS_URL, BullMQ's PostgreSQL backend otherwise).
 */
import { pathToFileURL } from 'node:url';
import { startJobs, type BackgroundOptions } from './background.js';
import { bootDependencies } from './boot.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { modules as allModules } from './modules/index.js';
import type { Database } from './platform/db/index.js';
import { settledWithin } from './platform/deadline.js';
import { createMetrics } from './platform/http/metrics.js';
import type { JobSystem } from './platform/jobs/index.js';
import { createLogger, type Logger } from './platform/logger.js';
import { resolveModules, type ModuleManifest } from './schema/index.js';

export interface WorkerProcess {
  jobs: JobSystem;
  database: Database;
  metrics: ReturnType<typeof createMetrics>;
  close(): Promise<void>;
}

/** Starts the enabled modules' workers (their instances too, as in the API). */
export async function startWorker(
  config: Config,
  opts: { modules?: readonly ModuleManifest[]; logger?: Logger; database?: Database; background?: BackgroundOptions } = {},
): Promise<WorkerProcess> {
  const log = opts.logger ?? createLogger(config.logLevel);
  const modules = resolveModules(config.features, opts.modules ?? allModules);
  const metrics = createMetrics(config.databasePoolMax);
  // the same dependencies as the API (database, field crypto, permission table), closed in reverse order within a bound
  const boot = await bootDependencies(config, log, { role: 'worker', modules, database: opts.database, registry: metrics.registry });
  const { deps } = boot;
  const database = deps.database;
  let jobs: JobSystem | undefined;
  try {
    // the modules' instances, as in the API: jobs reach theirs through ctx.scope.module(name)
    await boot.initModules();
    jobs = await startJobs({ config, log, database, modules, registry: metrics.registry, runWorkers: true, options: opts.background, instances: deps.instances });
  } catch (e) {
    await boot.close();
    throw e;
  }
  const system = jobs;
  let closing: Promise<void> | undefined;
  return {
    jobs: system,
    database,
    metrics,
    close() {
      closing ??= (async () => {
        if (!(await settledWithin(system.close(), config.shutdownTimeoutMs))) log.warn({ stage: 'jobs' }, 'shutdown timeout: moving on');
        // module instances in reverse order, then the dependencies, each stage bounded
        await boot.close();
      })();
      return closing;
    },
  };
}

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`carebase-worker: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const log = createLogger(config.logLevel).child({ process: 'worker' });
  let worker: WorkerProcess;
  try {
    worker = await startWorker(config, { logger: log });
  } catch (e) {
    log.fatal({ err: { name: (e as Error).name } }, 'worker boot failed');
    process.exit(1);
  }
  log.info({ queues: worker.jobs.jobNames.length, backend: worker.jobs.kind }, 'Carebase worker is running');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'worker shutting down');
    try {
      await worker.close();
      log.info('worker stopped');
      log.flush(() => process.exit(0));
    } catch {
      log.flush(() => process.exit(1));
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
