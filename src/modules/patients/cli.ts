/**
 * Patients CLIs (they live in the module: only src/modules/<name> may import a module's files).
 *
 *   npm run patients:import -- --tenant <slug> [--batch-size 500] [--continue <importId>] [--job] file.csv
 *       imports a legacy CSV (plaintext SSNs are encrypted on the way in); run it again on the same
 *       file to resume after the last committed line. --job stages the file in DATA_DIR/imports and
 *       lets a worker run it (`npm run worker`, or the API with JOB_WORKERS=inline).
 *   npm run patients:legacy-ssn -- <encrypt|verify|drop> --column <name> [--batch-size 500] [--vacuum]
 *       moves a plaintext SSN column of patients to the encrypted columns (see legacy-ssn.ts).
 *
 * Uses DATABASE_URL (or the embedded database in DATA_DIR, also while `npm start` runs on it) and the configured
 * key provider (KMS_KEY_ID or the local key ring). Prints counts, line numbers and ids only.
 */
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { bootDependencies } from '../../boot.js';
import { ConfigError, loadConfig } from '../../config.js';
import { AppError } from '../../platform/errors.js';
import { createLogger } from '../../platform/logger.js';
import { importPatientsCsv } from './importer.js';
import { stageImport } from './jobs.js';
import { dropLegacySsn, encryptLegacySsn, verifyLegacySsn } from './legacy-ssn.js';

const USAGE = [
  'usage: npm run patients:import -- --tenant <slug> [--batch-size N] [--continue <importId>] [--job] file.csv',
  '       npm run patients:legacy-ssn -- encrypt|verify|drop --column <name> [--batch-size N] [--vacuum]',
].join('\n');

const out = (line: string) => process.stdout.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { positionals, values } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      tenant: { type: 'string' },
      'batch-size': { type: 'string', default: '500' },
      continue: { type: 'string' },
      job: { type: 'boolean', default: false },
      column: { type: 'string' },
      vacuum: { type: 'boolean', default: false },
    },
  });
  const batchSize = Number(values['batch-size']);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    process.stderr.write(`--batch-size must be a positive integer\n${USAGE}\n`);
    return 2;
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);

  if (command === 'import') {
    const file = positionals[0];
    if (!values.tenant || !file || positionals.length !== 1) {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    // the same dependencies as the API and the worker (database, field crypto), closed in reverse order within a bound
    const boot = await bootDependencies(config, log, { role: 'cli', modules: [] });
    const { database, crypto } = boot.deps;
    try {
      const [tenant] = await database.sql<{ id: string; status: string }[]>`select id, status from carebase_tenant_by_slug(${values.tenant})`;
      if (!tenant) {
        process.stderr.write('no tenant with this slug\n');
        return 2;
      }
      if (values.job) {
        const stagedId = await stageImport(database.sql, config.dataDir, tenant.id, file);
        out(`staged as ${stagedId}; a worker runs job patients.import (progress: patient_imports)`);
        return 0;
      }
      const result = await importPatientsCsv({
        sql: database.sql,
        crypto,
        tenantId: tenant.id,
        file,
        log,
        batchSize,
        continueImportId: values.continue,
        onProgress: (p) => out(`line ${p.checkpointLine}: imported ${p.imported}, rejected ${p.rejected}`),
      });
      out(`import ${result.importId}: ${result.status}${result.resumed ? ' (resumed)' : ''}; imported ${result.imported}, rejected ${result.rejected}`);
      for (const e of result.errors.slice(0, 200)) out(`  line ${e.line} ${e.field}: ${e.code}`);
      if (result.errors.length > 200) out(`  ... ${result.errors.length - 200} more (patient_imports.errors)`);
      return result.status === 'completed' ? 0 : 3;
    } finally {
      await boot.close();
    }
  }

  if (command === 'encrypt' || command === 'verify' || command === 'drop') {
    if (!values.column) {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    // the same dependencies as the API and the worker (database, field crypto with the tenants' blind-index keys)
    const boot = await bootDependencies(config, log, { role: 'cli', modules: [] });
    const { database, crypto } = boot.deps;
    const owner = postgres(database.ownerUrl, { max: 2, onnotice: () => undefined });
    const opts = { owner, crypto, column: values.column, batchSize, onProgress: (p: Record<string, number>) => out(JSON.stringify(p)) };
    try {
      if (command === 'encrypt') {
        const r = await encryptLegacySsn(opts);
        out(`encrypted ${r.encrypted}, invalid ${r.invalid}, skipped ${r.skipped}`);
        if (r.invalidIds.length) out(`invalid values (fix them, then encrypt again), patient ids:\n  ${r.invalidIds.join('\n  ')}`);
        return r.invalid ? 3 : 0;
      }
      if (command === 'verify') {
        const r = await verifyLegacySsn(opts);
        out(`checked ${r.checked}, missing ${r.missing}, mismatched ${r.mismatched}`);
        if (r.mismatchedIds.length) out(`mismatched patient ids:\n  ${r.mismatchedIds.join('\n  ')}`);
        return r.missing || r.mismatched ? 3 : 0;
      }
      const r = await dropLegacySsn({ ...opts, vacuum: values.vacuum });
      if (!r.dropped) {
        out(`not dropped: verify found ${r.verify.missing} missing and ${r.verify.mismatched} mismatched envelopes`);
        return 3;
      }
      out(`dropped patients.${values.column}${r.vacuumed ? ' and rewrote the table (VACUUM FULL)' : '; now run VACUUM FULL patients (the old values stay in dead tuples until then)'}`);
      out('old backups and WAL archives still hold the plaintext: let them expire per your retention policy');
      return 0;
    } finally {
      await owner.end({ timeout: 5 });
      await boot.close();
    }
  }
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof ConfigError) process.stderr.write(`${e.message}\n`);
    else if (e instanceof AppError) process.stderr.write(`${e.code}: ${e.message}\n`);
    else process.stderr.write(`failed: ${(e as Error)?.name ?? 'error'}\n`);
    process.exit(1);
  },
);
