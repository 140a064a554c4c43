import { createHash } from 'node:crypto';
import type { ApolloServerPlugin, GraphQLResponse } from '@apollo/server';
import { and, eq, sql } from 'drizzle-orm';
import { auditRequestOf, hasAuditRequest, writeAuditRequest, type AuditRequest } from '../audit/index.js';
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
  ErrorCode.INVALID_STATE_TRANSITION,
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

/** One Idempotency-Key of one actor of one tenant, and the request it was first used for. */
export interface IdempotencyClaim {
  tenantId: string;
  actor: string;
  key: string;
  operation: string;
  hash: string;
}

/** What a stored outcome disclosed (never sent to clients): its replay is audited as a read of the same PHI. */
export interface Disclosed {
  patientIds: string[];
  fields: string[];
  categories: string[];
}

/** The outcome of claiming a key: run the request, replay its stored answer, or refuse (typed). */
export type ClaimResult =
  | { kind: 'claimed' }
  | { kind: 'replay'; status: number; body: Record<string, unknown>; disclosed?: Disclosed }
  | { kind: 'refused'; status: number; error: AppError };

const stillRunning = (): ClaimResult => ({
  kind: 'refused',
  status: 409,
  error: new AppError(ErrorCode.CONFLICT, 'The request with this Idempotency-Key is still running; retry shortly'),
});

/**
 * Idempotency keys, the same at every door that writes (GraphQL mutations,
 * module routes):
 *  - a key is scoped to tenant + actor; its row is inserted in the request's
 *    own transaction before the work runs, so the outcome is committed
 *    together with the effect (or not at all);
 *  - a concurrent retry blocks on that row until the first commits (then
 *    replays it) or gets CONFLICT when the first runs past lock_timeout;
 *  - a retry replays the stored answer (envelope-encrypted: it may hold PHI)
 *    without running the work; another request with the same key →
 *    IDEMPOTENCY_KEY_REUSED;
 *  - deterministic typed errors are stored too; transient ones
 *    (DATABASE_UNAVAILABLE, TIMEOUT, KMS_UNAVAILABLE, ...) are not, so the
 *    retry runs again.
 */
export class IdempotencyKeys {
  constructor(
    private readonly crypto: FieldCrypto,
    private readonly ttlHours: number,
  ) {}

  /** BAD_USER_INPUT unless the key is 8-255 characters of A-Z a-z 0-9 . _ : - */
  static check(key: string): AppError | undefined {
    return KEY.test(key) ? undefined : new AppError(ErrorCode.BAD_USER_INPUT, 'Idempotency-Key must be 8-255 characters of A-Z a-z 0-9 . _ : -');
  }

  private static context(tenantId: string) {
    return { tenantId, table: 'idempotency_keys', column: 'response' };
  }

  /** Claims the key in the request transaction (db), or says what to answer instead. Throws DATABASE_UNAVAILABLE on an outage. */
  async claim(db: Db, c: IdempotencyClaim): Promise<ClaimResult> {
    const where = and(eq(idempotencyKeys.tenantId, c.tenantId), eq(idempotencyKeys.actor, c.actor), eq(idempotencyKeys.key, c.key));
    const insert = sql`
      insert into idempotency_keys (tenant_id, actor, key, operation, request_hash, expires_at)
      values (${c.tenantId}, ${c.actor}, ${c.key}, ${c.operation}, ${c.hash}, now() + make_interval(hours => ${this.ttlHours}))`;
    try {
      // blocks while another request holds the same (uncommitted) key
      const inserted = await db.execute<{ ok: number }>(sql`${insert} on conflict do nothing returning 1 as ok`);
      if (inserted.length === 1) return { kind: 'claimed' };
      const [row] = await db.select().from(idempotencyKeys).where(where);
      if (!row) return stillRunning();
      if (row.expiresAt.getTime() < Date.now()) {
        await db.delete(idempotencyKeys).where(where);
        await db.execute(insert);
        return { kind: 'claimed' };
      }
      if (row.requestHash !== c.hash) {
        return { kind: 'refused', status: 422, error: new AppError(ErrorCode.IDEMPOTENCY_KEY_REUSED, 'This Idempotency-Key was used for a different request') };
      }
      if (!row.response) return stillRunning();
      const { [DISCLOSED]: disclosed, ...body } = JSON.parse(await this.crypto.decrypt(row.response, IdempotencyKeys.context(c.tenantId))) as Record<string, unknown> & {
        [DISCLOSED]?: Disclosed;
      };
      return { kind: 'replay', status: row.httpStatus ?? 200, body, disclosed };
    } catch (e) {
      if (classifyDbError(e) === 'timeout') return stillRunning();
      const down = outage(e);
      if (down) throw down;
      throw e;
    }
  }

