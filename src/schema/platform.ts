import { VERSION } from '../version.js';
import type { Builder } from './builder.js';
import { registerJobsSchema } from './jobs.js';

/** Fields every deployment has, whatever FEATURES says. */
export function registerPlatformSchema(builder: Builder) {
  registerJobsSchema(builder);
  const ServerInfo = builder
    .objectRef<{ version: string; enabledModules: readonly string[]; phase: number }>('ServerInfo')
    .implement({
      description: 'What this Carebase server is running.',
      fields: (t) => ({
        version: t.exposeString('version'),
        enabledModules: t.exposeStringList('enabledModules', { description: 'names of the modules enabled by FEATURES' }),
        phase: t.exposeInt('phase', { description: 'highest roadmap phase among the enabled modules (0 when only the platform runs)' }),
      }),
    });

  builder.queryField('serverInfo', (t) =>
    t.field({
      type: ServerInfo,
      authScopes: { public: true },
      resolve: (_root, _args, ctx) => ({
        version: VERSION,
        enabledModules: ctx.enabledModules,
        phase: ctx.enabledPhase,
      }),
    }),
  );
}
