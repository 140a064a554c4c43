import type { WebhookEvent } from 'livekit-server-sdk';

/**
 * The video provider adapter. One implementation speaks LiveKit through
 * livekit-server-sdk (video/livekit.ts); in development and tests it talks
 * to the in-repo LiveKit simulator (video/simulator.ts), which serves the
 * same Twirp API (RoomService, Egress) and signs webhooks the same way, so
 * the same code path runs with and without a LiveKit server.
 */

export type ParticipantRole = 'provider' | 'patient';

export interface JoinTokenRequest {
  room: string;
  /** participant identity: `user:<userId>` (the account joining) */
  identity: string;
  /** display name shown to the other participants (no PHI beyond what they see anyway) */
  name?: string;
  role: ParticipantRole;
  ttlMinutes: number;
  /** JSON metadata for the participant (ids and role only) */
  metadata?: string;
}

export interface JoinToken {
  token: string;
  /** the WebSocket URL clients connect to */
  url: string;
  room: string;
  identity: string;
  /** epoch ms */
  expiresAt: number;
}

export interface RecordingInfo {
  egressId: string;
  /** active | starting | complete | failed | aborted | ending */
  status: string;
  /** where the media is kept by the provider (file path, bucket key) */
  location: string | null;
  startedAt: number | null;
  endedAt: number | null;
  sizeBytes: number | null;
  durationMs: number | null;
}

export interface VideoProvider {
  /** livekit (LIVEKIT_URL set) or development (the in-repo simulator) */
  readonly kind: 'livekit' | 'development';
  /** URL clients connect to */
  readonly url: string;
  /** Creates the room if it does not exist (idempotent). */
  ensureRoom(room: string, opts: { emptyTimeoutSeconds: number; maxParticipants: number; metadata?: string }): Promise<void>;
  /** Ends the room for everyone (idempotent: an unknown room is fine). */
  closeRoom(room: string): Promise<void>;
  /** A join token scoped to the room and the identity, with the role's grants. */
  joinToken(req: JoinTokenRequest): Promise<JoinToken>;
  /** Starts a composite recording (egress) of the room to `filepath`. */
  startRecording(room: string, filepath: string): Promise<RecordingInfo>;
  stopRecording(egressId: string): Promise<RecordingInfo>;
  /** Verifies a webhook (signature on the raw body) and parses it; throws on a bad signature. */
  receiveWebhook(body: string, authorization: string | undefined): Promise<WebhookEvent>;
  close(): Promise<void>;
}
