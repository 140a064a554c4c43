import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import {
  auditRequestOf,
  beginAuditRequest,
  hasAuditRequest,
  writeAuditRequest,
  type AccessRecord,
  type AuditableContext,
  type AuditPrincipal,
  type AuditRequest,
  type SecurityEventInput,
} from '../audit/request.js';
import type { PurposeOfUse } from '../audit/types.js';
import type { AuditWriter } from '../audit/writer.js';
import { RequestTransaction, type Db } from '../db/tenancy.js';
import { AppError, ErrorCode, forbidden } from '../errors.js';
import { describeForLog } from '../http/graphql-errors.js';
import type { Logger } from '../logger.js';
import { Entitlements } from './entitlements.js';
import { ModuleInstances, type ModuleInstance } from './instances.js';

/** Who a scope acts for (structurally the schema's Principal, plus the system principal of jobs). */
export interface ScopePrincipal extends AuditPrincipal {
  permissions: ReadonlySet<string>;
}

/** The door a unit of work came through. */
export type ScopeDoor = 'graphql' | 'route' | 'socket' | 'job';

/** What every scope of a process shares. */
export interface ScopeEnv {
  /** the app pool (carebase_app, RLS applies) */
  pool: postgres.Sql;
  /** group commit of audit events */
  writer: AuditWriter;
  log: Logger;
  entitlements: Entitlements;
  /** deadline of a request, socket event or job (REQUEST_TIMEOUT_MS) */
  timeoutMs: number;
  /** the app's module instances (what each module's init returned); none given: no module has an instance */
  instances?: ModuleInstances;
}

const NO_INSTANCES = new ModuleInstances();

export interface ScopeInit {
  door: ScopeDoor;
  principal: ScopePrincipal | null;
  /** request id, socket event id, job id: recorded with every audit event */
  requestId?: string;
  ip?: string;
  userAgent?: string;
  /** from X-Purpose-Of-Use; default by role */
  purposeOfUse?: PurposeOfUse;
  /** audit events' operation name (GraphQL operation, route, socket event or job name) */
  operationName?: string;
}

const NO_PERMISSIONS: ReadonlySet<string> = new Set();

/**
 * A job acting as itself: a named system principal of a tenant (audit actor
 * type `system`, actor id `system:<name>`). It holds no permission: jobs are
 * trusted code and check nothing by permission.
 */
export function systemPrincipal(name: string, tenantId: string): ScopePrincipal {
  return { kind: 'system', id: `system:${name}`, tenantId, roles: [], permissions: NO_PERMISSIONS };
}

/**
 * One unit of work at any door (GraphQL request, module route, socket event,
 * job): the principal, a lazy transaction scoped to its tenant (RLS), a
 * deadline and the PHI-access trail. `finish(ok)` writes the trail and ends
 * the transaction: on success the trail is durable and the transaction
 * committed when it resolves, so an adapter answers only after it.
 */
export class RequestScope<P extends ScopePrincipal = ScopePrincipal> implements AuditableContext {
  readonly door: ScopeDoor;
  readonly principal: P | null;
  readonly requestId: string;
  readonly ip: string | undefined;
  readonly userAgent: string | undefined;
  readonly tx: RequestTransaction;
  /** epoch ms after which the work should stop (statement_timeout bounds each statement) */
  readonly deadline: number;
  readonly purposeOfUse: PurposeOfUse | undefined;
  private readonly operationName: string | null;
  private readOnlyTx = false;

  constructor(
    readonly env: ScopeEnv,
    init: ScopeInit & { principal: P | null },
  ) {
    this.door = init.door;
    this.principal = init.principal;
    this.requestId = init.requestId ?? randomUUID();
    this.ip = init.ip;
    this.userAgent = init.userAgent;
    this.purposeOfUse = init.purposeOfUse;
    this.operationName = init.operationName ?? null;
    this.deadline = Date.now() + env.timeoutMs;
    const p = init.principal;
    this.tx = new RequestTransaction(env.pool, p?.tenantId ?? null, p?.kind === 'user' ? p.id : null);
  }

  get tenantId(): string | null {
    return this.principal?.tenantId ?? null;
  }

  /** A drizzle client inside the scope's single transaction (opened on first use). */
  db(): Promise<Db> {
    return this.tx.db();
  }

  /** The transaction's raw connection (COPY, cursors). */
  connection(): Promise<postgres.ReservedSql> {
    return this.tx.connection();
  }

  /** The instance a module's init returned in this app: `scope.module<IdentityRuntime>('identity')`. */
  module<T extends ModuleInstance = ModuleInstance>(name: string): T {
    return (this.env.instances ?? NO_INSTANCES).get<T>(name);
  }

  /** What the enabled modules provide under a capability key (their manifests' `provides`). */
  provided<T>(key: string): T[] {
    return (this.env.instances ?? NO_INSTANCES).provided<T>(key);
  }

