/**
 * Realtime: socket.io on the API port with JWT handshake, tenant-prefixed
 * rooms authorised like GraphQL, presence, recovery, limits, and fan-out of
 * outbox events (Redis streams adapter across nodes). See docs/realtime.md.
 */
export { createRealtime, tokenExpiry, RESERVED_EVENTS, type Realtime, type RealtimeOptions } from './server.js';
export { parseRoom, fullRoom, relativeRoom, automaticRooms, createRoomPolicy, type ParsedRoom, type RoomPolicy } from './rooms.js';
export type { ClientEvent, RealtimePrincipal, RealtimeSocketHandler, RoomAccessCheck, RoomType, SocketHandlerContext } from './types.js';
