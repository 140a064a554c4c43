import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { AuditEventType } from '../audit/types.js';
import { isPurposeOfUse, type PurposeOfUse } from '../audit/types.js';
import { AppError, ErrorCode } from '../errors.js';
import { hasAuditRequest } from '../audit/request.js';
import { describeForLog } from '../http/graphql-errors.js';
import { IDEMPOTENCY_HEADER, IdempotencyKeys, recordReplay, routeRequestHash, type IdempotencyClaim } from '../http/idempotency.js';
import type { RequestScope, ScopeFactory, ScopePrincipal } from './scope.js';

/** A streamed answer: rows are read from the scope's transaction as the client consumes them. */
export interface StreamBody {
  readonly stream: AsyncIterable<string | Buffer>;
}
export const streamBody = (stream: AsyncIterable<string | Buffer>): StreamBody => ({ stream });

/**
 * A module's REST route (an export, a webhook, an upload) run in a request
 * scope: the adapter authenticates (same credentials and rate limits as
 * /graphql), checks the tenant's entitlement and the permission, runs the
 * handler, then writes the audit trail and commits before the answer.
 * The handler returns a JSON body, or streamBody(...) to stream from the
 * transaction (the trail is made durable before the first byte; the
 * transaction commits when the stream ends).
 */
export interface RouteDefinition {
  method: HTTPMethods;
  url: string;
  /** permission the principal must hold; null: any authenticated principal */
  permission: string | null;
  /** audit events' operation name (default `METHOD url`) */
  operationName?: string;
  /** refusals (UNAUTHENTICATED aside) recorded as denied events of this kind (e.g. an export of the audit log) */
  auditDenials?: { eventType?: AuditEventType; resourceType: string; action: string };
  /**
   * Honours an `Idempotency-Key` header as GraphQL mutations do (default: true
   * for POST, PUT, PATCH and DELETE): the first request's JSON answer is
   * committed with its effect and replayed to every retry with that key;
   * the same key with another method, URL or body is IDEMPOTENCY_KEY_REUSED.
   * A webhook keeps false and deduplicates by its provider's event id.
   */
  idempotent?: boolean;
  handler: (scope: RequestScope, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}

/** Route definitions of a module, for its manifest's `routes` (keeps the literal typed). */
export const defineRoute = (route: RouteDefinition): RouteDefinition => route;

export interface RouteAdapterOptions {
  scopes: ScopeFactory;
  /** the app's idempotency keys (routes with `idempotent`) */
  idempotency?: IdempotencyKeys;
  /** the app's authenticators + per-principal rate limits (throws UNAUTHENTICATED / RATE_LIMITED) */
  authenticate: (req: FastifyRequest, reply: FastifyReply) => Promise<ScopePrincipal | null>;
}

const STATUS: Partial<Record<string, number>> = {
  [ErrorCode.BAD_USER_INPUT]: 400,
  [ErrorCode.BAD_REQUEST]: 400,
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.FEATURE_NOT_ENTITLED]: 403,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.CONFLICT]: 409,
  [ErrorCode.INVALID_STATE_TRANSITION]: 409,
  [ErrorCode.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCode.IDEMPOTENCY_KEY_REUSED]: 422,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.TIMEOUT]: 504,
};

/** HTTP status of an AppError code on a REST route. */
export function routeStatus(code: string): number {
  return STATUS[code] ?? 503;
}

function errorBody(req: FastifyRequest, e: AppError) {
  const { http: _http, code: _code, ...extensions } = e.extensions as Record<string, unknown>;
  return { errors: [{ message: e.message, extensions: { code: e.code, ...extensions, requestId: req.id } }] };
}

function send(reply: FastifyReply, req: FastifyRequest, e: AppError) {
  if (e.code === ErrorCode.RATE_LIMITED && !reply.hasHeader('retry-after')) reply.header('retry-after', '1');
  return reply.code(routeStatus(e.code)).send(errorBody(req, e));
}

/**
 * Claims the request's Idempotency-Key in the scope's transaction: undefined
 * when the handler is to run; the stored answer to send when it ran before
 * (its PHI disclosure recorded again); throws the typed refusal otherwise.
 */
async function claimKey(keys: IdempotencyKeys, scope: RequestScope, principal: ScopePrincipal, key: string, operation: string, req: FastifyRequest) {
  const bad = IdempotencyKeys.check(key);
  if (bad) throw bad;
  const hash = routeRequestHash(req.method, req.url, req.body);
  const claimed = await keys.claim(await scope.db(), { tenantId: principal.tenantId, actor: `${principal.kind}:${principal.id}`, key, operation, hash });
  if (claimed.kind === 'claimed') return undefined;
  if (claimed.kind === 'refused') throw claimed.error;
  if (claimed.disclosed?.patientIds.length) recordReplay(scope.audit, claimed.disclosed, operation);
  return claimed;
}

