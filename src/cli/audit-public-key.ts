/**
 * npm run audit:public-key — prints the audit checkpoint signing key's id and
 * public key (SPKI DER, base64) as one JSON line: what an auditor needs to
 * check the "audit checkpoint signed" lines of the log archive with any
 * Ed25519 tool, and what goes into AUDIT_TRUSTED_KEYS after a rotation.
 * Reads AUDIT_SIGNING_KEY, or the key in DATA_DIR (created if absent, as the
 * server would). Never prints the private key.
 */
import { ConfigError, loadConfig } from '../config.js';
import { checkpointKeys, exportCheckpointPublicKey } from '../platform/audit/checkpoint.js';

try {
  const keys = checkpointKeys(loadConfig());
  process.stdout.write(`${JSON.stringify({ keyId: keys.keyId, algorithm: 'Ed25519', publicKey: exportCheckpointPublicKey(keys) })}\n`);
} catch (e) {
  process.stderr.write(`carebase: ${e instanceof ConfigError ? e.message : `cannot read the audit signing key: ${(e as Error).name}`}\n`);
  process.exit(1);
}