  /** A success: its answer is stored in the request transaction, committed with the effect. */
  async storeSuccess(db: Db, c: IdempotencyClaim, body: Record<string, unknown>, status: number, disclosed?: Disclosed): Promise<void> {
    const envelope = await this.crypto.encrypt(stored(body, disclosed), IdempotencyKeys.context(c.tenantId));
    await db
      .update(idempotencyKeys)
      .set({ response: envelope as never, httpStatus: status })
      .where(and(eq(idempotencyKeys.tenantId, c.tenantId), eq(idempotencyKeys.actor, c.actor), eq(idempotencyKeys.key, c.key)));
  }

  /** Gives the key up in the request transaction (an answer that cannot be stored, e.g. a stream): a retry runs again. */
  async release(db: Db, c: IdempotencyClaim): Promise<void> {
    await db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.tenantId, c.tenantId), eq(idempotencyKeys.actor, c.actor), eq(idempotencyKeys.key, c.key)));
  }

  /**
   * A failure, after the request transaction rolled back (effect and key row):
   * kept in a transaction of its own only when every error code is
   * deterministic. Never throws (a retry then runs again).
   */
  async storeFailure(pool: RequestTransaction['pool'], c: IdempotencyClaim, codes: readonly string[], body: Record<string, unknown>, status: number, log: Logger, requestId: string): Promise<void> {
    if (!codes.length || !codes.every((code) => DETERMINISTIC.has(code))) return;
    try {
      const envelope = await this.crypto.encrypt(stored(body), IdempotencyKeys.context(c.tenantId));
      await withTenant(pool, c.tenantId, (db) =>
        db.execute(sql`
          insert into idempotency_keys (tenant_id, actor, key, operation, request_hash, response, http_status, expires_at)
          values (${c.tenantId}, ${c.actor}, ${c.key}, ${c.operation}, ${c.hash}, ${envelope}, ${status}, now() + make_interval(hours => ${this.ttlHours}))
          on conflict do nothing`),
      );
    } catch (e) {
      log.warn({ reqId: requestId, pgCode: (e as { code?: string }).code }, 'could not store idempotent error outcome');
    }
  }
}

function stored(body: Record<string, unknown>, disclosed?: Disclosed): string {
  return JSON.stringify({ ...body, ...(disclosed?.patientIds.length ? { [DISCLOSED]: disclosed } : {}) });
}

/** Records the replay of a stored answer that disclosed PHI (the caller makes it durable before answering). */
export function recordReplay(audit: AuditRequest, disclosed: Disclosed, operation: string): void {
  audit.record({
    patientIds: disclosed.patientIds,
    resourceType: 'IdempotentReplay',
    resourceId: null,
    fields: disclosed.fields,
    categories: disclosed.categories,
    action: 'read',
    outcome: 'allowed',
    detail: { idempotentReplay: true, operation },
  });
}

/** sha256 of a module route's request: method, URL (with its query) and body (bytes as sent, or as parsed). */
export function routeRequestHash(method: string, url: string, body: unknown): string {
  const h = createHash('sha256').update(JSON.stringify([method, url])).update('\n');
  if (Buffer.isBuffer(body) || typeof body === 'string') h.update(body);
  else h.update(JSON.stringify(body ?? null));
  return h.digest('hex');
}

/** sha256 over what makes two GraphQL requests "the same": operation name, document and variables. */
function requestHash(query: string, operationName: string | null | undefined, variables: unknown): string {
  return createHash('sha256').update(JSON.stringify([operationName ?? null, query, variables ?? null])).digest('hex');
}

