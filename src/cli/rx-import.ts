/**
 * npm run rx:import -- --rxnorm <dir>: loads a full RxNorm release (the rrf/ folder with RXNCONSO.RRF, RXNREL.RRF and
 * RXNSAT.RRF, from https://www.nlm.nih.gov/research/umls/rxnorm/) into the medication catalog, as the owner
 * (DATABASE_URL, or the embedded database in DATA_DIR, running server or not). Prints the counts; exit code 1 on error.
 */
import { bootDependencies } from '../boot.js';
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../platform/logger.js';
import { importRxnorm } from '../modules/eprescribing/index.js';

const args = process.argv.slice(2);
const dir = args[args.indexOf('--rxnorm') + 1];
if (!args.includes('--rxnorm') || !dir) {
  process.stderr.write('usage: npm run rx:import -- --rxnorm <directory with RXNCONSO.RRF, RXNREL.RRF, RXNSAT.RRF>\n');
  process.exit(2);
}
try {
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const boot = await bootDependencies(config, log, { role: 'cli', modules: [] });
  try {
    const counts = await importRxnorm(boot.deps.database.ownerUrl, dir, (m) => process.stderr.write(`${m}\n`));
    process.stdout.write(`${JSON.stringify(counts)}\n`);
  } finally {
    await boot.close();
  }
  process.exit(0);
} catch (e) {
  process.stderr.write(`carebase: ${e instanceof ConfigError ? e.message : `RxNorm import failed: ${(e as Error).message}`}\n`);
  process.exit(1);
}
