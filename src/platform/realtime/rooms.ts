import { withTenant, type Database, type Db } from '../db/index.js';
import type { RealtimePrincipal, RoomAccessCheck } from './types.js';

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

/** ABAC check for one patient (platform/access checkPatientAccess with action 'read'). */
export type PatientAccessCheck = (principal: RealtimePrincipal, patientId: string, db: Db) => Promise<boolean>;

export interface RoomPolicyOptions {
  database: Database;
  /** the ABAC hook for patients; without it patient rooms are denied to everyone */
  patientAccess?: PatientAccessCheck;
  /** checks contributed by modules, by room type (e.g. visit) */
  roomAccess: ReadonlyMap<string, RoomAccessCheck>;
}

/** Permission a room type requires before its ABAC check runs (RBAC first, as in GraphQL). */
export const ROOM_PERMISSIONS: Readonly<Record<string, string>> = {
  patient: 'patient:read',
  visit: 'patient:clinical:read',
};

/**
 * The same rules as GraphQL: RBAC (Principal.permissions) first, then the
 * attribute check, inside a transaction scoped to the principal's tenant.
 *   tenant:<id>  only the principal's own tenant
 *   user:<id>    only the principal itself
 *   patient:<id> patient:read + platform/access ABAC (checkPatientAccess)
 *   visit:<id>   patient:clinical:read + the check a module registers for "visit"
 *   <type>:<id>  the check a module registers for that type (and its permission, if listed above)
 * A type nobody registered is denied.
 */
export function createRoomPolicy(opts: RoomPolicyOptions) {
  return async function canJoin(principal: RealtimePrincipal, room: ParsedRoom): Promise<boolean> {
    if (room.type === 'tenant') return room.id === principal.tenantId;
    if (room.type === 'user') return principal.kind === 'user' && room.id === principal.id;
    const permission = ROOM_PERMISSIONS[room.type];
    if (permission && !principal.permissions.has(permission)) return false;
    const moduleCheck = opts.roomAccess.get(room.type);
    const check: ((db: Db) => Promise<boolean>) | undefined =
      room.type === 'patient'
        ? opts.patientAccess && ((db) => opts.patientAccess!(principal, room.id, db))
        : moduleCheck && (async (db) => !!(await moduleCheck(principal, room.id, db)));
    if (!check) return false;
    return withTenant(opts.database.sql, principal.tenantId, check, principal.kind === 'user' ? principal.id : null);
  };
}

export type RoomPolicy = ReturnType<typeof createRoomPolicy>;
