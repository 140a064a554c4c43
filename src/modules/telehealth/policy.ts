import { sql, type SQL } from 'drizzle-orm';
import { createAccessScope, type AccessPrincipal, type AccessRule, type PermissionVocabulary, type Role } from '../../platform/access/index.js';
import { patients } from '../patients/index.js';
import { telehealthAppointments, type AppointmentStatus } from './tables.js';

/**
 * The telehealth module's policy in one place: its permissions and the roles
 * that hold them (RBAC), the appointment access scope (ABAC: which
 * appointments a role may act on), and the appointment state machine.
 */

export const TELEHEALTH_PERMISSIONS: PermissionVocabulary = {
  permissions: {
    'telehealth:schedule:read': 'Read providers\u2019 availability, visit types and open slots',
    'telehealth:schedule:manage': 'Set providers\u2019 weekly hours and exceptions (a provider: their own)',
    'telehealth:settings:manage': 'Manage visit types, tenant holidays and consent texts',
    'telehealth:appointment:read': 'Read appointments (a patient: their own)',
    'telehealth:appointment:book': 'Book, reschedule and cancel appointments (a patient: their own)',
    'telehealth:visit:checkin': 'Check a patient in and into the virtual waiting room (a patient: themselves)',
    'telehealth:visit:conduct': 'Admit, complete, mark no-shows, post running-late notices and record visits',
    'telehealth:visit:join': 'Get a video join token for a visit one takes part in',
    'telehealth:queue:read': 'See a provider\u2019s waiting-room queue',
    'telehealth:consent:read': 'Read consent records (a patient: their own)',
    'telehealth:consent:record': 'Record a telehealth or recording consent (a patient: their own)',
    'telehealth:recording:read': 'Read recording metadata of visits',
    'telehealth:clinical:read': 'Read a visit\u2019s clinical content: shared documents and images, their annotations and the visit summary (a patient: their own)',
    'telehealth:webhook': 'Deliver video provider webhooks (held by the verified LiveKit webhook principal only, no role)',
  },
  roles: {
    ADMIN: [
      'telehealth:schedule:read',
      'telehealth:schedule:manage',
      'telehealth:settings:manage',
      'telehealth:appointment:read',
      'telehealth:appointment:book',
      'telehealth:queue:read',
      'telehealth:consent:read',
    ],
    PROVIDER: [
      'telehealth:schedule:read',
      'telehealth:schedule:manage',
      'telehealth:appointment:read',
      'telehealth:appointment:book',
      'telehealth:visit:checkin',
      'telehealth:visit:conduct',
      'telehealth:visit:join',
      'telehealth:queue:read',
      'telehealth:consent:read',
      'telehealth:consent:record',
      'telehealth:recording:read',
      'telehealth:clinical:read',
    ],
    NURSE: [
      'telehealth:schedule:read',
      'telehealth:appointment:read',
      'telehealth:appointment:book',
      'telehealth:visit:checkin',
      'telehealth:visit:conduct',
      'telehealth:visit:join',
      'telehealth:queue:read',
      'telehealth:consent:read',
      'telehealth:consent:record',
      'telehealth:recording:read',
      'telehealth:clinical:read',
    ],
    FRONT_DESK: [
      'telehealth:schedule:read',
      'telehealth:schedule:manage',
      'telehealth:appointment:read',
      'telehealth:appointment:book',
      'telehealth:visit:checkin',
      'telehealth:queue:read',
      'telehealth:consent:read',
      'telehealth:consent:record',
    ],
    COMPLIANCE: ['telehealth:consent:read', 'telehealth:recording:read'],
    PATIENT: [
      'telehealth:schedule:read',
      'telehealth:appointment:read',
      'telehealth:appointment:book',
      'telehealth:visit:checkin',
      'telehealth:visit:join',
      'telehealth:consent:read',
      'telehealth:consent:record',
      'telehealth:clinical:read',
    ],
    API_CLIENT: ['telehealth:schedule:read', 'telehealth:appointment:read', 'telehealth:appointment:book'],
  },
};

/** What one may do to an appointment; each action needs its permission (RBAC) before the appointment scope (ABAC). */
export const APPOINTMENT_ACTIONS = ['read', 'book', 'checkin', 'conduct', 'join', 'clinical'] as const;
export type AppointmentAction = (typeof APPOINTMENT_ACTIONS)[number];

const ACTION_PERMISSION: Record<AppointmentAction, string> = {
  read: 'telehealth:appointment:read',
  book: 'telehealth:appointment:book',
  checkin: 'telehealth:visit:checkin',
  conduct: 'telehealth:visit:conduct',
  join: 'telehealth:visit:join',
  clinical: 'telehealth:clinical:read',
};

/**
 * Which appointments a role may act on:
 *   tenant       every appointment of the tenant
 *   participant  appointments where the user is the provider
 *   self         appointments of the patient record linked to the user's account
 */
export type AppointmentScope = 'tenant' | 'participant' | 'self';

