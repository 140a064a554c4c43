import { ADVANCE_JOB, advanceJob, logNotifier, SWEEP_JOB, sweepSchedule, type ReminderNotifier } from './jobs.js';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { eq } from 'drizzle-orm';
import { resourceLookupKey, type ResourceLookup } from '../../platform/access/index.js';
import type { ModuleManifest } from '../../schema/index.js';
import { telehealthAppointments } from './tables.js';
import { isUuid, TELEHEALTH, type TelehealthInstance } from './common.js';
import { LiveKitVideoProvider } from './video/livekit.js';
import type { VideoProvider } from './video/provider.js';
import { LiveKitSimulator } from './video/simulator.js';
import { visitRoom, waitingRoomHandlers, waitingRoomRoom } from './waiting-room.js';
import { authenticateWebhook, WEBHOOK_CONTENT_TYPE, WEBHOOK_PATH, webhookRoute } from './webhook.js';
import { TELEHEALTH_PERMISSIONS } from './policy.js';
import { registerTelehealthSchema } from './schema.js';
import { DEFAULT_MAX_UPLOAD_BYTES, DOCUMENT_TYPES } from './documents.js';
import { downloadRoute, uploadRoute } from './document-routes.js';

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
export { SWEEP_JOB as TELEHEALTH_SWEEP_JOB, ADVANCE_JOB as TELEHEALTH_ADVANCE_JOB, type ReminderNotifier, type Reminder } from './jobs.js';
export { authorizeAppointment, loadAppointment, appointmentRooms, transitionAppointment, bookAppointment, type TransitionGuard } from './appointments.js';
export { findOpenSlots, providerAvailability } from './schedules.js';
export { hasCurrentConsent, requireTelehealthConsent, requireRecordingConsents, currentText as currentConsentText, type ConsentSubject } from './consent.js';
export { visitTransition, VISIT_GUARDS } from './visits.js';
export { joinVisit, startRecording, stopRecording, applyWebhook, visitSession, type VisitJoin } from './video.js';
export { WEBHOOK_PATH } from './webhook.js';
export { providerQueue, postRunningLate, postVisitRunningLate, visitRoom, waitingRoomRoom, type QueueEntry } from './waiting-room.js';
export { providerCalendar, type ProviderCalendar } from './calendar.js';
export { LiveKitSimulator, signWebhook } from './video/simulator.js';
export { LiveKitVideoProvider, grantsFor } from './video/livekit.js';
export type { VideoProvider, JoinToken, RecordingInfo } from './video/provider.js';

/** PHI categories of the telehealth module's fields. */
export const TELEHEALTH_PHI_CATEGORIES: Readonly<Record<string, string>> = {
  appointment: 'Appointments of a patient: when, the state of the visit, the reason for the visit and for a cancellation',
  consent: 'Consents a patient gave (telehealth, recording): when, to which version, from which IP address and user agent',
  visit: 'What happened in a video visit: who attended and when, its recordings and where their media is kept',
  chat: 'Messages written in a visit’s chat by its participants, and who read them when',
  vitals: 'Vital signs captured during a visit (blood pressure, heart rate, temperature, SpO2, respiratory rate, weight, height)',
  documents: 'Documents and images shared in a visit (their content, file names and descriptions) and the annotations drawn on them',
  summary: 'The clinician\u2019s summary of a visit: assessment, plan and follow-up',
};

export interface TelehealthOptions {
  /** the clock (epoch ms) the module uses for "in the past", check-in windows and no-shows; tests pass a fake one */
  now?: () => number;
  /** delivers appointment reminders (default: a log line, ids only) */
  notifier?: ReminderNotifier;
  /** the largest shared document accepted, in bytes (default 10 MiB) */
  maxUploadBytes?: number;
}

/** LiveKit when LIVEKIT_URL is set; otherwise the in-repo simulator on 127.0.0.1 with a key of this process (refused in production). */
async function videoProvider(config: Parameters<NonNullable<ModuleManifest['init']>>[0]['config']): Promise<{ video: VideoProvider; simulator?: LiveKitSimulator }> {
  const lk = config.livekit;
  if (lk.url && lk.apiKey && lk.apiSecret) return { video: new LiveKitVideoProvider({ url: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret, kind: 'livekit' }) };
  if (config.isProduction) throw new Error('telehealth: LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are required when NODE_ENV=production (the LiveKit simulator is refused)');
  const apiKey = 'carebase-dev';
  const apiSecret = randomBytes(32).toString('base64url');
  const simulator = await LiveKitSimulator.start({ apiKey, apiSecret });
  return { simulator, video: new LiveKitVideoProvider({ url: simulator.url, apiKey, apiSecret, kind: 'development' }) };
}

const encounterLookup: ResourceLookup = async (db, id) => {
  if (!isUuid(id)) return false;
  const [row] = await db.select({ id: telehealthAppointments.id }).from(telehealthAppointments).where(eq(telehealthAppointments.id, id)).limit(1);
  return !!row;
};

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
    // encounters other modules link to (a prescription's visit): an appointment of the current tenant (RLS)
    provides: { [resourceLookupKey('encounter')]: encounterLookup },
    // socket rooms: visit:<appointmentId> (its patient, the tenant's staff), waitingRoom:<providerId> (staff with telehealth:queue:read)
    roomAccess: { visit: visitRoom, waitingRoom: waitingRoomRoom },
    socketHandlers: waitingRoomHandlers,
    // reminders, no-shows and room cleanup: a sweep per minute (one process per run), then one job per tenant with work
    jobs: { [SWEEP_JOB]: sweepSchedule, [ADVANCE_JOB]: advanceJob },
    // LiveKit webhooks: verified by this hook (signature on the raw body), then run as the room's tenant
    authenticate: authenticateWebhook,
    async routes(app, deps) {
      // the webhook's body stays a string: its signature covers the exact bytes
      app.addContentTypeParser(WEBHOOK_CONTENT_TYPE, { parseAs: 'string' }, (_req, body, done) => done(null, body));
      const inst = deps.instances.get<TelehealthInstance>(TELEHEALTH);
      if (inst.simulator) {
        // development: the simulator posts its webhooks to this app once it listens
        const sim = inst.simulator;
        app.addHook('onListen', async function () {
          const addr = this.server.address() as AddressInfo | null;
          if (addr && typeof addr === 'object') sim.webhookUrl ??= `http://127.0.0.1:${addr.port}${WEBHOOK_PATH}`;
        });
      }
      deps.route!(webhookRoute);
      // shared documents: the bytes as sent (one of the accepted types), up to the module's limit
      const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
      app.addContentTypeParser(Object.keys(DOCUMENT_TYPES), { parseAs: 'buffer', bodyLimit: maxUploadBytes }, (_req, body, done) => done(null, body));
      deps.route!(uploadRoute);
      deps.route!(downloadRoute);
    },
    async init(deps): Promise<TelehealthInstance> {
      const { video, simulator } = await videoProvider(deps.config);
      return {
        now: options.now ?? Date.now,
        crypto: deps.crypto,
        blobs: deps.blobs,
        maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
        video,
        simulator,
        joinTokenTtlMinutes: deps.config.livekit.tokenTtlMinutes,
        jobs: deps.config.telehealth,
        notifier: options.notifier ?? logNotifier(deps.log),
        async close() {
          await video.close();
          await simulator?.close();
        },
      };
    },
  };
}

const manifest: ModuleManifest = createTelehealthModule();
export default manifest;
