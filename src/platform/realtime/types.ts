import type { Database, Db } from '../db/index.js';
import type { Logger } from '../logger.js';
import type { RequestScope } from '../scope/index.js';

/** The parts of a Principal the realtime layer uses (structurally the schema's Principal). */
export interface RealtimePrincipal {
  kind: 'user' | 'apiKey';
  id: string;
  tenantId: string;
  roles: readonly string[];
  permissions: ReadonlySet<string>;
  /** optional: when the credential expires (epoch ms); otherwise read from the JWT's exp claim */
  expiresAt?: number;
}

/**
 * Decides whether a principal may join the room `type:id` of its own tenant.
 * Runs in a transaction scoped to the principal's tenant (RLS applies), so an
 * id of another tenant is simply not found.
 */
export type RoomAccessCheck = (principal: RealtimePrincipal, id: string, db: Db) => boolean | Promise<boolean>;

/** A socket room type a module contributes: the permission it requires (RBAC first, as in GraphQL) and its access check. */
export interface RoomType {
  /** permission the principal must hold before the check runs */
  permission?: string;
  check: RoomAccessCheck;
  /** the contributing module's entitlement key (set by the platform from the manifest; null: core) */
  entitlement?: string | null;
}

/** What a module's socket handler gets besides the payload. */
export interface SocketHandlerContext {
  /**
   * The event's request scope: `scope.db()` (tenant transaction, RLS),
   * `scope.recordPhiAccess(...)` for PHI the handler reads or sends. The ack
   * is sent after the scope commits (audit trail durable).
   */
  scope: RequestScope;
  principal: RealtimePrincipal;
  tenantId: string;
  socketId: string;
  log: Logger;
  database: Database;
  /** rooms (relative, e.g. "visit:<id>") this socket has joined */
  rooms(): string[];
  /**
   * Sends `event` to everyone in a room this socket has joined (itself
   * excluded). Throws FORBIDDEN for a room the socket is not in.
   */
  broadcast(room: string, event: string, data: unknown): void;
}

/** A module's socket.io event handler; its return value is the ack. */
export interface RealtimeSocketHandler {
  event: string;
  /** permission the principal must hold (checked before handle) */
  permission?: string;
  handle: (socket: unknown, payload: unknown, ctx: SocketHandlerContext) => Promise<unknown> | unknown;
}

/** An event as clients receive it on 'event'. */
export interface ClientEvent {
  id: string;
  type: string;
  aggregateId: string;
  payload: Record<string, unknown>;
  /** the rooms (relative to the tenant) it was sent to */
  rooms: string[];
  occurredAt: string;
}
