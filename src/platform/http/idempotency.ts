import { createHash } from 'node:crypto';
import type { ApolloServerPlugin, GraphQLResponse } from '@apollo/server';
import { and, eq, sql } from 'drizzle-orm';
import type { GraphQLFormattedError } from 'graphql';
import { auditRequestOf, hasAuditRequest, writeAuditRequest } from '../audit/index.js';
import type { FieldCrypto } from '../crypto/index.js';
import { classifyDbError, dbAppError } from '../db/errors.js';
import { withTenant, type Db, type RequestTransaction } from '../db/index.js';
import { idempotencyKeys } from '../db/tables.js';
import { AppError, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** key of the stored outcome's audit summary (never sent to clients) */
const DISCLOSED = '_disclosed';
const KEY = /^[A-Za-z0-9._:-]{8,255}$/;
/** typed errors that are the request's own outcome (stored and replayed); anything else is transient and retried */
const DETERMINISTIC = new Set<string>([
  ErrorCode.BAD_USER_INPUT,
  ErrorCode.FORBIDDEN,
  ErrorCode.NOT_FOUND,
  ErrorCode.CONFLICT,
  ErrorCode.FEATURE_NOT_ENTITLED,
  ErrorCode.IDEMPOTENCY_KEY_REUSED,
]);

/** The slice of the request context this plugin needs. */
export interface IdempotentContext {
  requestId: string;
  ip: string;
  userAgent: string | undefined;
  principal: { kind: 'user' | 'apiKey'; id: string; tenantId: string; roles: readonly string[] } | null;
  tx: RequestTransaction;
  db(): Promise<Db>;
  log: Logger;
}

interface Claim {
  tenantId: string;
  actor: string;
  key: string;
  operation: string;
  hash: string;
}

const errorResponse = (status: number, code: string, message: string, requestId: string): GraphQLResponse => ({
  http: { status, headers: new Map() as never },
  body: { kind: 'single', singleResult: { errors: [{ message, extensions: { code, requestId } }] } },
});

/**
 * A database outage while the plugin reads or writes its row: the typed error
 * (an error thrown from a plugin hook would be Apollo's HTTP 500, logged with
 * its message: SQL text). undefined for anything else.
 */
function outage(e: unknown): AppError | undefined {
  const typed = e instanceof AppError ? e : dbAppError(e);
  return typed?.code === ErrorCode.DATABASE_UNAVAILABLE ? typed : undefined;
}

async function storeOutcomeImpl(
  crypto: FieldCrypto,
  ttlHours: number,
  ctx: IdempotentContext,
  c: Claim,
  result: { data?: Record<string, unknown> | null; errors?: readonly GraphQLFormattedError[] },
  status: number,
) {
  const codes = (result.errors ?? []).map((e) => String(e.extensions?.code ?? ''));
  // what the original response disclosed, so that every replay of it is audited as a read of the same PHI
  const disclosed = hasAuditRequest(ctx) ? auditRequestOf(ctx).disclosed() : undefined;
  const stored = JSON.stringify({
    data: result.data ?? null,
    ...(result.errors ? { errors: result.errors } : {}),
    ...(disclosed?.patientIds.length ? { [DISCLOSED]: disclosed } : {}),
  });
  const context = { tenantId: c.tenantId, table: 'idempotency_keys', column: 'response' };
  if (codes.length === 0) {
    // success: the outcome commits with the effect, in the request transaction
    const envelope = await crypto.encrypt(stored, context);
    const db = await ctx.db();
    await db
      .update(idempotencyKeys)
      .set({ response: envelope as never, httpStatus: status })
      .where(and(eq(idempotencyKeys.tenantId, c.tenantId), eq(idempotencyKeys.actor, c.actor), eq(idempotencyKeys.key, c.key)));
    return;
  }
  // a failed mutation rolls back (effect and key row); keep its outcome only if it is deterministic
  await ctx.tx.rollback();
  if (!codes.every((code) => DETERMINISTIC.has(code))) return;
  try {
    const envelope = await crypto.encrypt(stored, context);
    await withTenant(ctx.tx.pool, c.tenantId, (db) =>
      db.execute(sql`
        insert into idempotency_keys (tenant_id, actor, key, operation, request_hash, response, http_status, expires_at)
        values (${c.tenantId}, ${c.actor}, ${c.key}, ${c.operation}, ${c.hash}, ${envelope}, ${status}, now() + make_interval(hours => ${ttlHours}))
        on conflict do nothing`),
    );
  } catch (e) {
    ctx.log.warn({ reqId: ctx.requestId, pgCode: (e as { code?: string }).code }, 'could not store idempotent error outcome');
  }
}

/** sha256 over what makes two requests "the same": operation name, document and variables. */
function requestHash(query: string, operationName: string | null | undefined, variables: unknown): string {
  return createHash('sha256').update(JSON.stringify([operationName ?? null, query, variables ?? null])).digest('hex');
}

/**
 * Idempotency keys for every mutation (`Idempotency-Key` header, or
 * `extensions.idempotencyKey` in the request body):
 *  - the key is scoped to tenant + actor; its row is inserted in the
 *    request's own transaction before the mutation runs, so the outcome is
 *    committed together with the effect (or not at all);
 *  - a concurrent retry blocks on that row until the first commits (then
 *    replays it) or gets CONFLICT when the first runs past lock_timeout;
 *  - a retry replays the stored response (envelope-encrypted: it may hold
 *    PHI) without running the mutation; different variables with the same
 *    key → IDEMPOTENCY_KEY_REUSED;
 *  - deterministic typed errors are stored too; transient ones
 *    (DATABASE_UNAVAILABLE, TIMEOUT, KMS_UNAVAILABLE, ...) are not, so the
 *    retry runs again.
 * Must be listed before the transaction plugin (its willSendResponse runs first).
 */
export function idempotencyPlugin<C extends IdempotentContext>(opts: { crypto: FieldCrypto; ttlHours: number }): ApolloServerPlugin<C> {
  const context = (tenantId: string) => ({ tenantId, table: 'idempotency_keys', column: 'response' });
  const storeOutcome = (ctx: IdempotentContext, c: Claim, result: Parameters<typeof storeOutcomeImpl>[4], status: number) =>
    storeOutcomeImpl(opts.crypto, opts.ttlHours, ctx, c, result, status);
  return {
    async requestDidStart({ request }) {
      const header = request.http?.headers.get(IDEMPOTENCY_HEADER)?.trim();
      const fromBody = (request.extensions as { idempotencyKey?: unknown } | undefined)?.idempotencyKey;
      const key = header ?? (typeof fromBody === 'string' ? fromBody : undefined);
      if (key === undefined) return;
      let claim: Claim | undefined;
      return {
        async responseForOperation({ operation, contextValue, request: req }) {
          if (operation.operation !== 'mutation') return null;
          const { principal, requestId } = contextValue;
          if (!KEY.test(key)) {
            return errorResponse(400, ErrorCode.BAD_USER_INPUT, 'Idempotency-Key must be 8-255 characters of A-Z a-z 0-9 . _ : -', requestId);
          }
          if (!principal) return errorResponse(401, ErrorCode.UNAUTHENTICATED, 'Idempotency-Key needs an authenticated caller', requestId);
          const hash = requestHash(req.query ?? '', req.operationName, req.variables);
          const c: Claim = { tenantId: principal.tenantId, actor: `${principal.kind}:${principal.id}`, key, operation: req.operationName ?? 'anonymous', hash };
          try {
            const db = await contextValue.db();
            // Blocks while another request holds the same (uncommitted) key.
            const inserted = await db.execute<{ ok: number }>(sql`
              insert into idempotency_keys (tenant_id, actor, key, operation, request_hash, expires_at)
              values (${c.tenantId}, ${c.actor}, ${c.key}, ${c.operation}, ${c.hash}, now() + make_interval(hours => ${opts.ttlHours}))
              on conflict do nothing returning 1 as ok`);
            if (inserted.length === 1) {
              claim = c;
              return null; // first time: run the mutation
            }
            const [row] = await db
              .select()
              .from(idempotencyKeys)
              .where(and(eq(idempotencyKeys.tenantId, c.tenantId), eq(idempotencyKeys.actor, c.actor), eq(idempotencyKeys.key, c.key)));
            if (!row) return errorResponse(409, ErrorCode.CONFLICT, 'The request with this Idempotency-Key is still running; retry shortly', requestId);
            if (row.expiresAt.getTime() < Date.now()) {
              await db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.tenantId, c.tenantId), eq(idempotencyKeys.actor, c.actor), eq(idempotencyKeys.key, c.key)));
              await db.execute(sql`
                insert into idempotency_keys (tenant_id, actor, key, operation, request_hash, expires_at)
                values (${c.tenantId}, ${c.actor}, ${c.key}, ${c.operation}, ${c.hash}, now() + make_interval(hours => ${opts.ttlHours}))`);
              claim = c;
              return null;
            }
            if (row.requestHash !== hash) {
              return errorResponse(422, ErrorCode.IDEMPOTENCY_KEY_REUSED, 'This Idempotency-Key was used for a different request', requestId);
            }
            if (!row.response) return errorResponse(409, ErrorCode.CONFLICT, 'The request with this Idempotency-Key is still running; retry shortly', requestId);
            const { [DISCLOSED]: disclosed, ...body } = JSON.parse(await opts.crypto.decrypt(row.response, context(c.tenantId))) as {
              data?: Record<string, unknown> | null;
              errors?: GraphQLFormattedError[];
              [DISCLOSED]?: { patientIds: string[]; fields: string[]; categories: string[] };
            };
            if (disclosed?.patientIds.length) {
              // the replay discloses the same PHI again: audit it (durably) before sending it
              try {
                const audit = auditRequestOf(contextValue);
                audit.record({
                  patientIds: disclosed.patientIds,
                  resourceType: 'IdempotentReplay',
                  resourceId: null,
                  fields: disclosed.fields,
                  categories: disclosed.categories,
                  action: 'read',
                  outcome: 'allowed',
                  detail: { idempotentReplay: true, operation: c.operation },
                });
                await writeAuditRequest(audit, false);
              } catch {
                return errorResponse(503, ErrorCode.AUDIT_UNAVAILABLE, 'The audit log is unavailable; no data was returned', requestId);
              }
            }
            const headers = new Map<string, string>([['idempotent-replayed', 'true']]);
            return { http: { status: row.httpStatus ?? 200, headers: headers as never }, body: { kind: 'single', singleResult: body } };
          } catch (e) {
            if (classifyDbError(e) === 'timeout') {
              return errorResponse(409, ErrorCode.CONFLICT, 'The request with this Idempotency-Key is still running; retry shortly', requestId);
            }
            const down = outage(e);
            if (down) return errorResponse(503, down.code, down.message, requestId);
            throw e;
          }
        },
        // executionDidEnd runs after the result is formatted and before any willSendResponse hook
        // (those run concurrently, so the transaction plugin's commit cannot be ordered after ours)
        async executionDidStart(rc) {
          return {
            async executionDidEnd() {
              if (!claim || rc.response.body?.kind !== 'single') return;
              const c = claim;
              claim = undefined;
              try {
                await storeOutcome(rc.contextValue, c, rc.response.body.singleResult, rc.response.http.status ?? 200);
              } catch (e) {
                const down = outage(e);
                if (!down) throw e;
                // the outcome could not be kept with the effect: neither is committed (a failed mutation rolls back)
                rc.response.http.status = 503;
                rc.response.body.singleResult = { data: null, errors: [{ message: down.message, extensions: { code: down.code, requestId: rc.contextValue.requestId } }] };
              }
            },
          };
        },
      };
    },
  };
}
