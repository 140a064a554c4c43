import type { Builder, RequestContext } from '../../schema/index.js';
import {
  bookAppointment,
  getAppointment,
  listAppointments,
  rescheduleAppointment,
  type AppointmentPage,
} from './appointments.js';
import {
  addAvailabilityException,
  availabilityExceptions,
  createVisitType,
  findOpenSlots,
  getProviderSchedule,
  listVisitTypes,
  providerNames,
  removeAvailabilityException,
  setProviderAvailability,
  updateVisitType,
  type OpenSlot,
  type ProviderScheduleView,
} from './schedules.js';
import { registerVisitSchema } from './visit-schema.js';
import { registerInVisitSchema } from './in-visit-schema.js';
import { registerDocumentsSchema } from './documents-schema.js';
import { postRunningLate, postVisitRunningLate, providerQueue, type QueueEntry } from './waiting-room.js';
import { providerCalendar, type ProviderCalendar } from './calendar.js';
import { visitTransition } from './visits.js';
import { APPOINTMENT_STATUSES, EXCEPTION_KINDS, MODALITIES, type Appointment, type AvailabilityException, type VisitType } from './tables.js';

/**
 * Telehealth GraphQL: thin fields over the services. Appointments are PHI
 * (`phi: 'appointment'` on their fields, phiResource = the patient): every
 * resolution is audited; the services record each change themselves (the
 * same entry for every door).
 */

