/**
 * Jobs and domain events: the transactional outbox (emitEvent), the relay
 * that publishes it, and BullMQ queues/workers on Redis or PostgreSQL.
 * See docs/realtime.md.
 */
export { emitEvent, enqueueJob, enqueueForTenants, validateEvent, OUTBOX_CHANNEL, type EmitEventInput } from './outbox.js';
export { createJobBackend, migrateBullmqSchema, BULLMQ_SCHEMA, type JobBackend, type JobBackendOptions } from './backend.js';
export { JobSystem, safeReason, type DeadLetter, type JobData, type JobSystemOptions, type RegisteredJob } from './runtime.js';
export { OutboxRelay, type RelayOptions } from './relay.js';
export { OUTBOX_RETENTION_S, PLATFORM_SCHEDULES } from './schedules.js';
export { isJobDefinition, type DomainEvent, type EventSink, type JobContext, type JobDefinition, type JobHandler, type JobRegistration } from './types.js';
export { outbox, processedJobs } from './tables.js';
