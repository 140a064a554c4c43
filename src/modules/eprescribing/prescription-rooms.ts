import { and, eq } from 'drizzle-orm';
import type { AccessPrincipal } from '../../platform/access/index.js';
import type { RoomType } from '../../platform/realtime/types.js';
import { patientAccess } from '../patients/index.js';
import { rxPrescriptions } from './prescription-tables.js';
import { isUuid } from './rx-common.js';

/**
 * Socket rooms of the lifecycle (events: prescription.transmitted, .accepted,
 * .error, .dispensed, .cancelled, .renewalRequested, .changeRequested, ...):
 * - `prescription:<id>`: rx:prescription:read, then the prescription must be in
 *   the caller's tenant and its patient readable (patients' scope);
 * - `rxQueue:<userId>`: a prescriber's own queue (rx:prescription:sign, only
 *   the user themself).
 */
export const prescriptionRoom: RoomType = {
  permission: 'rx:prescription:read',
  check: async (principal, id, db) => {
    if (!isUuid(id)) return false;
    const [row] = await db
      .select({ patientId: rxPrescriptions.patientId })
      .from(rxPrescriptions)
      .where(and(eq(rxPrescriptions.tenantId, principal.tenantId), eq(rxPrescriptions.id, id.toLowerCase())));
    return !!row && (await patientAccess.check(principal as AccessPrincipal, row.patientId, 'clinical:read', db)).allowed;
  },
};

export const rxQueueRoom: RoomType = {
  permission: 'rx:prescription:sign',
  check: (principal, id) => principal.kind === 'user' && isUuid(id) && principal.id === id.toLowerCase(),
};
