import { sql } from 'drizzle-orm';
import { bigint, boolean, check, date, foreignKey, index, integer, jsonb, numeric, pgTable, primaryKey, smallint, text, time, timestamp, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
// column.js directly (not index.ts): drizzle-kit loads this file, and index.ts pulls in the db layer
import { encryptedColumn } from '../../platform/crypto/column.js';
import { id, tenantId, timestamps } from '../../platform/db/tables.js';

/**
 * Telehealth tables (every one tenant-owned: RLS + the tenant filter in every
 * query). Times are timestamptz (UTC); weekly hours and exceptions are local
 * wall-clock times in the provider's IANA time zone, turned into instants per
 * day by the slot engine (time.ts), so daylight-saving changes are handled
 * where they happen. Appointments carry the no-double-booking exclusion
 * constraint (hand-written in the migration: btree_gist over tenant,
 * provider and tstzrange(starts_at, blocked_until)).
 *
 * Other features (in-visit chat, vitals, documents, reminders) reference an
 * appointment with a composite foreign key on (tenant_id, id)
 * (`telehealth_appointments_tenant_id_id_key`).
 */

const tstz = (name: string) => timestamp(name, { withTimezone: true });

export const MODALITIES = ['video', 'in_person'] as const;
export type Modality = (typeof MODALITIES)[number];

export const APPOINTMENT_STATUSES = ['scheduled', 'checked_in', 'waiting', 'in_progress', 'completed', 'cancelled', 'no_show'] as const;
export type AppointmentStatus = (typeof APPOINTMENT_STATUSES)[number];

export const EXCEPTION_KINDS = ['unavailable', 'available'] as const;
export type ExceptionKind = (typeof EXCEPTION_KINDS)[number];

/** A provider's scheduling profile: the IANA time zone their weekly hours and exceptions are written in. */
export const telehealthProviderSchedules = pgTable(
  'telehealth_provider_schedules',
  {
    tenantId: tenantId(),
    /** the provider's user id (identity users; PROVIDER role) */
    providerId: uuid('provider_id').notNull(),
    /** IANA time zone, e.g. America/New_York */
    timeZone: text('time_zone').notNull(),
    updatedBy: uuid('updated_by'),
    ...timestamps(),
  },
  (t) => [primaryKey({ name: 'telehealth_provider_schedules_pkey', columns: [t.tenantId, t.providerId] })],
);

/** Weekly hours: on ISO weekday `weekday` (1 = Monday), from `start_time` to `end_time` local time. */
export const telehealthWeeklyHours = pgTable(
  'telehealth_weekly_hours',
  {
    id: id(),
    tenantId: tenantId(),
    providerId: uuid('provider_id').notNull(),
    weekday: smallint('weekday').notNull(),
    startTime: time('start_time').notNull(),
    endTime: time('end_time').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('telehealth_weekly_hours_provider_idx').on(t.tenantId, t.providerId, t.weekday),
    foreignKey({ name: 'telehealth_weekly_hours_schedule_fkey', columns: [t.tenantId, t.providerId], foreignColumns: [telehealthProviderSchedules.tenantId, telehealthProviderSchedules.providerId] }).onDelete('cascade'),
    check('telehealth_weekly_hours_weekday_check', sql`${t.weekday} between 1 and 7`),
    check('telehealth_weekly_hours_range_check', sql`${t.startTime} < ${t.endTime}`),
  ],
);

/**
 * Exceptions on one local date (in the provider's time zone): `unavailable`
 * (time off; no times = the whole day) or `available` (extra hours). A row
 * without provider is a tenant-wide holiday (always `unavailable`), applied
 * to each provider's own local date.
 */
export const telehealthAvailabilityExceptions = pgTable(
  'telehealth_availability_exceptions',
  {
    id: id(),
    tenantId: tenantId(),
    /** null: every provider of the tenant (a holiday) */
    providerId: uuid('provider_id'),
    date: date('date', { mode: 'string' }).notNull(),
    kind: text('kind', { enum: EXCEPTION_KINDS }).notNull(),
    startTime: time('start_time'),
    endTime: time('end_time'),
    /** short label shown on the calendar ("Public holiday"); no PHI */
    label: text('label'),
    createdBy: uuid('created_by'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('telehealth_exceptions_date_idx').on(t.tenantId, t.date),
    check('telehealth_exceptions_times_check', sql`(${t.startTime} is null) = (${t.endTime} is null) and (${t.startTime} is null or ${t.startTime} < ${t.endTime})`),
    check('telehealth_exceptions_available_check', sql`${t.kind} = 'unavailable' or (${t.startTime} is not null and ${t.providerId} is not null)`),
  ],
);

/** Visit types: how long a visit lasts, whether it is a video or in-person visit, and the buffer kept free after it. */
export const telehealthVisitTypes = pgTable(
  'telehealth_visit_types',
  {
    id: id(),
    tenantId: tenantId(),
    /** stable per-tenant code, e.g. follow-up-video */
    code: text('code').notNull(),
    name: text('name').notNull(),
    durationMinutes: integer('duration_minutes').notNull(),
    modality: text('modality', { enum: MODALITIES }).notNull(),
    bufferMinutes: integer('buffer_minutes').notNull().default(0),
    active: boolean('active').notNull().default(true),
    ...timestamps(),
  },
  (t) => [
    unique('telehealth_visit_types_tenant_code_key').on(t.tenantId, t.code),
    unique('telehealth_visit_types_tenant_id_id_key').on(t.tenantId, t.id),
    check('telehealth_visit_types_duration_check', sql`${t.durationMinutes} between 5 and 480`),
    check('telehealth_visit_types_buffer_check', sql`${t.bufferMinutes} between 0 and 240`),
  ],
);

/**
 * Appointments (a visit once it starts). `blocked_until` = ends_at + the
 * visit type's buffer: the provider's time taken by the appointment is
 * [starts_at, blocked_until), and the exclusion constraint
 * telehealth_appointments_no_overlap refuses two such ranges of one provider
 * that overlap (cancelled and no-show appointments free their time).
 */
export const telehealthAppointments = pgTable(
  'telehealth_appointments',
  {
    id: id(),
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    providerId: uuid('provider_id').notNull(),
    visitTypeId: uuid('visit_type_id').notNull(),
    modality: text('modality', { enum: MODALITIES }).notNull(),
    startsAt: tstz('starts_at').notNull(),
    endsAt: tstz('ends_at').notNull(),
    blockedUntil: tstz('blocked_until').notNull(),
    status: text('status', { enum: APPOINTMENT_STATUSES }).notNull().default('scheduled'),
    /** why the patient comes, as written at booking (PHI: clinical) */
    reason: text('reason'),
    /** the video room of the visit (video visits), `visit_<id>` */
    roomName: text('room_name'),
    bookedBy: uuid('booked_by'),
    /** time zone the booking was made in (the caller's), for notices */
    bookedTimeZone: text('booked_time_zone'),
    checkedInAt: tstz('checked_in_at'),
    waitingSince: tstz('waiting_since'),
    admittedAt: tstz('admitted_at'),
    completedAt: tstz('completed_at'),
    cancelledAt: tstz('cancelled_at'),
    cancelledBy: uuid('cancelled_by'),
    /** why it was cancelled, as written (PHI: may name a condition) */
    cancelReason: text('cancel_reason'),
    noShowAt: tstz('no_show_at'),
    /** latest "provider running late" notice: expected delay in minutes, and when it was given */
    lateByMinutes: integer('late_by_minutes'),
    lateNoticeAt: tstz('late_notice_at'),
    rescheduleCount: integer('reschedule_count').notNull().default(0),
    /** bumped by every change (optimistic concurrency for clients, ordering of notices) */
    version: integer('version').notNull().default(1),
    ...timestamps(),
  },
  (t) => [
    unique('telehealth_appointments_tenant_id_id_key').on(t.tenantId, t.id),
    uniqueIndex('telehealth_appointments_room_key').on(t.roomName).where(sql`${t.roomName} is not null`),
    index('telehealth_appointments_provider_idx').on(t.tenantId, t.providerId, t.startsAt),
    index('telehealth_appointments_patient_idx').on(t.tenantId, t.patientId, t.startsAt),
    index('telehealth_appointments_queue_idx').on(t.tenantId, t.providerId, t.status, t.waitingSince),
    foreignKey({ name: 'telehealth_appointments_visit_type_fkey', columns: [t.tenantId, t.visitTypeId], foreignColumns: [telehealthVisitTypes.tenantId, telehealthVisitTypes.id] }),
    check('telehealth_appointments_range_check', sql`${t.startsAt} < ${t.endsAt} and ${t.endsAt} <= ${t.blockedUntil}`),
    check('telehealth_appointments_cancel_check', sql`(${t.status} = 'cancelled') = (${t.cancelledAt} is not null)`),
  ],
);

/** Every state change of an appointment (the history; the audit log holds the access, the outbox the event). */
export const telehealthAppointmentTransitions = pgTable(
  'telehealth_appointment_transitions',
  {
    id: id(),
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    /** null for the booking itself */
    fromStatus: text('from_status', { enum: APPOINTMENT_STATUSES }),
    toStatus: text('to_status', { enum: APPOINTMENT_STATUSES }).notNull(),
    /** book, reschedule, check_in, wait, admit, complete, cancel, no_show */
    action: text('action').notNull(),
    /** who: a user id, or system:<job> */
    actor: text('actor').notNull(),
    /** previous start when rescheduled */
    previousStartsAt: tstz('previous_starts_at'),
    at: tstz('at').notNull().defaultNow(),
  },
  (t) => [
    index('telehealth_transitions_appointment_idx').on(t.tenantId, t.appointmentId, t.at),
    foreignKey({ name: 'telehealth_transitions_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }).onDelete('cascade'),
  ],
);

export const CONSENT_KINDS = ['telehealth', 'recording'] as const;
export type ConsentKind = (typeof CONSENT_KINDS)[number];

/**
 * Consent texts per tenant and kind, versioned: publishing a new text makes
 * it the current version (the highest); consents to older versions no longer
 * count. Texts are never changed or deleted (a new version instead).
 */
export const telehealthConsentTexts = pgTable(
  'telehealth_consent_texts',
  {
    id: id(),
    tenantId: tenantId(),
    kind: text('kind', { enum: CONSENT_KINDS }).notNull(),
    version: integer('version').notNull(),
    title: text('title').notNull(),
    body: text('body').notNull(),
    publishedBy: uuid('published_by'),
    publishedAt: tstz('published_at').notNull().defaultNow(),
  },
  (t) => [
    unique('telehealth_consent_texts_version_key').on(t.tenantId, t.kind, t.version),
    unique('telehealth_consent_texts_tenant_id_id_key').on(t.tenantId, t.id),
    check('telehealth_consent_texts_version_check', sql`${t.version} > 0`),
  ],
);

/**
 * A consent given: who (a patient record, or a staff user for themselves),
 * to which text version, when, from where (IP, user agent), recorded by whom
 * (the patient themselves, or staff on their behalf). A recording consent
 * may be limited to one appointment. Withdrawing keeps the row.
 */
export const telehealthConsents = pgTable(
  'telehealth_consents',
  {
    id: id(),
    tenantId: tenantId(),
    kind: text('kind', { enum: CONSENT_KINDS }).notNull(),
    consentTextId: uuid('consent_text_id').notNull(),
    version: integer('version').notNull(),
    /** the patient who consents (null: a staff user consenting for themselves) */
    patientId: uuid('patient_id'),
    /** the staff user who consents for themselves (null: a patient) */
    userId: uuid('user_id'),
    /** only for this appointment (recording consents); null: every visit */
    appointmentId: uuid('appointment_id'),
    /** who recorded it: a user or API key id */
    recordedBy: text('recorded_by').notNull(),
    /** staff recorded the patient's consent on their behalf (e.g. given verbally) */
    onBehalf: boolean('on_behalf').notNull().default(false),
    ip: text('ip'),
    userAgent: text('user_agent'),
    consentedAt: tstz('consented_at').notNull().defaultNow(),
    withdrawnAt: tstz('withdrawn_at'),
    withdrawnBy: text('withdrawn_by'),
  },
  (t) => [
    index('telehealth_consents_patient_idx').on(t.tenantId, t.patientId, t.kind),
    index('telehealth_consents_user_idx').on(t.tenantId, t.userId, t.kind),
    foreignKey({ name: 'telehealth_consents_text_fkey', columns: [t.tenantId, t.consentTextId], foreignColumns: [telehealthConsentTexts.tenantId, telehealthConsentTexts.id] }),
    foreignKey({ name: 'telehealth_consents_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
    check('telehealth_consents_subject_check', sql`(${t.patientId} is null) <> (${t.userId} is null)`),
    check('telehealth_consents_appointment_check', sql`${t.appointmentId} is null or ${t.kind} = 'recording'`),
  ],
);

/**
 * The video room of a visit at the provider, and what its webhooks told us:
 * when the room started and finished, the visit's actual start (first join)
 * and end, its duration. Every time is folded in with least/greatest, so
 * webhooks may arrive in any order.
 */
export const telehealthVideoRooms = pgTable(
  'telehealth_video_rooms',
  {
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    roomName: text('room_name').notNull(),
    /** livekit | development */
    provider: text('provider').notNull(),
    openedAt: tstz('opened_at').notNull().defaultNow(),
    roomStartedAt: tstz('room_started_at'),
    roomFinishedAt: tstz('room_finished_at'),
    /** first participant joined / last one left (or the room finished) */
    actualStartAt: tstz('actual_start_at'),
    actualEndAt: tstz('actual_end_at'),
    durationSeconds: integer('duration_seconds'),
    lastEventAt: tstz('last_event_at'),
    /** closed at the provider by the cleanup job once the visit reached a final status */
    closedAt: tstz('closed_at'),
  },
  (t) => [
    primaryKey({ name: 'telehealth_video_rooms_pkey', columns: [t.tenantId, t.appointmentId] }),
    uniqueIndex('telehealth_video_rooms_room_key').on(t.roomName),
    foreignKey({ name: 'telehealth_video_rooms_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

/** One connection of a participant to a visit's room (a rejoin is another row: another participant sid). */
export const telehealthRoomParticipants = pgTable(
  'telehealth_room_participants',
  {
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    /** the provider's participant sid of this connection */
    participantSid: text('participant_sid').notNull(),
    /** the token identity, user:<userId> */
    identity: text('identity').notNull(),
    userId: uuid('user_id'),
    /** provider | patient | other (from the visit) */
    role: text('role').notNull(),
    joinedAt: tstz('joined_at'),
    leftAt: tstz('left_at'),
  },
  (t) => [
    primaryKey({ name: 'telehealth_room_participants_pkey', columns: [t.tenantId, t.appointmentId, t.participantSid] }),
    foreignKey({ name: 'telehealth_room_participants_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

/** Provider webhooks received, by the provider's event id: each is processed once (a replay finds its row). */
export const telehealthWebhookEvents = pgTable(
  'telehealth_webhook_events',
  {
    tenantId: tenantId(),
    provider: text('provider').notNull(),
    eventId: text('event_id').notNull(),
    event: text('event').notNull(),
    roomName: text('room_name'),
    appointmentId: uuid('appointment_id'),
    /** when the provider says it happened */
    occurredAt: tstz('occurred_at').notNull(),
    receivedAt: tstz('received_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('telehealth_webhook_events_event_key').on(t.provider, t.eventId),
    index('telehealth_webhook_events_appointment_idx').on(t.tenantId, t.appointmentId, t.occurredAt),
  ],
);

export const RECORDING_STATUSES = ['starting', 'active', 'ending', 'complete', 'failed', 'aborted'] as const;
export type RecordingStatus = (typeof RECORDING_STATUSES)[number];

/**
 * Recordings of a visit (egress). The media stays with the provider; its
 * location is envelope-encrypted (FieldCrypto), only metadata is plain.
 */
export const telehealthRecordings = pgTable(
  'telehealth_recordings',
  {
    id: id(),
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    egressId: text('egress_id').notNull(),
    status: text('status', { enum: RECORDING_STATUSES }).notNull(),
    /** envelope of the provider's location of the media (file path, bucket key) */
    location: encryptedColumn('location'),
    startedBy: uuid('started_by'),
    stoppedBy: uuid('stopped_by'),
    startedAt: tstz('started_at').notNull(),
    endedAt: tstz('ended_at'),
    sizeBytes: bigint('size_bytes', { mode: 'number' }),
    durationMs: bigint('duration_ms', { mode: 'number' }),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('telehealth_recordings_egress_key').on(t.egressId),
    index('telehealth_recordings_appointment_idx').on(t.tenantId, t.appointmentId, t.startedAt),
    foreignKey({ name: 'telehealth_recordings_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

export type ProviderSchedule = typeof telehealthProviderSchedules.$inferSelect;
export type WeeklyHours = typeof telehealthWeeklyHours.$inferSelect;
export type AvailabilityException = typeof telehealthAvailabilityExceptions.$inferSelect;
export type VisitType = typeof telehealthVisitTypes.$inferSelect;
export type Appointment = typeof telehealthAppointments.$inferSelect;
export type AppointmentTransition = typeof telehealthAppointmentTransitions.$inferSelect;
export type ConsentText = typeof telehealthConsentTexts.$inferSelect;
export type Consent = typeof telehealthConsents.$inferSelect;
export type VideoRoom = typeof telehealthVideoRooms.$inferSelect;
export type RoomParticipant = typeof telehealthRoomParticipants.$inferSelect;
export type Recording = typeof telehealthRecordings.$inferSelect;



/**
 * Appointment reminders sent (one row per appointment and offset: a reminder is sent once, whatever the number of
 * sweeps or processes). The notice itself names no PHI: ids, the start and the channel.
 */
export const telehealthReminders = pgTable(
  'telehealth_reminders',
  {
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    /** minutes before the start the reminder is for (TELEHEALTH_REMINDER_OFFSETS_MINUTES, default 1440 and 60) */
    offsetMinutes: integer('offset_minutes').notNull(),
    channel: text('channel').notNull(),
    sentAt: tstz('sent_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: 'telehealth_reminders_pkey', columns: [t.tenantId, t.appointmentId, t.offsetMinutes] }),
    foreignKey({ name: 'telehealth_reminders_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

/** Chat of a visit between its participants (PHI: the text is encrypted at rest with the field key of this column). */
export const telehealthChatMessages = pgTable(
  'telehealth_chat_messages',
  {
    id: id(),
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    senderUserId: uuid('sender_user_id').notNull(),
    /** provider, patient or other (staff in the visit) */
    senderRole: text('sender_role').notNull(),
    /** the client's id of the message: a resend is the same message */
    clientMessageId: text('client_message_id').notNull(),
    body: encryptedColumn('body').notNull(),
    sentAt: tstz('sent_at').notNull().defaultNow(),
  },
  (t) => [
    unique('telehealth_chat_messages_client_key').on(t.tenantId, t.appointmentId, t.senderUserId, t.clientMessageId),
    index('telehealth_chat_messages_visit_idx').on(t.tenantId, t.appointmentId, t.sentAt),
    foreignKey({ name: 'telehealth_chat_messages_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

/** Read receipts: how far each participant has read a visit's chat. */
export const telehealthChatReads = pgTable(
  'telehealth_chat_reads',
  {
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    userId: uuid('user_id').notNull(),
    lastReadAt: tstz('last_read_at').notNull(),
  },
  (t) => [
    primaryKey({ name: 'telehealth_chat_reads_pkey', columns: [t.tenantId, t.appointmentId, t.userId] }),
    foreignKey({ name: 'telehealth_chat_reads_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

/** Vital signs captured during a visit (PHI), with their LOINC code and unit as entered. */
export const telehealthVitals = pgTable(
  'telehealth_vitals',
  {
    id: id(),
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    kind: text('kind').notNull(),
    loinc: text('loinc').notNull(),
    value: numeric('value', { mode: 'number' }).notNull(),
    /** the diastolic pressure of a blood pressure */
    value2: numeric('value2', { mode: 'number' }),
    unit: text('unit').notNull(),
    recordedBy: uuid('recorded_by'),
    recordedAt: tstz('recorded_at').notNull().defaultNow(),
  },
  (t) => [
    index('telehealth_vitals_visit_idx').on(t.tenantId, t.appointmentId, t.recordedAt),
    foreignKey({ name: 'telehealth_vitals_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

/**
 * Documents and images shared in a visit. The bytes live in the platform blob store (key `blob_key`), encrypted with
 * an envelope bound to the tenant before they leave the process; the row keeps the plaintext's sha256 (checked on every
 * download, so a blob swapped for another of the tenant is refused). The file name and description are PHI (encrypted).
 */
export const telehealthDocuments = pgTable(
  'telehealth_documents',
  {
    id: id(),
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    uploadedBy: uuid('uploaded_by').notNull(),
    /** provider, patient or other (staff in the visit) */
    uploaderRole: text('uploader_role').notNull(),
    fileName: encryptedColumn('file_name').notNull(),
    description: encryptedColumn('description'),
    contentType: text('content_type').notNull(),
    sizeBytes: integer('size_bytes').notNull(),
    sha256: text('sha256').notNull(),
    blobKey: text('blob_key').notNull(),
    /** image width and height in pixels (PNG, JPEG, WebP), for placing annotations; null for a PDF */
    width: integer('width'),
    height: integer('height'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('telehealth_documents_tenant_id_id_key').on(t.tenantId, t.id),
    index('telehealth_documents_visit_idx').on(t.tenantId, t.appointmentId, t.createdAt),
    check('telehealth_documents_size_check', sql`${t.sizeBytes} > 0`),
    foreignKey({ name: 'telehealth_documents_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

/**
 * Annotations on a shared image: shapes as data (never burnt into the image), in coordinates relative to the image
 * (0..1 from the top-left corner), with an optional note (PHI, encrypted). Removing one keeps the row (removedAt/By).
 */
export const telehealthAnnotations = pgTable(
  'telehealth_annotations',
  {
    id: id(),
    tenantId: tenantId(),
    documentId: uuid('document_id').notNull(),
    appointmentId: uuid('appointment_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    authorId: uuid('author_id').notNull(),
    /** [{ type, points: [{x, y}], color }] validated by the service */
    shapes: jsonb('shapes').notNull(),
    note: encryptedColumn('note'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    removedAt: tstz('removed_at'),
    removedBy: uuid('removed_by'),
  },
  (t) => [
    index('telehealth_annotations_document_idx').on(t.tenantId, t.documentId, t.createdAt),
    foreignKey({ name: 'telehealth_annotations_document_fkey', columns: [t.tenantId, t.documentId], foreignColumns: [telehealthDocuments.tenantId, telehealthDocuments.id] }),
  ],
);

/** The provider's written summary of a visit (assessment, plan, follow-up), one per visit, versioned by updates. */
export const telehealthVisitSummaries = pgTable(
  'telehealth_visit_summaries',
  {
    id: id(),
    tenantId: tenantId(),
    appointmentId: uuid('appointment_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    body: encryptedColumn('body').notNull(),
    followUp: encryptedColumn('follow_up'),
    authorId: uuid('author_id').notNull(),
    version: integer('version').notNull().default(1),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    unique('telehealth_visit_summaries_visit_key').on(t.tenantId, t.appointmentId),
    foreignKey({ name: 'telehealth_visit_summaries_appointment_fkey', columns: [t.tenantId, t.appointmentId], foreignColumns: [telehealthAppointments.tenantId, telehealthAppointments.id] }),
  ],
);

export const telehealthTables = {
  telehealthDocuments,
  telehealthAnnotations,
  telehealthVisitSummaries,
  telehealthChatMessages,
  telehealthChatReads,
  telehealthVitals,
  telehealthReminders,
  telehealthProviderSchedules,
  telehealthWeeklyHours,
  telehealthAvailabilityExceptions,
  telehealthVisitTypes,
  telehealthAppointments,
  telehealthAppointmentTransitions,
  telehealthConsentTexts,
  telehealthConsents,
  telehealthVideoRooms,
  telehealthRoomParticipants,
  telehealthWebhookEvents,
  telehealthRecordings,
};
