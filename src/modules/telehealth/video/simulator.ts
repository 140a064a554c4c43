import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AccessToken, EgressInfo, EgressStatus, ParticipantInfo, ParticipantInfo_State, Room, TokenVerifier, WebhookEvent, type ClaimGrants } from 'livekit-server-sdk';

/**
 * A small LiveKit server for development and tests: the Twirp API that
 * livekit-server-sdk's RoomServiceClient and EgressClient call
 * (`POST /twirp/livekit.RoomService/*`, `/twirp/livekit.Egress/*`, JSON,
 * Bearer tokens signed with the API key and secret and checked for the
 * grants LiveKit requires), and webhooks signed the way LiveKit signs them
 * (an AccessToken whose sha256 claim is the body's digest, in the
 * Authorization header), so the real SDK client and WebhookReceiver run
 * unchanged against it. It carries no media: participants join and leave
 * through `join()` / `leave()` (or `POST /simulator/join|leave`, with a
 * roomAdmin token for the room), and a recording is a file that is never
 * written. Never used when LIVEKIT_URL is set.
 */

export interface SimulatorOptions {
  apiKey: string;
  apiSecret: string;
  /** where webhooks go (settable later: `webhookUrl`) */
  webhookUrl?: string;
  host?: string;
  port?: number;
}

interface SimRoom {
  room: Room;
  participants: Map<string, ParticipantInfo>;
  /** room_started was sent (on the first join) */
  started: boolean;
}

export interface WebhookDelivery {
  id: string;
  event: string;
  status: number | 'error';
}

const nowS = () => BigInt(Math.floor(Date.now() / 1000));
const nowNs = () => BigInt(Date.now()) * 1_000_000n;
const sid = (prefix: string) => `${prefix}_${randomBytes(6).toString('hex')}`;

class TwirpFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Signs a webhook body the way LiveKit does (also what tests use to forge or sign events). */
export async function signWebhook(body: string, apiKey: string, apiSecret: string): Promise<string> {
  const at = new AccessToken(apiKey, apiSecret, { ttl: '5m' });
  at.sha256 = createHash('sha256').update(body).digest('base64');
  return at.toJwt();
}

export class LiveKitSimulator {
  readonly rooms = new Map<string, SimRoom>();
  readonly egresses = new Map<string, EgressInfo>();
  readonly deliveries: WebhookDelivery[] = [];
  webhookUrl: string | undefined;
  private readonly verifier: TokenVerifier;
  private server!: http.Server;
  private queue: Promise<void> = Promise.resolve();
  url = '';

  private constructor(private readonly opts: SimulatorOptions) {
    this.verifier = new TokenVerifier(opts.apiKey, opts.apiSecret);
    this.webhookUrl = opts.webhookUrl;
  }

