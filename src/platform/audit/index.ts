/**
 * PHI-access audit (platform part): the schema marker (phi-plugin.ts), the
 * per-request trail and its writer (durable before the response), the hash
 * chain and its verifier. The audit module (src/modules/audit) adds the
 * reports, the CSV export and the anomaly alerts on top.
 */
export * from './types.js';
export { GENESIS_HASH, canonicalEvent, chainHash, CANONICAL_VERSION } from './canonical.js';
export { appendChained, ensureAuditPartitions, isMissingPartition, stageChained, type SqlRunner } from './chain.js';
export { AuditWriter, createAuditWriter, auditWriterFor, closeAuditWriter, type AuditWriterOptions, type AuditWriterStats } from './writer.js';
export {
  AuditRequest,
  beginAuditRequest,
  auditRequestOf,
  hasAuditRequest,
  recordSecurityEvent,
  recordSecurityEventNow,
  markBreakGlassAccess,
  principalEvent,
  writeAuditRequest,
  type AuditableContext,
  type AuditPrincipal,
  type AccessRecord,
  type SecurityEventInput,
} from './request.js';
export { auditApolloPlugin, PURPOSE_OF_USE_HEADER } from './apollo-plugin.js';
export { verifyTenantChain, verifyAllTenants, rowToEvent, type IntegrityReport, type ChainBreak } from './verify.js';
export { denialCode, type PhiFieldOption, type PhiResourceOptions, type AuditFieldOption } from './phi-plugin.js';
export { auditEvents, auditChainHeads, auditCheckpoints, auditStaged } from './tables.js';
export {
  checkpointKeys,
  exportCheckpointPublicKey,
  signCheckpoints,
  CHECKPOINT_KEY_FILE,
  type CheckpointKeys,
} from './checkpoint.js';