/**
 * Idempotency keys for every mutation (`Idempotency-Key` header, or
 * `extensions.idempotencyKey` in the request body): IdempotencyKeys over
 * Apollo. Must be listed before the transaction plugin (its
 * willSendResponse runs first).
 */
export function idempotencyPlugin<C extends IdempotentContext>(keys: IdempotencyKeys): ApolloServerPlugin<C> {
  return {
    async requestDidStart({ request }) {
      const header = request.http?.headers.get(IDEMPOTENCY_HEADER)?.trim();
      const fromBody = (request.extensions as { idempotencyKey?: unknown } | undefined)?.idempotencyKey;
      const key = header ?? (typeof fromBody === 'string' ? fromBody : undefined);
      if (key === undefined) return;
      let claim: IdempotencyClaim | undefined;
      return {
        async responseForOperation({ operation, contextValue, request: req }) {
          if (operation.operation !== 'mutation') return null;
          const { principal, requestId } = contextValue;
          const bad = IdempotencyKeys.check(key);
          if (bad) return errorResponse(400, bad.code, bad.message, requestId);
          if (!principal) return errorResponse(401, ErrorCode.UNAUTHENTICATED, 'Idempotency-Key needs an authenticated caller', requestId);
          const c: IdempotencyClaim = {
            tenantId: principal.tenantId,
            actor: `${principal.kind}:${principal.id}`,
            key,
            operation: req.operationName ?? 'anonymous',
            hash: requestHash(req.query ?? '', req.operationName, req.variables),
          };
          let result: ClaimResult;
          try {
            result = await keys.claim(await contextValue.db(), c);
          } catch (e) {
            const down = outage(e);
            if (down) return errorResponse(503, down.code, down.message, requestId);
            throw e;
          }
          if (result.kind === 'claimed') {
            claim = c;
            return null; // first time: run the mutation
          }
          if (result.kind === 'refused') return errorResponse(result.status, result.error.code, result.error.message, requestId);
          if (result.disclosed?.patientIds.length) {
            // the replay discloses the same PHI again: audit it (durably) before sending it
            try {
              const audit = auditRequestOf(contextValue);
              recordReplay(audit, result.disclosed, c.operation);
              await writeAuditRequest(audit, false);
            } catch {
              return errorResponse(503, ErrorCode.AUDIT_UNAVAILABLE, 'The audit log is unavailable; no data was returned', requestId);
            }
          }
          const headers = new Map<string, string>([['idempotent-replayed', 'true']]);
          return { http: { status: result.status, headers: headers as never }, body: { kind: 'single', singleResult: result.body as never } };
        },
        // executionDidEnd runs after the result is formatted and before any willSendResponse hook
        // (those run concurrently, so the transaction plugin's commit cannot be ordered after ours)
        async executionDidStart(rc) {
          return {
            async executionDidEnd() {
              if (!claim || rc.response.body?.kind !== 'single') return;
              const c = claim;
              claim = undefined;
              const ctx = rc.contextValue;
              const result = rc.response.body.singleResult;
              const status = rc.response.http.status ?? 200;
              const body = { data: result.data ?? null, ...(result.errors ? { errors: result.errors } : {}) };
              const codes = (result.errors ?? []).map((e) => String(e.extensions?.code ?? ''));
              if (codes.length) {
                // a failed mutation rolls back (effect and key row); its outcome is kept only if deterministic
                await ctx.tx.rollback();
                await keys.storeFailure(ctx.tx.pool, c, codes, body, status, ctx.log, ctx.requestId);
                return;
              }
              try {
                // what the original response disclosed, so that every replay of it is audited as a read of the same PHI
                const disclosed = hasAuditRequest(ctx) ? auditRequestOf(ctx).disclosed() : undefined;
                await keys.storeSuccess(await ctx.db(), c, body, status, disclosed);
              } catch (e) {
                const down = outage(e);
                if (!down) throw e;
                // the outcome could not be kept with the effect: neither is committed (a failed mutation rolls back)
                rc.response.http.status = 503;
                rc.response.body.singleResult = { data: null, errors: [{ message: down.message, extensions: { code: down.code, requestId: ctx.requestId } }] };
              }
            },
          };
        },
      };
    },
  };
}