export const APPOINTMENT_SCOPE: Readonly<Partial<Record<Role, Partial<Record<AppointmentAction, AppointmentScope>>>>> = {
  ADMIN: { read: 'tenant', book: 'tenant' },
  PROVIDER: { read: 'tenant', book: 'tenant', checkin: 'tenant', conduct: 'participant', join: 'participant', clinical: 'tenant' },
  NURSE: { read: 'tenant', book: 'tenant', checkin: 'tenant', conduct: 'tenant', join: 'participant', clinical: 'tenant' },
  FRONT_DESK: { read: 'tenant', book: 'tenant', checkin: 'tenant' },
  PATIENT: { read: 'self', book: 'self', checkin: 'self', join: 'self', clinical: 'self' },
  API_CLIENT: { read: 'tenant', book: 'tenant' },
};

export function appointmentScopesFor(roles: readonly string[], action: AppointmentAction): Set<AppointmentScope> {
  const out = new Set<AppointmentScope>();
  for (const r of roles) {
    const s = APPOINTMENT_SCOPE[r as Role]?.[action];
    if (s) out.add(s);
  }
  return out;
}

/** A principal whose only way to an appointment is as the patient (a PATIENT user). */
export function isPatientOnly(p: AccessPrincipal, action: AppointmentAction = 'read'): boolean {
  const scopes = appointmentScopesFor(p.roles, action);
  return scopes.size === 1 && scopes.has('self');
}

const apptTable = telehealthAppointments;

const tenantRule: AccessRule<AppointmentAction> = {
  name: 'telehealth.tenant',
  vote: (p, action) => (appointmentScopesFor(p.roles, action).has('tenant') ? 'allow' : 'abstain'),
};

const participantRule: AccessRule<AppointmentAction> = {
  name: 'telehealth.participant',
  allowOnly: true,
  vote: (p, action) =>
    p.kind !== 'user' || !appointmentScopesFor(p.roles, action).has('participant')
      ? 'abstain'
      : { allowIf: (id: SQL) => sql`exists (select 1 from ${apptTable} pa where pa.tenant_id = ${p.tenantId} and pa.id = ${id} and pa.provider_id = ${p.id})` },
};

/** A PATIENT user: appointments of their own patient record only (denies everything else when self is their only scope). */
const patientSelfRule: AccessRule<AppointmentAction> = {
  name: 'telehealth.self',
  vote: (p, action) => {
    const scopes = appointmentScopesFor(p.roles, action);
    if (!scopes.has('self')) return 'abstain';
    const only = scopes.size === 1;
    if (p.kind !== 'user') return only ? 'deny' : 'abstain';
    const own = (id: SQL) =>
      sql`exists (select 1 from ${apptTable} sa join ${patients} sp on sp.tenant_id = sa.tenant_id and sp.id = sa.patient_id where sa.tenant_id = ${p.tenantId} and sa.id = ${id} and sp.user_id = ${p.id})`;
    return only ? { allowIf: own, denyUnless: own } : { allowIf: own };
  },
};

/**
 * The appointment access scope: `appointmentAccess.check(principal, id, action, db)` for one appointment,
 * `appointmentAccess.where(principal, action, idColumn)` for lists (the waiting-room queue, calendars).
 * Other features of the module (chat, vitals, documents) use it for "may this user act on this visit".
 * `check` decides access, not existence (a tenant-wide role is allowed without a lookup): load the appointment
 * in the caller's tenant first, as authorizeAppointment does.
 */
export const appointmentAccess = createAccessScope<AppointmentAction>({
  resource: 'appointment',
  permission: (action) => ACTION_PERMISSION[action],
  rules: [tenantRule, participantRule, patientSelfRule],
});

/** A transition of the appointment state machine: from which states, to which, under which access action. */
export interface TransitionSpec {
  from: readonly AppointmentStatus[];
  to: AppointmentStatus;
  access: AppointmentAction;
  /** outbox event type */
  event: string;
}

export const TRANSITIONS = {
  check_in: { from: ['scheduled'], to: 'checked_in', access: 'checkin', event: 'appointment.checkedIn' },
  wait: { from: ['checked_in'], to: 'waiting', access: 'checkin', event: 'appointment.waiting' },
  admit: { from: ['waiting'], to: 'in_progress', access: 'conduct', event: 'appointment.admitted' },
  complete: { from: ['in_progress'], to: 'completed', access: 'conduct', event: 'appointment.completed' },
  cancel: { from: ['scheduled', 'checked_in', 'waiting'], to: 'cancelled', access: 'book', event: 'appointment.cancelled' },
  no_show: { from: ['scheduled', 'checked_in', 'waiting'], to: 'no_show', access: 'conduct', event: 'appointment.noShow' },
} as const satisfies Record<string, TransitionSpec>;
export type TransitionName = keyof typeof TRANSITIONS;

/** Statuses in which the appointment still takes the provider's time (the exclusion constraint's WHERE). */
export const LIVE_STATUSES: readonly AppointmentStatus[] = ['scheduled', 'checked_in', 'waiting', 'in_progress', 'completed'];
/** Statuses from which nothing moves on. */
export const FINAL_STATUSES: readonly AppointmentStatus[] = ['completed', 'cancelled', 'no_show'];

/** Check-in opens this long before the start (a patient may wait in the waiting room early). */
export const CHECK_IN_OPENS_MINUTES = 60;
/** Bookings at most this far ahead. */
export const MAX_BOOKING_AHEAD_DAYS = 366;
/** Open-slot queries over at most this many days. */
export const MAX_SLOT_RANGE_DAYS = 62;