  static async start(opts: SimulatorOptions): Promise<LiveKitSimulator> {
    const sim = new LiveKitSimulator(opts);
    sim.server = http.createServer((req, res) => void sim.handle(req, res));
    await new Promise<void>((resolve) => sim.server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
    const addr = sim.server.address() as AddressInfo;
    sim.url = `http://${opts.host ?? '127.0.0.1'}:${addr.port}`;
    return sim;
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    await new Promise<void>((resolve) => {
      this.server.closeAllConnections?.();
      this.server.close(() => resolve());
    });
  }

  // ------------------------------------------------------------------ simulation

  /** A participant connects (the room is created on first join, as LiveKit does): room_started, participant_joined. */
  async join(roomName: string, identity: string, opts: { name?: string; metadata?: string } = {}): Promise<ParticipantInfo> {
    let r = this.rooms.get(roomName);
    if (!r) r = this.createRoom(roomName, {});
    if (!r.started) {
      r.started = true;
      this.emit('room_started', { room: r.room });
    }
    const p = new ParticipantInfo({ sid: sid('PA'), identity, name: opts.name ?? '', metadata: opts.metadata ?? '', state: ParticipantInfo_State.ACTIVE, joinedAt: nowS() });
    r.participants.set(identity, p);
    r.room.numParticipants = r.participants.size;
    this.emit('participant_joined', { room: r.room, participant: p });
    return p;
  }

  /** A participant disconnects: participant_left. */
  async leave(roomName: string, identity: string): Promise<void> {
    const r = this.rooms.get(roomName);
    const p = r?.participants.get(identity);
    if (!r || !p) throw new TwirpFailure(404, 'not_found', 'participant not found');
    r.participants.delete(identity);
    r.room.numParticipants = r.participants.size;
    p.state = ParticipantInfo_State.DISCONNECTED;
    this.emit('participant_left', { room: r.room, participant: p });
  }

  /** The room ends (DeleteRoom, or the empty timeout): participants leave, egress ends, room_finished. */
  async finish(roomName: string): Promise<void> {
    const r = this.rooms.get(roomName);
    if (!r) throw new TwirpFailure(404, 'not_found', 'room not found');
    for (const identity of [...r.participants.keys()]) await this.leave(roomName, identity);
    for (const e of this.egresses.values()) if (e.roomName === roomName && e.status <= EgressStatus.EGRESS_ENDING) this.endEgress(e);
    this.rooms.delete(roomName);
    this.emit('room_finished', { room: r.room });
  }

  /** Resolves once every webhook emitted so far has been delivered (or failed). */
  async flush(): Promise<void> {
    await this.queue;
  }

  // ------------------------------------------------------------------ webhooks

  private emit(event: string, fields: { room?: Room; participant?: ParticipantInfo; egressInfo?: EgressInfo }): void {
    const ev = new WebhookEvent({ id: sid('EV'), createdAt: nowS(), ...fields });
    ev.event = event as WebhookEvent['event']; // the SDK's subclass resets `event` after the constructor: set it afterwards
    const body = JSON.stringify(ev.toJson());
    // in order, one at a time, as LiveKit delivers to one endpoint
    this.queue = this.queue.then(async () => {
      const url = this.webhookUrl;
      if (!url) return;
      let status: number | 'error' = 'error';
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/webhook+json', authorization: await signWebhook(body, this.opts.apiKey, this.opts.apiSecret) },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        status = res.status;
        await res.arrayBuffer();
      } catch {
        status = 'error';
      }
      this.deliveries.push({ id: ev.id, event, status });
    });
  }

  // ------------------------------------------------------------------ Twirp

  private createRoom(name: string, o: { emptyTimeout?: number; maxParticipants?: number; metadata?: string }): SimRoom {
    const existing = this.rooms.get(name);
    if (existing) return existing;
    const r: SimRoom = {
      room: new Room({ sid: sid('RM'), name, emptyTimeout: o.emptyTimeout ?? 300, maxParticipants: o.maxParticipants ?? 0, metadata: o.metadata ?? '', creationTime: nowS() }),
      participants: new Map(),
      started: false,
    };
    this.rooms.set(name, r);
    return r;
  }

  private endEgress(e: EgressInfo): void {
    e.status = EgressStatus.EGRESS_COMPLETE;
    e.endedAt = nowNs();
    e.updatedAt = e.endedAt;
    const file = e.fileResults[0];
    if (file) {
      file.endedAt = e.endedAt;
      file.duration = e.endedAt - e.startedAt;
      file.size = BigInt(Math.max(1, Number(file.duration / 1_000_000n)) * 125); // ~1 Mbit/s
    }
    this.emit('egress_ended', { egressInfo: e });
  }

