import { z } from 'zod';
import type { PermissionCatalog } from '../../platform/access/index.js';
import { API_KEY_TIER_NAMES, type ApiKeyTier } from '../../platform/ratelimit/index.js';
import type { Builder, RequestContext } from '../../schema/index.js';
import { apiKeyStatus, createApiKey, listApiKeys, revokeApiKey, setApiKeyTier, tierInfo, type ApiKeyRow } from './api-keys.js';
import { endBreakGlass, invokeBreakGlass, isActive, listGrants, reviewBreakGlassGrant, type BreakGlassGrantRow } from './break-glass.js';

const uuid = z.string().uuid();

/** GraphQL for API keys and break-glass: thin resolvers over api-keys.ts and break-glass.ts. */
export function registerAccessSchema(builder: Builder, now: () => Date, permissionsOf: (ctx: RequestContext) => PermissionCatalog) {
  const ApiKeyTierEnum = builder.enumType('ApiKeyTier', {
    description: 'Quota tier of an API key (requests per minute and per calendar month, UTC).',
    values: Object.fromEntries(API_KEY_TIER_NAMES.map((t) => [t.toUpperCase(), { value: t }])) as Record<string, { value: ApiKeyTier }>,
  });
  const ApiKeyStatusEnum = builder.enumType('ApiKeyStatus', { values: ['ACTIVE', 'REVOKED', 'EXPIRED'] as const });

  const ApiKey = builder.objectRef<ApiKeyRow>('ApiKey').implement({
    description: 'An API key for a partner system. The secret is never readable after creation.',
    fields: (t) => ({
      id: t.exposeID('id'),
      name: t.exposeString('name'),
      prefix: t.exposeString('prefix', { description: 'public part of the key (cb_live_<prefix>_...), for recognising it in lists' }),
      permissions: t.exposeStringList('permissions'),
      tier: t.field({ type: ApiKeyTierEnum, resolve: (k) => k.tier }),
      status: t.field({ type: ApiKeyStatusEnum, resolve: (k) => apiKeyStatus(k, now()) }),
      createdBy: t.field({ type: 'UUID', resolve: (k) => k.createdBy }),
      createdAt: t.field({ type: 'DateTime', resolve: (k) => k.createdAt }),
      expiresAt: t.field({ type: 'DateTime', nullable: true, resolve: (k) => k.expiresAt }),
      revokedAt: t.field({ type: 'DateTime', nullable: true, resolve: (k) => k.revokedAt }),
      lastUsedAt: t.field({ type: 'DateTime', nullable: true, description: 'updated at most once a minute', resolve: (k) => k.lastUsedAt }),
    }),
  });

  const CreatedApiKey = builder.objectRef<{ apiKey: ApiKeyRow; key: string }>('CreatedApiKey').implement({
    fields: (t) => ({
      apiKey: t.field({ type: ApiKey, resolve: (r) => r.apiKey }),
      key: t.exposeString('key', { description: 'the full key, shown this once: store it in the partner system now' }),
    }),
  });

  const TierInfo = builder.objectRef<{ tier: ApiKeyTier; perMinute: number; perMonth: number }>('ApiKeyTierInfo').implement({
    fields: (t) => ({
      tier: t.field({ type: ApiKeyTierEnum, resolve: (r) => r.tier }),
      perMinute: t.exposeInt('perMinute'),
      perMonth: t.exposeInt('perMonth'),
    }),
  });

  const Grant = builder.objectRef<BreakGlassGrantRow>('BreakGlassGrant').implement({
    description: 'Time-boxed emergency access of one user to one patient.',
    fields: (t) => ({
      id: t.exposeID('id'),
      userId: t.field({ type: 'UUID', resolve: (g) => g.userId }),
      patientId: t.field({ type: 'UUID', resolve: (g) => g.patientId }),
      reason: t.exposeString('reason'),
      createdAt: t.field({ type: 'DateTime', resolve: (g) => g.createdAt }),
      expiresAt: t.field({ type: 'DateTime', resolve: (g) => g.expiresAt }),
      endedAt: t.field({ type: 'DateTime', nullable: true, resolve: (g) => g.endedAt }),
      endedBy: t.field({ type: 'UUID', nullable: true, resolve: (g) => g.endedBy }),
      reviewedAt: t.field({ type: 'DateTime', nullable: true, resolve: (g) => g.reviewedAt }),
      reviewedBy: t.field({ type: 'UUID', nullable: true, resolve: (g) => g.reviewedBy }),
      active: t.boolean({ resolve: (g) => isActive(g, now()) }),
    }),
  });

  const CreateApiKeyInput = builder.inputType('CreateApiKeyInput', {
    fields: (t) => ({
      name: t.string({ required: true, validate: z.string().trim().min(1).max(100) }),
      permissions: t.stringList({ required: true, validate: z.array(z.string().max(64)).min(1).max(200) }),
      tier: t.field({ type: ApiKeyTierEnum, required: false, defaultValue: 'standard' }),
      expiresAt: t.field({ type: 'DateTime', required: false }),
    }),
  });

  const InvokeBreakGlassInput = builder.inputType('InvokeBreakGlassInput', {
    fields: (t) => ({
      patientId: t.field({ type: 'UUID', required: true }),
      reason: t.string({ required: true, description: 'why emergency access is needed (at least 10 characters); shown to compliance', validate: z.string().trim().min(10).max(1000) }),
      durationMinutes: t.int({ required: false, description: 'default 60, at most 60', validate: z.number().int().min(5).max(60) }),
    }),
  });

  // ---------------------------------------------------------------- queries
  builder.queryFields((t) => ({
    myPermissions: t.stringList({
      description: 'The permissions of the caller (user roles or API key scope), for showing and hiding UI.',
      authScopes: { authenticated: true },
      resolve: (_r, _a, ctx) => [...(ctx.principal?.permissions ?? [])].sort(),
    }),
    apiKeys: t.field({
      type: [ApiKey],
      authScopes: { permission: 'apikey:manage' },
      args: { includeRevoked: t.arg.boolean({ required: false, defaultValue: false }) },
      resolve: (_r, args, ctx) => listApiKeys(ctx, !!args.includeRevoked),
    }),
    apiKeyTiers: t.field({
      type: [TierInfo],
      authScopes: { permission: 'apikey:manage' },
      resolve: () => tierInfo(),
    }),
    breakGlassGrants: t.field({
      type: [Grant],
      description: 'Every break-glass grant of the tenant (newest first, at most 500), for compliance review.',
      authScopes: { permission: 'breakglass:review' },
      args: {
        activeOnly: t.arg.boolean({ required: false, defaultValue: false }),
        unreviewedOnly: t.arg.boolean({ required: false, defaultValue: false }),
        patientId: t.arg({ type: 'UUID', required: false }),
      },
      resolve: (_r, args, ctx) => listGrants(ctx, { mine: false, activeOnly: !!args.activeOnly, unreviewedOnly: !!args.unreviewedOnly, patientId: args.patientId }, now()),
    }),
    myBreakGlassGrants: t.field({
      type: [Grant],
      authScopes: { permission: 'breakglass:invoke' },
      args: { activeOnly: t.arg.boolean({ required: false, defaultValue: true }) },
      resolve: (_r, args, ctx) => listGrants(ctx, { mine: true, activeOnly: !!args.activeOnly, unreviewedOnly: false }, now()),
    }),
  }));

  // ---------------------------------------------------------------- mutations
  builder.mutationFields((t) => ({
    createApiKey: t.field({
      type: CreatedApiKey,
      description: 'Creates an API key holding a subset of your permissions. The key is in the response once and never again.',
      authScopes: { permission: 'apikey:manage' },
      args: { input: t.arg({ type: CreateApiKeyInput, required: true }) },
      resolve: (_r, { input }, ctx) =>
        createApiKey(ctx, { name: input.name.trim(), permissions: input.permissions, tier: input.tier ?? 'standard', expiresAt: input.expiresAt }, now(), permissionsOf(ctx)),
    }),
    revokeApiKey: t.field({
      type: ApiKey,
      description: 'Revokes a key: it is refused (UNAUTHENTICATED) from the next request on, in every process.',
      authScopes: { permission: 'apikey:manage' },
      args: { id: t.arg({ type: 'UUID', required: true, validate: uuid }) },
      resolve: (_r, { id }, ctx) => revokeApiKey(ctx, id, now()),
    }),
    setApiKeyTier: t.field({
      type: ApiKey,
      authScopes: { permission: 'apikey:manage' },
      args: { id: t.arg({ type: 'UUID', required: true, validate: uuid }), tier: t.arg({ type: ApiKeyTierEnum, required: true }) },
      resolve: (_r, { id, tier }, ctx) => setApiKeyTier(ctx, id, tier),
    }),
    invokeBreakGlass: t.field({
      type: Grant,
      description: 'Emergency access to one patient for a limited time. Recorded, alerted to compliance, reviewed afterwards.',
      authScopes: { permission: 'breakglass:invoke' },
      // the invocation itself is in the PHI-access log (action break-glass, purpose ETREAT, the grant id), so
      // auditEvents(filter: { breakGlass: true }) lists it next to the accesses it opened; refusals are recorded as denied
      audit: {
        action: 'break-glass',
        resourceType: 'BreakGlassGrant',
        patientId: (args) => args.input.patientId,
        resourceId: (_a, g) => g?.id ?? null,
        purposeOfUse: () => 'ETREAT',
        fields: () => ['BreakGlassGrant.reason', 'BreakGlassGrant.durationMinutes'],
        detail: (_a, g) => ({ breakGlassGrantId: g?.id ?? null }),
      },
      args: { input: t.arg({ type: InvokeBreakGlassInput, required: true }) },
      resolve: (_r, { input }, ctx) => invokeBreakGlass(ctx, input, now()),
    }),
    endBreakGlass: t.field({
      type: Grant,
      description: 'Ends a grant early (your own, or any with breakglass:review).',
      authScopes: { $any: { permission: 'breakglass:invoke', $any: { permission: 'breakglass:review' } } },
      args: { id: t.arg({ type: 'UUID', required: true, validate: uuid }) },
      resolve: (_r, { id }, ctx) => endBreakGlass(ctx, id, now()),
    }),
    reviewBreakGlassGrant: t.field({
      type: Grant,
      authScopes: { permission: 'breakglass:review' },
      args: { id: t.arg({ type: 'UUID', required: true, validate: uuid }) },
      resolve: (_r, { id }, ctx) => reviewBreakGlassGrant(ctx, id, now()),
    }),
  }));
}
