import { z } from 'zod';
import { AppError, ErrorCode } from '../platform/errors.js';
import type { DeadLetter, JobSystem } from '../platform/jobs/runtime.js';
import type { Builder } from './builder.js';
import type { RequestContext } from './context.js';

const QUEUE = z.string().regex(/^[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+)+$/, 'must be a job name like module.job');
// scheduled runs: repeat:schedule.<job>:<period ms>
const JOB_ID = z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'must be a job id');

function jobsOf(ctx: RequestContext): { jobs: JobSystem; tenantId: string; platform: boolean } {
  if (!ctx.jobs) throw new AppError(ErrorCode.SERVER_BUSY, 'Background jobs are not available on this server');
  if (!ctx.principal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  return { jobs: ctx.jobs, tenantId: ctx.principal.tenantId, platform: ctx.principal.permissions.has('jobs:platform') };
}

/**
 * The dead-letter queue admin API (permission jobs:manage, ADMIN): failed jobs
 * of the caller's tenant only; holders of jobs:platform too (PLATFORM_ADMIN)
 * also see the failed runs of platform-wide scheduled jobs. Payload values are
 * never shown, and the failure reason is the sanitised one the worker stored
 * (error code or class name).
 */
export function registerJobsSchema(builder: Builder) {
  const DeadLetterJob = builder.objectRef<DeadLetter>('DeadLetterJob').implement({
    description: 'A background job that failed all its attempts (the dead-letter queue).',
    fields: (t) => ({
      id: t.exposeString('id', { description: 'job id (the outbox event id for event-driven jobs)' }),
      queue: t.exposeString('queue', { description: 'job name, e.g. notifications.patientUpdated' }),
      schedule: t.exposeString('schedule', { nullable: true, description: 'the job scheduler of a scheduled run (e.g. schedule.audit.checkpoints); null for event-driven jobs' }),
      eventType: t.exposeString('eventType', { nullable: true }),
      aggregateId: t.exposeString('aggregateId', { nullable: true }),
      attemptsMade: t.exposeInt('attemptsMade'),
      failedReason: t.exposeString('failedReason', { description: 'error code or class name; never message text' }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      failedAt: t.expose('failedAt', { type: 'DateTime', nullable: true }),
    }),
  });

  builder.queryField('deadLetterJobs', (t) =>
    t.field({
      type: [DeadLetterJob],
      description: 'Failed jobs of your tenant, newest first (with jobs:platform, also failed runs of platform-wide schedules).',
      authScopes: { permission: 'jobs:manage' },
      args: {
        queue: t.arg.string({ required: false, validate: QUEUE }),
        first: t.arg.int({ required: false, defaultValue: 50, validate: z.number().int().min(1).max(200) }),
      },
      resolve: async (_root, args, ctx) => {
        const { jobs, tenantId, platform } = jobsOf(ctx);
        return jobs.deadLetters(tenantId, { queue: args.queue ?? undefined, limit: args.first ?? 50, platform });
      },
    }),
  );

  builder.mutationField('retryDeadLetterJob', (t) =>
    t.field({
      type: 'Boolean',
      description: 'Moves a failed job back to its queue with a fresh set of attempts.',
      authScopes: { permission: 'jobs:manage' },
      args: { queue: t.arg.string({ required: true, validate: QUEUE }), id: t.arg.string({ required: true, validate: JOB_ID }) },
      resolve: async (_root, args, ctx) => {
        const { jobs, tenantId, platform } = jobsOf(ctx);
        await jobs.retryDeadLetter(tenantId, args.queue, args.id, { platform });
        return true;
      },
    }),
  );

  builder.mutationField('discardDeadLetterJob', (t) =>
    t.field({
      type: 'Boolean',
      description: 'Deletes a failed job for good.',
      authScopes: { permission: 'jobs:manage' },
      args: { queue: t.arg.string({ required: true, validate: QUEUE }), id: t.arg.string({ required: true, validate: JOB_ID }) },
      resolve: async (_root, args, ctx) => {
        const { jobs, tenantId, platform } = jobsOf(ctx);
        await jobs.discardDeadLetter(tenantId, args.queue, args.id, { platform });
        return true;
      },
    }),
  );
}
