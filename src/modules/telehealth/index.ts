import type { ModuleManifest } from '../../schema/index.js';
import { TELEHEALTH, type TelehealthInstance } from './common.js';
import { TELEHEALTH_PERMISSIONS } from './policy.js';
import { registerTelehealthSchema } from './schema.js';

/**
 * Telehealth: provider schedules (weekly hours in the provider's time zone,
 * exceptions, holidays), visit types, open slots across daylight-saving
 * changes, appointments without double booking (exclusion constraint), the
 * visit state machine with an outbox event and an audit entry per change.
 * See docs/modules/telehealth.md.
 *
 * The public surface for other modules and for features built on this one
 * (in-visit tools, reminders): the tables, the appointment access scope,
 * the state machine and the services re-exported below.
 */
export { telehealthTables, telehealthConsents, telehealthConsentTexts, CONSENT_KINDS, type Consent, type ConsentKind, type ConsentText, telehealthAppointments, telehealthAppointmentTransitions, telehealthVisitTypes, telehealthProviderSchedules, telehealthWeeklyHours, telehealthAvailabilityExceptions, APPOINTMENT_STATUSES, MODALITIES, type Appointment, type AppointmentStatus, type Modality, type VisitType } from './tables.js';
export { TELEHEALTH_PERMISSIONS, appointmentAccess, TRANSITIONS, LIVE_STATUSES, FINAL_STATUSES, type AppointmentAction, type TransitionName } from './policy.js';
export { TELEHEALTH, type TelehealthInstance } from './common.js';
export { authorizeAppointment, loadAppointment, appointmentRooms, transitionAppointment, bookAppointment, type TransitionGuard } from './appointments.js';
export { findOpenSlots, providerAvailability } from './schedules.js';
export { hasCurrentConsent, requireTelehealthConsent, requireRecordingConsents, currentText as currentConsentText, type ConsentSubject } from './consent.js';
export { visitTransition, VISIT_GUARDS } from './visits.js';

/** PHI categories of the telehealth module's fields. */
export const TELEHEALTH_PHI_CATEGORIES: Readonly<Record<string, string>> = {
  appointment: 'Appointments of a patient: when, the state of the visit, the reason for the visit and for a cancellation',
  consent: 'Consents a patient gave (telehealth, recording): when, to which version, from which IP address and user agent',
};

export interface TelehealthOptions {
  /** the clock (epoch ms) the module uses for "in the past", check-in windows and no-shows; tests pass a fake one */
  now?: () => number;
}

export function createTelehealthModule(options: TelehealthOptions = {}): ModuleManifest {
  return {
    name: TELEHEALTH,
    phase: 2,
    description: 'Telehealth: schedules, appointments without double booking, visit state machine',
    dependsOn: ['identity', 'patients'],
    entitlement: 'telehealth',
    permissions: TELEHEALTH_PERMISSIONS,
    phiCategories: TELEHEALTH_PHI_CATEGORIES,
    schema: registerTelehealthSchema,
    async init(deps): Promise<TelehealthInstance> {
      return { now: options.now ?? Date.now, crypto: deps.crypto };
    },
  };
}

const manifest: ModuleManifest = createTelehealthModule();
export default manifest;
