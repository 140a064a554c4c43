import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type postgres from 'postgres';
import { withTenant } from '../../platform/db/index.js';
import { enqueueJob, type JobContext, type JobDefinition } from '../../platform/jobs/index.js';
import type { PatientsRuntime } from './service.js';
import { importPatientsCsv } from './importer.js';

/**
 * `patients.import`: the legacy CSV import as a background job. The file is
 * staged (mode 600) in DATA_DIR/imports/<stagedId>.csv by
 * `npm run patients:import -- --job ...`; the payload carries only that id.
 * The job resumes from its checkpoint if a worker dies, and deletes the
 * staged file (it holds plaintext SSNs) once the import completed or failed.
 * Workers must share DATA_DIR with the machine that staged the file.
 */
export const IMPORT_JOB = 'patients.import';

export interface JobRuntime extends PatientsRuntime {
  dataDir: string;
}

const STAGED_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const stagedPath = (dataDir: string, stagedId: string) => path.join(dataDir, 'imports', `${stagedId}.csv`);

/** Copies a CSV into the staging directory and enqueues the import job in the same tenant transaction. */
export async function stageImport(pool: postgres.Sql, dataDir: string, tenantId: string, file: string): Promise<string> {
  const stagedId = randomUUID();
  const target = stagedPath(dataDir, stagedId);
  await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  await fs.copyFile(file, target);
  await fs.chmod(target, 0o600);
  try {
    await withTenant(pool, tenantId, (db) => enqueueJob(db, { job: IMPORT_JOB, tenantId, aggregateId: stagedId, payload: { stagedId } }));
  } catch (e) {
    await fs.rm(target, { force: true });
    throw e;
  }
  return stagedId;
}

export function importJob(runtime: (ctx: JobContext) => JobRuntime): JobDefinition {
  return {
    attempts: 5,
    backoffMs: 5_000,
    concurrency: 1,
    async handler(payload, ctx) {
      const rt = runtime(ctx);
      const stagedId = String(payload.stagedId ?? '');
      if (!STAGED_ID.test(stagedId) || !ctx.tenantId) throw new Error('patients.import: payload needs stagedId and a tenant');
      const file = stagedPath(rt.dataDir, stagedId);
      try {
        await fs.access(file);
      } catch {
        ctx.log.warn({ stagedId, tenantId: ctx.tenantId }, 'patients import: staged file is gone (already imported?)');
        return;
      }
      const result = await importPatientsCsv({ sql: ctx.database.sql, crypto: rt.crypto, tenantId: ctx.tenantId, file, log: ctx.log });
      if (result.status !== 'running') await fs.rm(file, { force: true });
      ctx.log.info({ stagedId, importId: result.importId, status: result.status, imported: result.imported, rejected: result.rejected }, 'patients import job finished');
    },
  };
}
