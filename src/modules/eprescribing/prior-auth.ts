import type { Db } from '../../platform/db/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { rxPriorAuths, type Prescription, type PriorAuth } from './prescription-tables.js';
import { recordChange } from './prescriptions.js';
import { lifecycleOf } from './rx-common.js';

/**
 * Electronic prior authorization (ePA) of a prescription:
 *
 *   required -> requested -> pending -> approved | denied | more_info
 *   more_info -> pending (answers sent) ; denied -> appealed -> approved | denied
 *
 * A pharmacy's RxChangeRequest with code P (the payer requires a prior
 * authorization) opens one as `required`.
 */

/** Opens a prior authorization for the prescription (RxChangeRequest P); returns it. */
export async function createPriorAuthFromChange(scope: RequestScope, db: Db, rx: Prescription, changeRequestId: string): Promise<PriorAuth> {
  const now = new Date(lifecycleOf(scope).now());
  const [pa] = await db.insert(rxPriorAuths).values({ tenantId: rx.tenantId, prescriptionId: rx.id, patientId: rx.patientId, status: 'required', createdAt: now, updatedAt: now }).returning();
  await recordChange(scope, db, rx, { from: rx.status, action: 'priorAuth', detail: { priorAuthId: pa!.id, paStatus: 'required', changeRequestId }, fields: ['PriorAuthorization.status'], auditAction: 'create' });
  return pa!;
}
