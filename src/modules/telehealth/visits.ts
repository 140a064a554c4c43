import type { Db } from '../../platform/db/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { transitionAppointment, type TransitionGuard } from './appointments.js';
import { requireTelehealthConsent } from './consent.js';
import type { TransitionName } from './policy.js';
import type { Appointment } from './tables.js';

/**
 * The visit doors' view of the state machine: the same transitions as
 * appointments.ts with the visit's rules on top (a video visit's patient
 * enters the waiting room only with the current telehealth consent).
 * GraphQL, socket events and jobs all call these.
 */

/** Entering the waiting room of a video visit needs the patient's current telehealth consent. */
export const waitingRoomConsent: TransitionGuard = async (_scope: RequestScope, db: Db, appt: Appointment, name: TransitionName) => {
  if (name === 'wait' && appt.modality === 'video') await requireTelehealthConsent(db, appt.tenantId, { patientId: appt.patientId });
};

/** The guards every door applies (other features may pass more to transitionAppointment). */
export const VISIT_GUARDS: readonly TransitionGuard[] = [waitingRoomConsent];

export function visitTransition(scope: RequestScope, id: unknown, name: TransitionName, opts: { reason?: unknown } = {}): Promise<Appointment> {
  return transitionAppointment(scope, id, name, { ...opts, guards: VISIT_GUARDS });
}
