/**
 * Composition of the background platform for the enabled modules: job
 * queues/workers (platform/jobs), the outbox relay and socket.io
 * (platform/realtime). Used by app.ts (API, + workers when JOB_WORKERS=inline)
 * and worker.ts (workers only).
 */
import type { Server as HttpServer } from 'node:http';
import type { Registry } from 'prom-client';
import type { Config } from './config.js';
import type { Database } from './platform/db/index.js';
import { createJobBackend, JobSystem, OutboxRelay, PLATFORM_SCHEDULES, type JobRegistration } from './platform/jobs/index.js';
import type { Logger } from './platform/logger.js';
import { auditWriterFor } from './platform/audit/index.js';
import { Entitlements, entitlementKey, ScopeFactory, type ModuleInstances } from './platform/scope/index.js';
import { createRealtime, type Realtime, type RealtimePrincipal, type RealtimeSocketHandler, type RoomType } from './platform/realtime/index.js';
import type { ModuleDeps, ModuleManifest } from './schema/index.js';

/** Knobs tests and benchmarks turn; production uses the defaults. */
export interface BackgroundOptions {
  /** run the outbox relay in this process (default true in the API) */
  relay?: boolean;
  relayPollIntervalMs?: number;
  relayBatchSize?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** realtime: token revalidation and sweep intervals, rate limit burst */
  revalidateMs?: number;
  sweepMs?: number;
  burst?: number;
  recoveryMs?: number;
}

/** Every job of the enabled modules and the platform's schedules, by job name (a name declared twice stops the boot). */
export function collectJobs(modules: readonly ModuleManifest[]): Map<string, { module: string; registration: JobRegistration }> {
  const out = new Map<string, { module: string; registration: JobRegistration }>();
  for (const [name, registration] of Object.entries(PLATFORM_SCHEDULES)) out.set(name, { module: 'platform', registration });
  for (const m of modules) {
    for (const [name, registration] of Object.entries(m.jobs ?? {})) {
      if (out.has(name)) throw new Error(`job "${name}" is declared by ${out.get(name)!.module} and ${m.name}`);
      out.set(name, { module: m.name, registration });
    }
  }
  return out;
}

export async function startJobs(p: {
  config: Config;
  log: Logger;
  database: Database;
  modules: readonly ModuleManifest[];
  registry: Registry;
  runWorkers: boolean;
  options?: BackgroundOptions;
  /** the process's request scopes (default: scopes on this database for the enabled modules and their instances) */
  scopes?: ScopeFactory;
  /** the modules' instances (boot.initModules) for the default scopes */
  instances?: ModuleInstances;
}): Promise<JobSystem> {
  const jobs = collectJobs(p.modules);
  const scopes =
    p.scopes ??
    new ScopeFactory({
      pool: p.database.sql,
      writer: auditWriterFor(p.database.sql),
      log: p.log,
      entitlements: new Entitlements(p.modules),
      timeoutMs: p.config.deadlines.requestTimeoutMs,
      instances: p.instances,
    });
  const backend = await createJobBackend({
    redisUrl: p.config.redisUrl,
    prefix: p.config.jobs.keyPrefix,
    appUrl: p.database.appUrl,
    ownerUrl: p.database.ownerUrl,
    // each worker holds one LISTEN connection; queries share the rest
    poolMax: (p.runWorkers ? jobs.size : 0) + 8,
    queues: [...jobs.keys()],
    log: p.log,
  });
  const system = new JobSystem({
    backend,
    database: p.database,
    log: p.log,
    config: p.config,
    registry: p.registry,
    jobs,
    scopes,
    runWorkers: p.runWorkers,
    closeTimeoutMs: p.config.shutdownTimeoutMs,
    lockDurationMs: p.options?.lockDurationMs,
    stalledIntervalMs: p.options?.stalledIntervalMs,
  });
  try {
    await system.start();
  } catch (e) {
    await system.close().catch(() => undefined);
    throw e;
  }
  return system;
}

export interface ApiBackground {
  jobs: JobSystem;
  realtime: Realtime;
  relay?: OutboxRelay;
  /** stops the relay and disconnects sockets (before the HTTP server closes) */
  stopIntake(): Promise<void>;
}

export async function startApiBackground(p: {
  config: Config;
  log: Logger;
  database: Database;
  modules: readonly ModuleManifest[];
  registry: Registry;
  httpServer: HttpServer;
  deps: ModuleDeps;
  scopes: ScopeFactory;
  options?: BackgroundOptions;
}): Promise<ApiBackground> {
  const { config, log, database, modules, registry } = p;
  const jobs = await startJobs({ config, log, database, modules, registry, runWorkers: config.jobs.workers === 'inline', options: p.options, scopes: p.scopes });
  let realtime: Realtime | undefined;
  let relay: OutboxRelay | undefined;
  try {
    const tokenHooks = modules.filter((m) => m.authenticateToken);
    const handlers: (RealtimeSocketHandler & { module: string; entitlement: string | null })[] = modules.flatMap((m) => (m.socketHandlers ?? []).map((h) => ({ ...h, module: m.name, entitlement: entitlementKey(m) })));
    const roomAccess = new Map<string, RoomType>();
    for (const m of modules) {
      for (const [type, spec] of Object.entries(m.roomAccess ?? {})) {
        if (roomAccess.has(type) || type === 'tenant' || type === 'user') throw new Error(`socket room type "${type}" is claimed by two modules`);
        // a tenant without the module's entitlement cannot join its rooms (FEATURE_NOT_ENTITLED)
        roomAccess.set(type, { ...(typeof spec === 'function' ? { check: spec } : spec), entitlement: entitlementKey(m) });
      }
    }
    realtime = await createRealtime({
      httpServer: p.httpServer,
      log,
      registry,
      database,
      redisUrl: config.redisUrl,
      prefix: config.jobs.keyPrefix,
      origins: config.publicOrigins,
      maxPayloadBytes: config.realtime.maxPayloadBytes,
      eventsPerSecond: config.realtime.eventsPerSecond,
      burst: p.options?.burst,
      revalidateMs: p.options?.revalidateMs,
      sweepMs: p.options?.sweepMs,
      recoveryMs: p.options?.recoveryMs,
      handlers,
      scopes: p.scopes,
      roomAccess,
      authenticateToken: async (token): Promise<RealtimePrincipal | undefined> => {
        for (const m of tokenHooks) {
          const principal = await m.authenticateToken!(token, p.deps);
          if (principal) return principal;
        }
        return undefined;
      },
    });
    if (p.options?.relay !== false) {
      relay = new OutboxRelay({
        database,
        log,
        registry,
        jobs,
        sink: realtime,
        batchSize: p.options?.relayBatchSize,
        pollIntervalMs: p.options?.relayPollIntervalMs,
      });
      await relay.start();
    }
  } catch (e) {
    await relay?.close().catch(() => undefined);
    await realtime?.close().catch(() => undefined);
    await jobs.close().catch(() => undefined);
    throw e;
  }
  const rt = realtime;
  return {
    jobs,
    realtime: rt,
    relay,
    async stopIntake() {
      await relay?.close();
      await rt.close();
    },
  };
}
