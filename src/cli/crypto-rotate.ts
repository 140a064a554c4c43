/**
 * npm run crypto:rotate -- <command>
 *
 *   start [--batch-size 500]   re-encrypt every envelope under the current master key
 *                              (KMS_KEY_ID, or the local key ring's current key); resumes
 *                              a stopped or failed job; prints progress
 *   status                     key versions, envelopes per table/column/key, latest jobs
 *   new-local-key              local key provider only: add a master key and make it current
 *
 * Connects as the database owner (DATABASE_URL, or the embedded database in
 * DATA_DIR, started here or used as it runs for `npm start`).
 */
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { bootDependencies } from '../boot.js';
import { ConfigError, loadConfig } from '../config.js';
import { tables } from '../db/schema.js';
import {
  createKeyProvider,
  LocalKeyProvider,
  rotationStatus,
  runRotation,
  type RotationProgress,
} from '../platform/crypto/index.js';
import { createLogger } from '../platform/logger.js';

const USAGE = 'usage: npm run crypto:rotate -- start [--batch-size N] | status | new-local-key';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { 'batch-size': { type: 'string', default: '500' } },
});
const command = positionals[0];
const out = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  if (!command || !['start', 'status', 'new-local-key'].includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  if (command === 'new-local-key') {
    // the local key ring only: no database
    const provider = createKeyProvider(config, log);
    if (!(provider instanceof LocalKeyProvider)) {
      process.stderr.write('new-local-key applies to the local key provider only; with AWS KMS create a key and point KMS_KEY_ID (or its alias) at it\n');
      return 2;
    }
    out(`current local master key: ${provider.rotate()}`);
    out('now run: npm run crypto:rotate -- start');
    return 0;
  }

  // the same dependencies as the API and the worker (database, field crypto), closed in reverse order within a bound
  const boot = await bootDependencies(config, log, { role: 'cli', modules: [] });
  const { database, crypto } = boot.deps;
  const owner = postgres(database.ownerUrl, { max: 2, onnotice: () => undefined });
  try {
    if (command === 'status') {
      const s = await rotationStatus(owner, Object.values(tables));
      out('key versions:');
      for (const k of s.keys) out(`  v${k.version} ${k.status.padEnd(8)} ${k.keyId}${k.retiredAt ? ` (retired ${k.retiredAt.toISOString()})` : ''}`);
      if (s.keys.length === 0) out('  (none recorded yet: run start once)');
      out(`current key: ${await crypto.provider.currentKeyId()}`);
      out('envelopes:');
      for (const e of s.envelopes) out(`  ${e.table}.${e.column}  ${e.count}  ${e.keyId}`);
      if (s.envelopes.length === 0) out('  (none)');
      out('latest jobs:');
      for (const j of s.jobs) {
        out(
          `  ${j.id} ${j.status} target=${j.targetKeyId} rows=${j.rowsUpdated} values=${j.valuesReencrypted} conflicts=${j.conflicts}` +
            ` remaining=${j.remaining ?? '?'} started=${j.startedAt.toISOString()}${j.error ? ` error=${j.error}` : ''}`,
        );
      }
      return 0;
    }

    const batchSize = Number(values['batch-size']);
    const controller = new AbortController();
    process.once('SIGINT', () => {
      out('stopping after the current batch (run start again to resume)...');
      controller.abort();
    });
    let lastLine = 0;
    const result = await runRotation({
      sql: owner,
      crypto,
      tables: Object.values(tables),
      batchSize,
      signal: controller.signal,
      logger: log,
      onProgress: (p: RotationProgress) => {
        if (p.tableDone || Date.now() - lastLine > 1000) {
          lastLine = Date.now();
          out(`${p.table}${p.tableDone ? ' done' : ''}: rows=${p.rowsUpdated} values=${p.valuesReencrypted} conflicts=${p.conflicts}`);
        }
      },
    });
    out(
      `job ${result.jobId}${result.resumed ? ' (resumed)' : ''}: ${result.status}; ${result.valuesReencrypted} values in ${result.rowsUpdated} rows ` +
        `re-encrypted under ${result.targetKeyId}; ${result.remaining} envelopes remain under other keys`,
    );
    if (result.status === 'incomplete') out('values were written under an old key during the job (writers with cached data keys): run start again');
    return result.status === 'completed' ? 0 : 3;
  } finally {
    await owner.end({ timeout: 5 });
    await boot.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const message = e instanceof ConfigError ? e.message : `crypto:rotate failed: ${(e as Error).name}: ${(e as Error).message}`;
    process.stderr.write(`carebase: ${message}\n`);
    process.exit(1);
  },
);
