import {
  AccessToken,
  EgressClient,
  EgressStatus,
  EncodedFileOutput,
  EncodedFileType,
  RoomServiceClient,
  TrackSource,
  WebhookReceiver,
  type EgressInfo,
  type VideoGrant,
  type WebhookEvent,
} from 'livekit-server-sdk';
import { AppError, ErrorCode } from '../../../platform/errors.js';
import type { JoinToken, JoinTokenRequest, ParticipantRole, RecordingInfo, VideoProvider } from './provider.js';

/**
 * The LiveKit adapter: livekit-server-sdk's RoomServiceClient and
 * EgressClient (Twirp over HTTP), AccessToken for join tokens and
 * WebhookReceiver for webhooks. It talks to a LiveKit server or cloud
 * project (LIVEKIT_URL) or, in development and tests, to the in-repo
 * simulator (simulator.ts), which serves the same API.
 */

export interface LiveKitOptions {
  /** ws(s):// or http(s):// URL of the LiveKit server */
  url: string;
  apiKey: string;
  apiSecret: string;
  kind: 'livekit' | 'development';
  /** seconds per API call */
  requestTimeoutS?: number;
}

/** What each role may do in a visit's room. */
export function grantsFor(room: string, role: ParticipantRole): VideoGrant {
  if (role === 'provider') {
    return {
      room,
      roomJoin: true,
      roomAdmin: true,
      canPublish: true,
      canSubscribe: true,
      canPublishData: true,
      canPublishSources: [TrackSource.CAMERA, TrackSource.MICROPHONE, TrackSource.SCREEN_SHARE, TrackSource.SCREEN_SHARE_AUDIO],
    };
  }
  return { room, roomJoin: true, roomAdmin: false, canPublish: true, canSubscribe: true, canPublishData: true, canPublishSources: [TrackSource.CAMERA, TrackSource.MICROPHONE] };
}

const STATUS: Record<number, string> = {
  [EgressStatus.EGRESS_STARTING]: 'starting',
  [EgressStatus.EGRESS_ACTIVE]: 'active',
  [EgressStatus.EGRESS_ENDING]: 'ending',
  [EgressStatus.EGRESS_COMPLETE]: 'complete',
  [EgressStatus.EGRESS_FAILED]: 'failed',
  [EgressStatus.EGRESS_ABORTED]: 'aborted',
};

const nsToMs = (ns: bigint | undefined) => (ns ? Number(ns / 1_000_000n) : null);

/** Our view of an EgressInfo (also used for egress webhooks). */
export function recordingInfo(e: EgressInfo): RecordingInfo {
  const file = e.fileResults?.[0];
  return {
    egressId: e.egressId,
    status: STATUS[e.status] ?? 'active',
    location: file?.location || file?.filename || null,
    startedAt: nsToMs(e.startedAt),
    endedAt: nsToMs(e.endedAt),
    sizeBytes: file?.size ? Number(file.size) : null,
    durationMs: file?.duration ? nsToMs(file.duration) : null,
  };
}

/** A provider refusal or outage as a typed error (never the provider's message: it may name rooms). */
function providerError(e: unknown, what: string): AppError {
  const code = (e as { code?: unknown }).code;
  return new AppError(ErrorCode.PROVIDER_UNAVAILABLE, `The video provider did not ${what}`, typeof code === 'string' ? { providerCode: code } : {});
}

export class LiveKitVideoProvider implements VideoProvider {
  readonly kind: 'livekit' | 'development';
  readonly url: string;
  private readonly rooms: RoomServiceClient;
  private readonly egress: EgressClient;
  private readonly receiver: WebhookReceiver;

  constructor(private readonly opts: LiveKitOptions) {
    this.kind = opts.kind;
    this.url = opts.url.replace(/^http/, 'ws');
    const api = opts.url.replace(/^ws/, 'http');
    const clientOpts = { requestTimeout: opts.requestTimeoutS ?? 10 };
    this.rooms = new RoomServiceClient(api, opts.apiKey, opts.apiSecret, clientOpts);
    this.egress = new EgressClient(api, opts.apiKey, opts.apiSecret, clientOpts);
    this.receiver = new WebhookReceiver(opts.apiKey, opts.apiSecret);
  }

  async ensureRoom(room: string, o: { emptyTimeoutSeconds: number; maxParticipants: number; metadata?: string }): Promise<void> {
    try {
      await this.rooms.createRoom({ name: room, emptyTimeout: o.emptyTimeoutSeconds, maxParticipants: o.maxParticipants, metadata: o.metadata });
    } catch (e) {
      throw providerError(e, 'open the room');
    }
  }

  async closeRoom(room: string): Promise<void> {
    try {
      await this.rooms.deleteRoom(room);
    } catch (e) {
      if ((e as { code?: unknown }).code === 'not_found' || (e as { status?: unknown }).status === 404) return;
      throw providerError(e, 'close the room');
    }
  }

  async joinToken(req: JoinTokenRequest): Promise<JoinToken> {
    const ttlSeconds = req.ttlMinutes * 60;
    const at = new AccessToken(this.opts.apiKey, this.opts.apiSecret, { identity: req.identity, name: req.name, ttl: ttlSeconds, metadata: req.metadata });
    at.addGrant(grantsFor(req.room, req.role));
    const token = await at.toJwt();
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number };
    return { token, url: this.url, room: req.room, identity: req.identity, expiresAt: exp.exp * 1000 };
  }

  async startRecording(room: string, filepath: string): Promise<RecordingInfo> {
    try {
      const info = await this.egress.startRoomCompositeEgress(room, { file: new EncodedFileOutput({ filepath, fileType: EncodedFileType.MP4 }) }, { layout: 'speaker' });
      return recordingInfo(info);
    } catch (e) {
      throw providerError(e, 'start the recording');
    }
  }

  async stopRecording(egressId: string): Promise<RecordingInfo> {
    try {
      return recordingInfo(await this.egress.stopEgress(egressId));
    } catch (e) {
      throw providerError(e, 'stop the recording');
    }
  }

  receiveWebhook(body: string, authorization: string | undefined): Promise<WebhookEvent> {
    return this.receiver.receive(body, authorization);
  }

  async close(): Promise<void> {}
}
