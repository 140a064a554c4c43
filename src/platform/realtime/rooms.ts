import { withTenant, type Database, type Db } from '../db/index.js';
import type { Entitlements } from '../scope/index.js';
import type { RealtimePrincipal, RoomType } from './types.js';

/** A room relative to the tenant: "<type>:<id>". Clients and emitEvent use this form. */
const RELATIVE_ROOM = /^([a-z][a-zA-Z0-9]{0,31}):([A-Za-z0-9_.-]{1,128})$/;

export interface ParsedRoom {
  type: string;
  id: string;
}

export function parseRoom(room: unknown): ParsedRoom | undefined {
  if (typeof room !== 'string') return undefined;
  const m = RELATIVE_ROOM.exec(room);
  return m ? { type: m[1]!, id: m[2]! } : undefined;
}

/** The socket.io room name: always prefixed by the tenant, so no room name is shared across tenants. */
export function fullRoom(tenantId: string, room: string): string {
  return `t:${tenantId}:${room}`;
}

/** The relative room of a full room name of this tenant (undefined for the socket's own id room or another tenant). */
export function relativeRoom(tenantId: string, full: string): string | undefined {
  const prefix = `t:${tenantId}:`;
  return full.startsWith(prefix) ? full.slice(prefix.length) : undefined;
}

export const tenantRoom = (p: { tenantId: string }) => `tenant:${p.tenantId}`;
export const userRoom = (p: { id: string }) => `user:${p.id}`;

/** Rooms a socket joins automatically on connect (no presence events for these). */
export function automaticRooms(p: RealtimePrincipal): string[] {
  return p.kind === 'user' ? [tenantRoom(p), userRoom(p)] : [tenantRoom(p)];
}

export interface RoomPolicyOptions {
  database: Database;
  /** room types contributed by modules (their permission and access check), by type */
  roomAccess: ReadonlyMap<string, RoomType>;
  /** the tenants' entitlements: a room type of a module the tenant lacks throws FEATURE_NOT_ENTITLED */
  entitlements?: Entitlements;
}

/**
 * The same rules as GraphQL: RBAC (Principal.permissions) first, then the
 * attribute check, inside a transaction scoped to the principal's tenant.
 *   tenant:<id>  only the principal's own tenant
 *   user:<id>    only the principal itself
 *   <type>:<id>  the room type a module contributes (manifest roomAccess):
 *                its permission, then its check (e.g. the patients module's
 *                `patient` rooms: patient:read + the patient access scope)
 * A type no enabled module contributes is denied.
 */
export function createRoomPolicy(opts: RoomPolicyOptions) {
  return async function canJoin(principal: RealtimePrincipal, room: ParsedRoom): Promise<boolean> {
    if (room.type === 'tenant') return room.id === principal.tenantId;
    if (room.type === 'user') return principal.kind === 'user' && room.id === principal.id;
    const type = opts.roomAccess.get(room.type);
    if (!type) return false;
    if (type.permission && !principal.permissions.has(type.permission)) return false;
    return withTenant(
      opts.database.sql,
      principal.tenantId,
      async (db: Db) => {
        if (type.entitlement) await opts.entitlements?.require(principal.tenantId, type.entitlement, async () => db);
        return !!(await type.check(principal, room.id, db));
      },
      principal.kind === 'user' ? principal.id : null,
    );
  };
}

export type RoomPolicy = ReturnType<typeof createRoomPolicy>;
