/**
 * Every table of every module (and of the platform).
 * drizzle-kit reads this file; it is one of the two composition points of
 * the app (with src/modules/index.ts). The database always holds every
 * table, whether or not a module is enabled.
 */
import { idempotencyKeys, tenants } from '../platform/db/tables.js';
import { cryptoIndexKeys, cryptoKeys, cryptoRotationJobs } from '../platform/crypto/tables.js';
import { outbox, processedJobs } from '../platform/jobs/tables.js';
import { tenantEntitlements } from '../platform/scope/tables.js';
import { identityTables } from '../modules/identity/tables.js';
import { rateLimits } from '../platform/ratelimit/tables.js';
import { accessTables } from '../modules/access/tables.js';
import { patientsTables } from '../modules/patients/tables.js';
import { auditChainHeads, auditCheckpoints, auditEvents, auditStaged } from '../platform/audit/tables.js';
import { auditModuleTables } from '../modules/audit/tables.js';
import { billingTables } from '../modules/billing/tables.js';
import { eprescribingTables } from '../modules/eprescribing/tables.js';
import { prescriptionTables } from '../modules/eprescribing/prescription-tables.js';
import { telehealthTables } from '../modules/telehealth/tables.js';

export { tenants, idempotencyKeys };
export { cryptoKeys, cryptoIndexKeys, cryptoRotationJobs };
export { outbox, processedJobs };
export { tenantEntitlements };
export * from '../modules/identity/tables.js';
export { rateLimits };
export * from '../modules/access/tables.js';
export * from '../modules/patients/tables.js';
export { auditEvents, auditChainHeads, auditCheckpoints, auditStaged };
export * from '../modules/audit/tables.js';
export * from '../modules/billing/tables.js';
export * from '../modules/eprescribing/tables.js';
export * from '../modules/eprescribing/prescription-tables.js';
export * from '../modules/telehealth/tables.js';

export const tables = { tenants, idempotencyKeys, cryptoKeys, cryptoIndexKeys, cryptoRotationJobs, outbox, processedJobs, tenantEntitlements, ...identityTables, rateLimits, ...accessTables, auditEvents, auditChainHeads, auditCheckpoints, auditStaged, ...auditModuleTables, ...patientsTables, ...eprescribingTables, ...prescriptionTables, ...telehealthTables, ...billingTables };