const upperEnum = <T extends string>(values: readonly T[]) =>
  Object.fromEntries(values.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<T>, { value: T }>;

export function registerTelehealthSchema(builder: Builder): void {
  const ModalityEnum = builder.enumType('VisitModality', { values: upperEnum(MODALITIES) });
  const StatusEnum = builder.enumType('AppointmentStatus', {
    description: 'SCHEDULED → CHECKED_IN → WAITING → IN_PROGRESS → COMPLETED; or CANCELLED, NO_SHOW',
    values: upperEnum(APPOINTMENT_STATUSES),
  });
  const ExceptionKindEnum = builder.enumType('AvailabilityExceptionKind', {
    description: 'UNAVAILABLE: time off (no times = the whole day); AVAILABLE: extra hours',
    values: upperEnum(EXCEPTION_KINDS),
  });

  // ---------------------------------------------------------------- schedules
  const VisitTypeRef = builder.objectRef<VisitType>('TelehealthVisitType').implement({
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (v) => v.id }),
      code: t.exposeString('code'),
      name: t.exposeString('name'),
      durationMinutes: t.exposeInt('durationMinutes'),
      bufferMinutes: t.exposeInt('bufferMinutes', { description: 'kept free after each visit of this type' }),
      modality: t.field({ type: ModalityEnum, resolve: (v) => v.modality }),
      active: t.exposeBoolean('active'),
    }),
  });
  const WeeklyHoursRef = builder.objectRef<ProviderScheduleView['weeklyHours'][number]>('WeeklyHours').implement({
    fields: (t) => ({
      weekday: t.exposeInt('weekday', { description: 'ISO weekday: 1 = Monday … 7 = Sunday' }),
      startTime: t.exposeString('startTime', { description: 'HH:MM, the provider’s local time' }),
      endTime: t.exposeString('endTime', { description: 'HH:MM (24:00 = midnight), the provider’s local time' }),
    }),
  });
  const ScheduleRef = builder.objectRef<ProviderScheduleView>('ProviderSchedule').implement({
    fields: (t) => ({
      providerId: t.field({ type: 'UUID', resolve: (s) => s.providerId }),
      timeZone: t.exposeString('timeZone', { description: 'IANA time zone the weekly hours are written in' }),
      weeklyHours: t.field({ type: [WeeklyHoursRef], resolve: (s) => s.weeklyHours }),
    }),
  });
  const ExceptionRef = builder.objectRef<AvailabilityException>('AvailabilityException').implement({
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (e) => e.id }),
      providerId: t.field({ type: 'UUID', nullable: true, description: 'null: a tenant holiday', resolve: (e) => e.providerId }),
      date: t.field({ type: 'Date', description: 'the provider’s local date', resolve: (e) => e.date }),
      kind: t.field({ type: ExceptionKindEnum, resolve: (e) => e.kind }),
      startTime: t.string({ nullable: true, resolve: (e) => (e.startTime ? e.startTime.slice(0, 5) : null) }),
      endTime: t.string({ nullable: true, resolve: (e) => (e.endTime ? e.endTime.slice(0, 5) : null) }),
      label: t.string({ nullable: true, resolve: (e) => e.label }),
    }),
  });
  const SlotRef = builder.objectRef<OpenSlot>('OpenSlot').implement({
    fields: (t) => ({
      providerId: t.field({ type: 'UUID', resolve: (s) => s.providerId }),
      visitTypeId: t.field({ type: 'UUID', resolve: (s) => s.visitTypeId }),
      startsAt: t.field({ type: 'DateTime', resolve: (s) => new Date(s.start) }),
      endsAt: t.field({ type: 'DateTime', resolve: (s) => new Date(s.end) }),
      timeZone: t.exposeString('timeZone', { description: 'the zone of localStart/localEnd/localDate (the one asked for)' }),
      localStart: t.exposeString('localStart', { description: 'ISO 8601 with the zone’s offset at that instant' }),
      localEnd: t.exposeString('localEnd'),
      localDate: t.field({ type: 'Date', resolve: (s) => s.localDate }),
    }),
  });

  const WeeklyHoursInput = builder.inputType('WeeklyHoursInput', {
    fields: (t) => ({
      weekday: t.int({ required: true, description: '1 = Monday … 7 = Sunday' }),
      startTime: t.string({ required: true, description: 'HH:MM' }),
      endTime: t.string({ required: true, description: 'HH:MM (24:00 = midnight)' }),
    }),
  });
  const AvailabilityInput = builder.inputType('SetProviderAvailabilityInput', {
    fields: (t) => ({
      providerId: t.field({ type: 'UUID', required: true }),
      timeZone: t.string({ required: true, description: 'IANA time zone, e.g. America/New_York' }),
      weeklyHours: t.field({ type: [WeeklyHoursInput], required: true, description: 'replaces every range' }),
    }),
  });
  const ExceptionInput = builder.inputType('AvailabilityExceptionInput', {
    fields: (t) => ({
      providerId: t.field({ type: 'UUID', required: false, description: 'omit for a tenant holiday (administrators)' }),
      date: t.field({ type: 'Date', required: true, description: 'the provider’s local date' }),
      kind: t.field({ type: ExceptionKindEnum, required: true }),
      startTime: t.string({ required: false, description: 'HH:MM; omit both times for the whole day' }),
      endTime: t.string({ required: false }),
      label: t.string({ required: false, description: 'shown on calendars, e.g. "Public holiday" (no patient data)' }),
    }),
  });
  const VisitTypeInput = builder.inputType('CreateVisitTypeInput', {
    fields: (t) => ({
      code: t.string({ required: true, description: 'stable per-tenant code, a-z 0-9 -' }),
      name: t.string({ required: true }),
      durationMinutes: t.int({ required: true }),
      modality: t.field({ type: ModalityEnum, required: true }),
      bufferMinutes: t.int({ required: false, defaultValue: 0 }),
    }),
  });
  const VisitTypeUpdate = builder.inputType('UpdateVisitTypeInput', {
    description: 'Only the fields given change. Booked appointments keep their times.',
    fields: (t) => ({
      name: t.string({ required: false }),
      durationMinutes: t.int({ required: false }),
      bufferMinutes: t.int({ required: false }),
      active: t.boolean({ required: false, description: 'false retires the type: no new bookings' }),
    }),
  });

  // ---------------------------------------------------------------- appointments
  type Named = Appointment & { __providerName?: string };
  const AppointmentRef = builder.objectRef<Named>('Appointment').implement({
    description: 'A booked visit. Its patient, times, reason and state are PHI (every read is audited).',
    phiResource: { patientId: (a) => a.patientId, resourceType: 'Appointment' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (a) => a.id }),
      patientId: t.field({ type: 'UUID', phi: 'appointment', resolve: (a) => a.patientId }),
      providerId: t.field({ type: 'UUID', resolve: (a) => a.providerId }),
      providerName: t.string({
        nullable: true,
        resolve: async (a, _args, ctx) => a.__providerName ?? (await providerNames(await ctx.db(), a.tenantId, [a.providerId])).get(a.providerId) ?? null,
      }),
      visitTypeId: t.field({ type: 'UUID', resolve: (a) => a.visitTypeId }),
      modality: t.field({ type: ModalityEnum, resolve: (a) => a.modality }),
      status: t.field({ type: StatusEnum, phi: 'appointment', resolve: (a) => a.status }),
      startsAt: t.field({ type: 'DateTime', phi: 'appointment', resolve: (a) => a.startsAt }),
      endsAt: t.field({ type: 'DateTime', phi: 'appointment', resolve: (a) => a.endsAt }),
      reason: t.string({ nullable: true, phi: 'appointment', description: 'why the patient comes, as written at booking', resolve: (a) => a.reason }),
      cancelReason: t.string({ nullable: true, phi: 'appointment', resolve: (a) => a.cancelReason }),
      cancelledAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.cancelledAt }),
      checkedInAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.checkedInAt }),
      waitingSince: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.waitingSince }),
      admittedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.admittedAt }),
      completedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.completedAt }),
      noShowAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.noShowAt }),
      lateByMinutes: t.int({ nullable: true, description: 'the provider’s latest running-late notice', resolve: (a) => a.lateByMinutes }),
      rescheduleCount: t.exposeInt('rescheduleCount'),
      version: t.exposeInt('version', { description: 'bumped by every change' }),
    }),
  });
  const EdgeRef = builder.objectRef<{ cursor: string; node: Appointment }>('AppointmentEdge').implement({
    fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: AppointmentRef, resolve: (e) => e.node }) }),
  });
  const PageInfoRef = builder.objectRef<{ endCursor: string | null; hasNextPage: boolean }>('AppointmentPageInfo').implement({
    fields: (t) => ({ endCursor: t.string({ nullable: true, resolve: (p) => p.endCursor }), hasNextPage: t.exposeBoolean('hasNextPage') }),
  });
  const ConnectionRef = builder.objectRef<AppointmentPage>('AppointmentConnection').implement({
    fields: (t) => ({
      edges: t.field({ type: [EdgeRef], resolve: (p) => p.items.map((node, i) => ({ node, cursor: i === p.items.length - 1 && p.endCursor ? p.endCursor : Buffer.from(`${node.startsAt.getTime()}:${node.id}`).toString('base64url') })) }),
      pageInfo: t.field({ type: PageInfoRef, resolve: (p) => ({ endCursor: p.endCursor, hasNextPage: p.hasNextPage }) }),
    }),
  });
  const FilterInput = builder.inputType('AppointmentFilter', {
    fields: (t) => ({
      providerId: t.field({ type: 'UUID', required: false }),
      patientId: t.field({ type: 'UUID', required: false }),
      from: t.field({ type: 'DateTime', required: false, description: 'starting at or after' }),
      to: t.field({ type: 'DateTime', required: false, description: 'starting before' }),
      statuses: t.field({ type: [StatusEnum], required: false }),
    }),
  });
  const BookInput = builder.inputType('BookAppointmentInput', {
    fields: (t) => ({
      patientId: t.field({ type: 'UUID', required: false, description: 'required for staff; a PATIENT user books for their own record (may omit it)' }),
      providerId: t.field({ type: 'UUID', required: true }),
      visitTypeId: t.field({ type: 'UUID', required: true }),
      startsAt: t.field({ type: 'DateTime', required: true, description: 'an open slot’s startsAt (any start inside the provider’s availability)' }),
      reason: t.string({ required: false, description: 'why the patient comes (PHI, up to 1000 characters)' }),
      timeZone: t.string({ required: false, description: 'the caller’s IANA time zone (kept for notices)' }),
    }),
  });

  const auditAppointment = (action: 'create' | 'update') => ({
    action,
    resourceType: 'Appointment',
    patientId: (_a: unknown, r: Appointment | undefined) => r?.patientId,
    resourceId: (a: object, r: Appointment | undefined) => r?.id ?? (typeof (a as { id?: unknown }).id === 'string' ? (a as { id: string }).id : null),
    fields: () => ['Appointment.status'],
  });

  builder.queryFields((t) => ({
    telehealthVisitTypes: t.field({
      type: [VisitTypeRef],
      authScopes: { permission: 'telehealth:schedule:read' },
      args: { includeInactive: t.arg.boolean({ required: false }) },
      resolve: (_r, args, ctx) => listVisitTypes(ctx, { includeInactive: args.includeInactive }),
    }),
    providerSchedule: t.field({
      type: ScheduleRef,
      authScopes: { permission: 'telehealth:schedule:read' },
      args: { providerId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => getProviderSchedule(ctx, args.providerId),
    }),
    availabilityExceptions: t.field({
      type: [ExceptionRef],
      description: 'Time off and extra hours of a provider (with the tenant holidays), or the tenant holidays alone',
      authScopes: { permission: 'telehealth:schedule:read' },
      args: { providerId: t.arg({ type: 'UUID', required: false }), fromDate: t.arg({ type: 'Date', required: true }), toDate: t.arg({ type: 'Date', required: true }) },
      resolve: (_r, args, ctx) => availabilityExceptions(ctx, args),
    }),
    openSlots: t.field({
      type: [SlotRef],
      description: 'Bookable starts of a provider for a visit type, between two local dates of `timeZone` (default: the provider’s), correct across daylight-saving changes',
      authScopes: { permission: 'telehealth:schedule:read' },
      args: {
        providerId: t.arg({ type: 'UUID', required: true }),
        visitTypeId: t.arg({ type: 'UUID', required: true }),
        fromDate: t.arg({ type: 'Date', required: true }),
        toDate: t.arg({ type: 'Date', required: true, description: 'inclusive; at most 62 days after fromDate' }),
        timeZone: t.arg.string({ required: false, description: 'the caller’s IANA time zone' }),
      },
      resolve: (_r, args, ctx) => findOpenSlots(ctx, args),
    }),
    appointment: t.field({
      type: AppointmentRef,
      authScopes: { permission: 'telehealth:appointment:read' },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => getAppointment(ctx, args.id),
    }),
    appointments: t.field({
      type: ConnectionRef,
      description: 'Appointments the caller may read (a patient: their own), ordered by start',
      authScopes: { permission: 'telehealth:appointment:read' },
      args: { filter: t.arg({ type: FilterInput, required: false }), first: t.arg.int({ required: false }), after: t.arg.string({ required: false }) },
      resolve: (_r, args, ctx) => listAppointments(ctx, { ...(args.filter ?? {}), first: args.first, after: args.after }),
    }),
  }));

  const FIELD_OF = { check_in: 'checkInAppointment', wait: 'enterWaitingRoom', admit: 'admitPatient', complete: 'completeVisit', no_show: 'markNoShow' } as const;
  const transition = (name: keyof typeof FIELD_OF, permission: string, description: string) =>
    builder.mutationField(FIELD_OF[name], (t) =>
        t.field({
          type: AppointmentRef,
          description,
          authScopes: { permission },
          audit: auditAppointment('update'),
          args: { id: t.arg({ type: 'UUID', required: true }) },
          resolve: (_r, args, ctx: RequestContext) => visitTransition(ctx, args.id, name),
        }),
    );

  builder.mutationFields((t) => ({
    setProviderAvailability: t.field({
      type: ScheduleRef,
      description: 'Sets a provider’s time zone and weekly hours (a provider: their own)',
      authScopes: { permission: 'telehealth:schedule:manage' },
      args: { input: t.arg({ type: AvailabilityInput, required: true }) },
      resolve: (_r, args, ctx) => setProviderAvailability(ctx, args.input),
    }),
    addAvailabilityException: t.field({
      type: ExceptionRef,
      authScopes: { permission: 'telehealth:schedule:manage' },
      args: { input: t.arg({ type: ExceptionInput, required: true }) },
      resolve: (_r, args, ctx) => addAvailabilityException(ctx, args.input),
    }),
    removeAvailabilityException: t.boolean({
      authScopes: { permission: 'telehealth:schedule:manage' },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => removeAvailabilityException(ctx, args.id),
    }),
    createVisitType: t.field({
      type: VisitTypeRef,
      authScopes: { permission: 'telehealth:settings:manage' },
      args: { input: t.arg({ type: VisitTypeInput, required: true }) },
      resolve: (_r, args, ctx) => createVisitType(ctx, args.input),
    }),
    updateVisitType: t.field({
      type: VisitTypeRef,
      authScopes: { permission: 'telehealth:settings:manage' },
      args: { id: t.arg({ type: 'UUID', required: true }), input: t.arg({ type: VisitTypeUpdate, required: true }) },
      resolve: (_r, args, ctx) => updateVisitType(ctx, args.id, args.input),
    }),
    bookAppointment: t.field({
      type: AppointmentRef,
      description: 'Books a visit. CONFLICT (reason SLOT_TAKEN) when the provider is already booked then, even under concurrent requests.',
      authScopes: { permission: 'telehealth:appointment:book' },
      audit: { ...auditAppointment('create'), fields: () => ['Appointment.startsAt', 'Appointment.providerId', 'Appointment.status'] },
      args: { input: t.arg({ type: BookInput, required: true }) },
      resolve: (_r, args, ctx) => bookAppointment(ctx, args.input),
    }),
    rescheduleAppointment: t.field({
      type: AppointmentRef,
      description: 'Moves a SCHEDULED appointment (same length); CONFLICT when the provider is taken then',
      authScopes: { permission: 'telehealth:appointment:book' },
      audit: { ...auditAppointment('update'), fields: () => ['Appointment.startsAt'] },
      args: { id: t.arg({ type: 'UUID', required: true }), startsAt: t.arg({ type: 'DateTime', required: true }) },
      resolve: (_r, args, ctx) => rescheduleAppointment(ctx, { appointmentId: args.id, startsAt: args.startsAt }),
    }),
    cancelAppointment: t.field({
      type: AppointmentRef,
      description: 'Cancels with a reason (3-500 characters, PHI); frees the provider’s time',
      authScopes: { permission: 'telehealth:appointment:book' },
      audit: auditAppointment('update'),
      args: { id: t.arg({ type: 'UUID', required: true }), reason: t.arg.string({ required: true }) },
      resolve: (_r, args, ctx) => visitTransition(ctx, args.id, 'cancel', { reason: args.reason }),
    }),
  }));
  transition('check_in', 'telehealth:visit:checkin', 'SCHEDULED → CHECKED_IN (opens 60 minutes before the start)');
  transition('wait', 'telehealth:visit:checkin', 'CHECKED_IN → WAITING: the patient is in the virtual waiting room (video visits: needs the current telehealth consent)');
  transition('admit', 'telehealth:visit:conduct', 'WAITING → IN_PROGRESS (the provider of the visit)');
  transition('complete', 'telehealth:visit:conduct', 'IN_PROGRESS → COMPLETED');
  transition('no_show', 'telehealth:visit:conduct', 'SCHEDULED/CHECKED_IN/WAITING → NO_SHOW, once the start has passed');

  // ---------------------------------------------------------------- waiting room and calendar
  const QueueEntryRef = builder.objectRef<QueueEntry>('WaitingRoomEntry').implement({
    fields: (t) => ({
      appointment: t.field({ type: AppointmentRef, resolve: (e) => e.appointment }),
      position: t.int({ nullable: true, description: '1-based place among the waiting patients (null: checked in but not yet waiting, or in progress)', resolve: (e) => e.position }),
      waitedSeconds: t.exposeInt('waitedSeconds', { description: 'since entering the waiting room (since check-in when not yet waiting)' }),
    }),
  });
  const WindowRef = builder.objectRef<{ start: number; end: number; timeZone: string; localStart: string; localEnd: string }>('AvailabilityWindow').implement({
    fields: (t) => ({
      startsAt: t.field({ type: 'DateTime', resolve: (w) => new Date(w.start) }),
      endsAt: t.field({ type: 'DateTime', resolve: (w) => new Date(w.end) }),
      localStart: t.exposeString('localStart'),
      localEnd: t.exposeString('localEnd'),
    }),
  });
  const CalendarRef = builder.objectRef<ProviderCalendar>('ProviderCalendar').implement({
    description: 'A provider’s days between two local dates: availability (weekly hours, exceptions, holidays) and appointments',
    fields: (t) => ({
      providerId: t.field({ type: 'UUID', resolve: (c) => c.providerId }),
      providerTimeZone: t.exposeString('providerTimeZone'),
      timeZone: t.exposeString('timeZone', { description: 'the zone local times are shown in (the one asked for)' }),
      availability: t.field({ type: [WindowRef], resolve: (c) => c.windows }),
      exceptions: t.field({ type: [ExceptionRef], resolve: (c) => c.exceptions }),
      appointments: t.field({
        type: [AppointmentRef],
        description: 'appointments the caller may read (telehealth:appointment:read)',
        authScopes: { permission: 'telehealth:appointment:read' },
        resolve: (c) => c.appointments,
      }),
    }),
  });

  builder.queryFields((t) => ({
    waitingRoomQueue: t.field({
      type: [QueueEntryRef],
      description: 'A provider’s waiting room: waiting patients in order with their wait times, then those checked in, then the visit in progress',
      authScopes: { permission: 'telehealth:queue:read' },
      args: { providerId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => providerQueue(ctx, args.providerId),
    }),
    providerCalendar: t.field({
      type: CalendarRef,
      authScopes: { permission: 'telehealth:schedule:read' },
      args: {
        providerId: t.arg({ type: 'UUID', required: true }),
        fromDate: t.arg({ type: 'Date', required: true }),
        toDate: t.arg({ type: 'Date', required: true, description: 'inclusive; at most 62 days after fromDate' }),
        timeZone: t.arg.string({ required: false, description: 'the caller’s IANA zone (default: the provider’s)' }),
      },
      resolve: (_r, args, ctx) => providerCalendar(ctx, args),
    }),
  }));
  builder.mutationFields((t) => ({
    postRunningLate: t.field({
      type: [AppointmentRef],
      description: '“Provider running late”: the expected delay in minutes (0: on time again) for every visit of the provider in the next 12 hours that you conduct; each gets appointment.providerLate',
      authScopes: { permission: 'telehealth:visit:conduct' },
      args: { providerId: t.arg({ type: 'UUID', required: true }), minutes: t.arg.int({ required: true }) },
      resolve: (_r, args, ctx) => postRunningLate(ctx, args),
    }),
    postVisitRunningLate: t.field({
      type: AppointmentRef,
      description: '“Provider running late” for one visit (SCHEDULED, CHECKED_IN or WAITING; otherwise INVALID_STATE_TRANSITION)',
      authScopes: { permission: 'telehealth:visit:conduct' },
      args: { id: t.arg({ type: 'UUID', required: true }), minutes: t.arg.int({ required: true }) },
      resolve: (_r, args, ctx) => postVisitRunningLate(ctx, { appointmentId: args.id, minutes: args.minutes }),
    }),
  }));

  const { SessionRef } = registerVisitSchema(builder);
  const { VitalRef } = registerInVisitSchema(builder);
  registerDocumentsSchema(builder, { AppointmentRef, SessionRef, VitalRef });
}
