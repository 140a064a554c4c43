import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import ValidationPlugin from '@pothos/plugin-validation';
import PhiAuditPlugin from '../platform/audit/phi-plugin.js';
import AuthFirstPlugin from './auth-first.js';
import { AppError, ErrorCode, forbidden } from '../platform/errors.js';
import type { RequestContext } from './context.js';
import { registerScalars } from './scalars.js';

export interface SchemaTypes {
  Context: RequestContext;
  AuthScopes: {
    /** anyone, including anonymous callers */
    public: boolean;
    /** any authenticated principal (user or API key) */
    authenticated: boolean;
    /** a signed-in user (not an API key): for fields about the caller's own account, sessions or MFA */
    user: boolean;
    /** principal holds this permission (see platform/access) */
    permission: string;
  };
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    Date: { Input: string; Output: string };
    UUID: { Input: string; Output: string };
    Email: { Input: string; Output: string };
    JSON: { Input: unknown; Output: unknown };
  };
  DefaultFieldNullability: false;
}

/**
 * A fresh builder per schema build: modules register their types on the
 * builder they are given, so a disabled module contributes nothing.
 * `phiCategories`: the PHI categories fields may be marked with (the enabled modules', see buildSchema).
 */
export function createBuilder(opts: { phiCategories?: ReadonlyMap<string, readonly string[]> } = {}) {
  const builder = new SchemaBuilder<SchemaTypes>({
    phiAudit: { categories: opts.phiCategories ?? new Map() },
    // PhiAuditPlugin sits outside scope-auth so that it sees (and audits) refusals
    plugins: [PhiAuditPlugin, AuthFirstPlugin, ScopeAuthPlugin, RelayPlugin, ValidationPlugin, DataloaderPlugin],
    defaultFieldNullability: false,
    relay: { nodesOnConnection: true, clientMutationId: 'omit', cursorType: 'String' },
    validation: {
      validationError: (result) => {
        const issue = result.issues[0];
        const field = issue?.path?.map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.');
        return new AppError(ErrorCode.BAD_USER_INPUT, `${field ? `${field}: ` : ''}${issue?.message ?? 'invalid input'}`, field ? { field } : {});
      },
    },
    scopeAuth: {
      authorizeOnSubscribe: true,
      unauthorizedError: (_parent, ctx) =>
        ctx.principal ? forbidden() : new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required'),
      authScopes: (ctx) => ({
        public: true,
        authenticated: !!ctx.principal,
        user: ctx.principal?.kind === 'user',
        permission: (p: string) => ctx.principal?.permissions.has(p) ?? false,
      }),
    },
  });
  registerScalars(builder);
  builder.queryType({});
  builder.mutationType({});
  return builder;
}

export type Builder = ReturnType<typeof createBuilder>;
