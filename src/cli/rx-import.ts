/**
 * npm run rx:import -- --rxnorm <dir> [--ndc <dir>]: loads the medication catalog's reference releases, as the owner
 * (DATABASE_URL, or the embedded database in DATA_DIR, running server or not); prints the counts as one JSON line per
 * import (RxNorm first); exit code 1 on error.
 *   --rxnorm <dir>  a full RxNorm release: the rrf/ folder with RXNCONSO.RRF, RXNREL.RRF and RXNSAT.RRF
 *                   (https://www.nlm.nih.gov/research/umls/rxnorm/)
 *   --ndc <dir>     the FDA NDC Directory text files, product.txt and package.txt (unzipped ndctext.zip from
 *                   https://www.fda.gov/drugs/drug-approvals-and-databases/national-drug-code-directory): links the
 *                   packages' NDCs to the catalog's drugs and updates DEA schedules (run it after --rxnorm)
 */
import { bootDependencies } from '../boot.js';
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../platform/logger.js';
import { importFdaNdc, importRxnorm } from '../modules/eprescribing/index.js';

const args = process.argv.slice(2);
const valueOf = (flag: string) => (args.includes(flag) ? (args[args.indexOf(flag) + 1] ?? '') : null);
const rxnormDir = valueOf('--rxnorm');
const ndcDir = valueOf('--ndc');
const malformed = (dir: string | null) => dir !== null && (dir === '' || dir.startsWith('--'));
if ((rxnormDir === null && ndcDir === null) || malformed(rxnormDir) || malformed(ndcDir)) {
  process.stderr.write('usage: npm run rx:import -- [--rxnorm <directory with RXNCONSO.RRF, RXNREL.RRF, RXNSAT.RRF>] [--ndc <directory with the FDA product.txt, package.txt>]\n');
  process.exit(2);
}
let step = 'RxNorm';
try {
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const boot = await bootDependencies(config, log, { role: 'cli', modules: [] });
  const say = (m: string) => process.stderr.write(`${m}\n`);
  try {
    if (rxnormDir) {
      const counts = await importRxnorm(boot.deps.database.ownerUrl, rxnormDir, say);
      process.stdout.write(`${JSON.stringify(counts)}\n`);
    }
    if (ndcDir) {
      step = 'FDA NDC';
      const counts = await importFdaNdc(boot.deps.database.ownerUrl, ndcDir, say);
      process.stdout.write(`${JSON.stringify(counts)}\n`);
    }
  } finally {
    await boot.close();
  }
  process.exit(0);
} catch (e) {
  process.stderr.write(`carebase: ${e instanceof ConfigError ? e.message : `${step} import failed: ${(e as Error).message}`}\n`);
  process.exit(1);
}