/** Registers a module's route on the scope adapter; `entitlement`: the module's key (null: core). */
export function registerRoute(app: FastifyInstance, opts: RouteAdapterOptions, entitlement: string | null, route: RouteDefinition) {
  const operationName = route.operationName ?? `${route.method} ${route.url}`;
  const idempotent = route.idempotent ?? ['POST', 'PUT', 'PATCH', 'DELETE'].includes(String(route.method).toUpperCase());
  app.route({
    method: route.method,
    url: route.url,
    handler: async (req, reply) => {
      const raw = req.headers['x-purpose-of-use'];
      const purpose = typeof raw === 'string' && isPurposeOfUse(raw.trim().toUpperCase()) ? (raw.trim().toUpperCase() as PurposeOfUse) : undefined;
      let principal: ScopePrincipal | null;
      try {
        principal = await opts.authenticate(req, reply);
      } catch (e) {
        if (e instanceof AppError) return send(reply, req, e);
        throw e;
      }
      if (!principal) return send(reply, req, new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required'));
      const scope = opts.scopes.create({
        door: 'route',
        principal,
        requestId: req.id,
        ip: req.ip,
        userAgent: req.headers['user-agent'],
        purposeOfUse: purpose,
        operationName,
      });
      req.carebaseTx = scope.tx; // the app's onResponse hook rolls back whatever is left open
      let result: unknown;
      let claim: IdempotencyClaim | undefined;
      try {
        await scope.requireEntitled(entitlement);
        scope.requirePermission(route.permission);
        const key = idempotent && opts.idempotency ? req.headers[IDEMPOTENCY_HEADER] : undefined;
        if (typeof key === 'string') {
          const replay = await claimKey(opts.idempotency!, scope, principal, key.trim(), operationName, req);
          if (replay) {
            await scope.finish(true); // the replay's trail is durable before it is sent
            return reply.code(replay.status).header('idempotent-replayed', 'true').send(replay.body);
          }
          claim = { tenantId: principal.tenantId, actor: `${principal.kind}:${principal.id}`, key: key.trim(), operation: operationName, hash: routeRequestHash(req.method, req.url, req.body) };
        }
        result = await route.handler(scope, req, reply);
        if (claim && isStream(result)) await opts.idempotency!.release(await scope.db(), claim); // a stream is not stored
        else if (claim) await opts.idempotency!.storeSuccess(await scope.db(), claim, (result ?? { ok: true }) as Record<string, unknown>, 200, hasAuditRequest(scope) ? scope.audit.disclosed() : undefined);
      } catch (e) {
        const err = e instanceof AppError ? e : undefined;
        if (route.auditDenials && (err?.code === ErrorCode.FORBIDDEN || err?.code === ErrorCode.FEATURE_NOT_ENTITLED)) {
          const reason = String((err.extensions as { reason?: unknown }).reason ?? err.code);
          const d = route.auditDenials;
          scope.recordPhiAccess({ eventType: d.eventType, patientIds: [], resourceType: d.resourceType, resourceId: null, fields: [], action: d.action, outcome: 'denied', detail: { reason } });
        }
        await scope.finish(false);
        if (err && claim) await opts.idempotency!.storeFailure(scope.tx.pool, claim, [err.code], errorBody(req, err), routeStatus(err.code), scope.env.log, req.id);
        if (err) return send(reply, req, err);
        opts.scopes.env.log.error({ reqId: req.id, route: route.url, ...describeForLog(e) }, 'route handler failed');
        return send(reply, req, new AppError(ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error'));
      }
      if (isStream(result)) {
        try {
          await scope.flushAudit();
        } catch (e) {
          await scope.finish(false);
          return send(reply, req, e as AppError);
        }
        return reply.send(Readable.from(streamed(scope, result.stream), { objectMode: false, highWaterMark: 64 * 1024 }));
      }
      try {
        await scope.finish(true);
      } catch (e) {
        return send(reply, req, e instanceof AppError ? e : new AppError(ErrorCode.DATABASE_UNAVAILABLE, 'The database did not confirm the write'));
      }
      return reply.send(result ?? { ok: true });
    },
  });
}

function isStream(v: unknown): v is StreamBody {
  return typeof v === 'object' && v !== null && 'stream' in v && typeof (v as StreamBody).stream?.[Symbol.asyncIterator] === 'function';
}

/** Streams, then commits; a client that goes away or a failed read rolls back (and frees the connection). */
async function* streamed(scope: RequestScope, source: AsyncIterable<string | Buffer>) {
  let ok = false;
  try {
    yield* source;
    ok = true;
  } finally {
    await scope.finish(ok).catch((e) => scope.env.log.warn({ reqId: scope.requestId, ...describeForLog(e) }, 'streamed route: commit failed'));
  }
}