  private async authorize(req: http.IncomingMessage, need: (v: NonNullable<ClaimGrants['video']>) => boolean): Promise<void> {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!m) throw new TwirpFailure(401, 'unauthenticated', 'missing token');
    let claims: ClaimGrants;
    try {
      claims = await this.verifier.verify(m[1]!);
    } catch {
      throw new TwirpFailure(401, 'unauthenticated', 'invalid token');
    }
    if (!claims.video || !need(claims.video)) throw new TwirpFailure(403, 'permission_denied', 'permissions denied');
  }

  private async call(service: string, method: string, body: Record<string, unknown>, req: http.IncomingMessage): Promise<unknown> {
    const room = typeof body.room === 'string' ? body.room : typeof body.roomName === 'string' ? body.roomName : '';
    const key = `${service}/${method}`;
    switch (key) {
      case 'RoomService/CreateRoom': {
        await this.authorize(req, (v) => !!v.roomCreate);
        if (typeof body.name !== 'string' || !body.name) throw new TwirpFailure(400, 'invalid_argument', 'name is required');
        return this.createRoom(body.name, body as { emptyTimeout?: number; maxParticipants?: number; metadata?: string }).room.toJson();
      }
      case 'RoomService/ListRooms': {
        await this.authorize(req, (v) => !!v.roomList);
        const names = Array.isArray(body.names) ? (body.names as string[]) : [];
        return { rooms: [...this.rooms.values()].filter((r) => !names.length || names.includes(r.room.name)).map((r) => r.room.toJson()) };
      }
      case 'RoomService/DeleteRoom': {
        await this.authorize(req, (v) => !!v.roomCreate);
        await this.finish(room);
        return {};
      }
      case 'RoomService/ListParticipants': {
        await this.authorize(req, (v) => !!v.roomAdmin && v.room === room);
        const r = this.rooms.get(room);
        if (!r) throw new TwirpFailure(404, 'not_found', 'room not found');
        return { participants: [...r.participants.values()].map((p) => p.toJson()) };
      }
      case 'RoomService/RemoveParticipant': {
        await this.authorize(req, (v) => !!v.roomAdmin && v.room === room);
        await this.leave(room, String(body.identity ?? ''));
        return {};
      }
      case 'Egress/StartRoomCompositeEgress': {
        await this.authorize(req, (v) => !!v.roomRecord);
        const r = this.rooms.get(room);
        if (!r) throw new TwirpFailure(404, 'not_found', 'room not found');
        const outputs = (body.fileOutputs as { filepath?: string }[] | undefined) ?? [];
        const filepath = outputs[0]?.filepath ?? (body.file as { filepath?: string } | undefined)?.filepath ?? `${room}-${Date.now()}.mp4`;
        const startedAt = nowNs();
        const e = new EgressInfo({
          egressId: sid('EG'),
          roomId: r.room.sid,
          roomName: room,
          status: EgressStatus.EGRESS_ACTIVE,
          startedAt,
          updatedAt: startedAt,
          fileResults: [{ filename: filepath, location: `livekit-simulator://recordings/${filepath}`, startedAt }],
        });
        this.egresses.set(e.egressId, e);
        r.room.activeRecording = true;
        this.emit('egress_started', { egressInfo: e });
        return e.toJson();
      }
      case 'Egress/StopEgress': {
        await this.authorize(req, (v) => !!v.roomRecord);
        const e = this.egresses.get(String(body.egressId ?? ''));
        if (!e) throw new TwirpFailure(404, 'not_found', 'egress not found');
        if (e.status > EgressStatus.EGRESS_ENDING) throw new TwirpFailure(412, 'failed_precondition', 'egress already ended');
        this.endEgress(e);
        const r = this.rooms.get(e.roomName);
        if (r) r.room.activeRecording = false;
        return e.toJson();
      }
      case 'Egress/ListEgress': {
        await this.authorize(req, (v) => !!v.roomRecord);
        return { items: [...this.egresses.values()].filter((e) => !room || e.roomName === room).map((e) => e.toJson()) };
      }
      default:
        throw new TwirpFailure(404, 'bad_route', `no handler for ${key}`);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
      const url = new URL(req.url ?? '/', 'http://simulator');
      const twirp = /^\/twirp\/livekit\.(RoomService|Egress)\/(\w+)$/.exec(url.pathname);
      if (req.method === 'POST' && twirp) return reply(200, await this.call(twirp[1]!, twirp[2]!, body, req));
      const sim = /^\/simulator\/(join|leave)$/.exec(url.pathname);
      if (req.method === 'POST' && sim) {
        const room = String(body.room ?? '');
        await this.authorize(req, (v) => !!v.roomAdmin && v.room === room);
        if (sim[1] === 'join') return reply(200, (await this.join(room, String(body.identity ?? ''), { name: typeof body.name === 'string' ? body.name : undefined })).toJson());
        await this.leave(room, String(body.identity ?? ''));
        return reply(200, {});
      }
      throw new TwirpFailure(404, 'bad_route', 'not found');
    } catch (e) {
      if (e instanceof TwirpFailure) return reply(e.status, { code: e.code, msg: e.message });
      return reply(e instanceof SyntaxError ? 400 : 500, { code: e instanceof SyntaxError ? 'malformed' : 'internal', msg: 'request failed' });
    }
  }
}