  /** Makes the transaction read only (e.g. an export): call before its first write. */
  async readOnly(): Promise<void> {
    const conn = await this.tx.connection();
    await conn`set transaction read only`;
    this.readOnlyTx = true;
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - Date.now());
  }

  /** Throws TIMEOUT once the deadline has passed (long loops check it between steps). */
  checkDeadline(): void {
    if (Date.now() >= this.deadline) throw new AppError(ErrorCode.TIMEOUT, 'The request took too long');
  }

  /** The scope's audit trail (the GraphQL adapter starts it with the request; other doors on first use). */
  get audit(): AuditRequest {
    if (hasAuditRequest(this)) return auditRequestOf(this);
    const r = beginAuditRequest(this, this.env.writer, this.purposeOfUse);
    r.operationName = this.operationName;
    return r;
  }

  /**
   * Records a read or write of PHI (or another audited access, e.g. an export
   * of the audit log: eventType `audit`). Events are durable before the answer
   * of this scope (finish), inside the transaction when it commits changes.
   */
  recordPhiAccess(r: AccessRecord): void {
    this.audit.record(r);
  }

  recordSecurityEvent(ev: SecurityEventInput): void {
    this.audit.addSecurityEvent(ev);
  }

  /** UNAUTHENTICATED without a principal; FORBIDDEN without the permission. */
  requirePermission(permission: string | null): P {
    if (!this.principal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
    if (permission && !this.principal.permissions.has(permission)) throw forbidden();
    return this.principal;
  }

  /**
   * FEATURE_NOT_ENTITLED when the principal's tenant lacks the entitlement
   * `key` (null: a core module). Synchronous when cached.
   */
  requireEntitled(key: string | null): void | Promise<void> {
    if (key === null || !this.principal) return;
    return this.env.entitlements.require(this.principal.tenantId, key, () => this.db());
  }

  /**
   * Makes what was recorded so far durable now (group commit), for an answer
   * that starts before the scope ends (a streamed export: before its first
   * byte). Throws AUDIT_UNAVAILABLE (or DATABASE_UNAVAILABLE) when it cannot.
   */
  async flushAudit(): Promise<void> {
    if (!hasAuditRequest(this)) return;
    const r = this.audit;
    if (r.isEmpty) return;
    try {
      await writeAuditRequest(r, false);
    } catch (e) {
      throw auditFailure(e);
    }
    // a fresh trail for anything recorded later
    const next = beginAuditRequest(this, this.env.writer, this.purposeOfUse);
    next.operationName = r.operationName;
  }

  private finished?: Promise<void>;
  private undo: (() => Promise<void>)[] = [];

  /**
   * Registers an effect outside the database to undo when the scope ends without committing (a blob written before
   * its row, say). Not run when a commit was attempted and failed: the database may have committed (in doubt), and
   * undoing then would lose what a committed row points at.
   */
  onRollback(fn: () => Promise<void>): void {
    this.undo.push(fn);
  }

  /**
   * Ends the scope. ok: the trail is written (in the transaction when it
   * changed something, else group-committed) and the transaction commits;
   * throws AUDIT_UNAVAILABLE / DATABASE_UNAVAILABLE when either fails (nothing
   * was saved: answer with that error). Not ok: the trail is written (writes
   * recorded as failed) and the transaction rolls back; an audit failure is
   * only logged, since nothing was disclosed.
   */
  finish(ok: boolean): Promise<void> {
    this.finished ??= ok ? this.commit() : this.rollback();
    return this.finished;
  }

  private async commit(): Promise<void> {
    if (hasAuditRequest(this) && !this.audit.isEmpty) {
      try {
        await writeAuditRequest(this.audit, this.tx.isOpen && !this.readOnlyTx);
      } catch (e) {
        await this.tx.rollback().catch(() => undefined);
        throw auditFailure(e);
      }
    }
    try {
      await this.tx.commit();
    } catch (e) {
      if (e instanceof AppError) throw e;
      throw new AppError(ErrorCode.DATABASE_UNAVAILABLE, 'The database did not confirm the write');
    }
  }

  private async rollback(): Promise<void> {
    try {
      if (hasAuditRequest(this) && !this.audit.isEmpty) await writeAuditRequest(this.audit, false);
    } catch (e) {
      this.env.log.error({ reqId: this.requestId, door: this.door, ...describeForLog(e) }, 'audit write failed');
    } finally {
      await this.tx.rollback().catch(() => undefined);
      for (const fn of this.undo.splice(0)) {
        await fn().catch((e: unknown) => this.env.log.warn({ reqId: this.requestId, door: this.door, ...describeForLog(e) }, 'scope: undoing an effect after rollback failed'));
      }
    }
  }
}

function auditFailure(e: unknown): AppError {
  if (e instanceof AppError && (e.code === ErrorCode.DATABASE_UNAVAILABLE || e.code === ErrorCode.AUDIT_UNAVAILABLE)) return e;
  return new AppError(ErrorCode.AUDIT_UNAVAILABLE, 'The audit log is unavailable; no data was returned');
}

/** Makes scopes for the doors of one process. */
export class ScopeFactory {
  constructor(readonly env: ScopeEnv) {}

  get entitlements(): Entitlements {
    return this.env.entitlements;
  }

  create<P extends ScopePrincipal>(init: ScopeInit & { principal: P | null }): RequestScope<P> {
    return new RequestScope<P>(this.env, init);
  }

  /**
   * Runs fn in a scope and finishes it (commit + durable trail on success,
   * rollback on throw): a job, a socket event, a CLI. Resolves only after the
   * commit.
   */
  async run<T, P extends ScopePrincipal>(init: ScopeInit & { principal: P | null }, fn: (scope: RequestScope<P>) => Promise<T>): Promise<T> {
    const scope = this.create(init);
    let result: T;
    try {
      result = await fn(scope);
    } catch (e) {
      await scope.finish(false);
      throw e;
    }
    await scope.finish(true);
    return result;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Who a job acts as: the user who caused it when its payload names one
 * (`onBehalfOf: <user id>`, an id, never more), else the named system
 * principal `system:<job name>`; none for platform-wide runs (no tenant).
 */
export function jobPrincipal(jobName: string, tenantId: string | null, payload: Record<string, unknown> | undefined): ScopePrincipal | null {
  if (!tenantId) return null;
  const userId = payload?.onBehalfOf;
  if (typeof userId === 'string' && UUID.test(userId)) return { kind: 'user', id: userId.toLowerCase(), tenantId, roles: [], permissions: NO_PERMISSIONS };
  return systemPrincipal(jobName, tenantId);
}
