import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EgressClient, EncodedFileOutput, RoomServiceClient, WebhookReceiver, type WebhookEvent } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.js';
import { createTelehealthModule, LiveKitSimulator } from '../../../src/modules/telehealth/index.js';
import type { ModuleDeps } from '../../../src/schema/index.js';

/**
 * The in-repo LiveKit simulator on its own, driven by livekit-server-sdk's
 * real clients: the Twirp API with LiveKit's token and grant checks, egress,
 * and webhooks that the SDK's WebhookReceiver accepts. And the configuration
 * around it: LIVEKIT_* all or nothing, no simulator in production.
 */
const KEY = 'sim-key';
const SECRET = 'sim-secret-that-is-long-enough-for-hs256!!';
let sim: LiveKitSimulator;
let hooks: http.Server;
const received: { event: WebhookEvent | null; error?: string }[] = [];

beforeAll(async () => {
  const receiver = new WebhookReceiver(KEY, SECRET);
  hooks = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    try {
      received.push({ event: await receiver.receive(Buffer.concat(chunks).toString('utf8'), req.headers.authorization) });
      res.writeHead(200).end('{}');
    } catch (e) {
      received.push({ event: null, error: (e as Error).message });
      res.writeHead(401).end('{}');
    }
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
  sim = await LiveKitSimulator.start({ apiKey: KEY, apiSecret: SECRET, webhookUrl: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/` });
});
afterAll(async () => {
  await sim?.close();
  await new Promise((r) => hooks?.close(r));
});

describe('the LiveKit simulator through livekit-server-sdk', () => {
  it('creates, lists and deletes rooms; refuses a wrong secret and a token without the grant', async () => {
    const rooms = new RoomServiceClient(sim.url, KEY, SECRET);
    const created = await rooms.createRoom({ name: 'visit_a', emptyTimeout: 60, maxParticipants: 4 });
    expect(created).toMatchObject({ name: 'visit_a', emptyTimeout: 60, maxParticipants: 4 });
    expect((await rooms.createRoom({ name: 'visit_a' })).sid).toBe(created.sid); // idempotent, as LiveKit
    expect((await rooms.listRooms()).map((r) => r.name)).toEqual(['visit_a']);
    await expect(new RoomServiceClient(sim.url, KEY, 'a-wrong-secret-that-is-long-enough-too!!').listRooms()).rejects.toMatchObject({ status: 401, code: 'unauthenticated' });
    await expect(new RoomServiceClient(sim.url, 'another-key', SECRET).listRooms()).rejects.toMatchObject({ status: 401 });
    // a participant token (roomJoin only) cannot administer the room
    const withToken = new RoomServiceClient(sim.url, undefined, undefined, { token: await joinToken('visit_a') } as never);
    await expect(withToken.listParticipants('visit_a')).rejects.toMatchObject({ status: 403, code: 'permission_denied' });
    await sim.join('visit_a', 'user:one');
    expect((await rooms.listParticipants('visit_a')).map((p) => p.identity)).toEqual(['user:one']);
    await rooms.deleteRoom('visit_a');
    expect(await rooms.listRooms()).toEqual([]);
    await expect(rooms.deleteRoom('visit_a')).rejects.toMatchObject({ status: 404, code: 'not_found' });
  });

  it('records (egress) a room, and signs every webhook so that WebhookReceiver accepts it, in order', async () => {
    const rooms = new RoomServiceClient(sim.url, KEY, SECRET);
    const egress = new EgressClient(sim.url, KEY, SECRET);
    await rooms.createRoom({ name: 'visit_b' });
    await sim.join('visit_b', 'user:two');
    const started = await egress.startRoomCompositeEgress('visit_b', { file: new EncodedFileOutput({ filepath: 'x/y.mp4' }) });
    expect(started.roomName).toBe('visit_b');
    const stopped = await egress.stopEgress(started.egressId);
    expect(stopped.fileResults[0]).toMatchObject({ filename: 'x/y.mp4', location: 'livekit-simulator://recordings/x/y.mp4' });
    await expect(egress.stopEgress(started.egressId)).rejects.toMatchObject({ status: 412 });
    await expect(egress.startRoomCompositeEgress('nope', { file: new EncodedFileOutput({ filepath: 'z.mp4' }) })).rejects.toMatchObject({ status: 404 });
    await sim.leave('visit_b', 'user:two');
    await rooms.deleteRoom('visit_b');
    await sim.flush();
    const mine = received.filter((r) => r.event && (r.event.room?.name === 'visit_b' || r.event.egressInfo?.roomName === 'visit_b'));
    expect(received.every((r) => r.event !== null)).toBe(true);
    expect(mine.map((r) => r.event!.event)).toEqual(['room_started', 'participant_joined', 'egress_started', 'egress_ended', 'participant_left', 'room_finished']);
    expect(new Set(mine.map((r) => r.event!.id)).size).toBe(mine.length);
  });
});

async function joinToken(room: string): Promise<string> {
  const { AccessToken } = await import('livekit-server-sdk');
  const at = new AccessToken(KEY, SECRET, { identity: 'user:x' });
  at.addGrant({ room, roomJoin: true });
  return at.toJwt();
}

describe('configuration', () => {
  it('LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET go together', () => {
    expect(() => loadConfig({ LIVEKIT_URL: 'wss://example.livekit.cloud' })).toThrow(ConfigError);
    expect(() => loadConfig({ LIVEKIT_URL: 'wss://example.livekit.cloud', LIVEKIT_API_KEY: 'k' })).toThrow(/LIVEKIT_API_SECRET/);
    expect(() => loadConfig({ LIVEKIT_URL: 'wss://x.livekit.cloud', LIVEKIT_API_KEY: 'k', LIVEKIT_API_SECRET: 'short' })).toThrow(/LIVEKIT_API_SECRET/);
    expect(() => loadConfig({ LIVEKIT_URL: 'ftp://x', LIVEKIT_API_KEY: 'k', LIVEKIT_API_SECRET: SECRET })).toThrow(/LIVEKIT_URL/);
    expect(loadConfig({ LIVEKIT_URL: 'wss://x.livekit.cloud', LIVEKIT_API_KEY: 'k', LIVEKIT_API_SECRET: SECRET }).livekit).toMatchObject({ url: 'wss://x.livekit.cloud', apiKey: 'k', tokenTtlMinutes: 120 });
  });

  it('production without LiveKit refuses to start the module (no simulator); with LiveKit it uses it', async () => {
    const base = { NODE_ENV: 'production', KMS_KEY_ID: 'alias/x', DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' };
    const init = (env: Record<string, string>) => createTelehealthModule().init!({ config: loadConfig(env), crypto: {} } as unknown as ModuleDeps);
    await expect(init(base)).rejects.toThrow(/LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are required when NODE_ENV=production/);
    const inst = (await init({ ...base, LIVEKIT_URL: 'wss://x.livekit.cloud', LIVEKIT_API_KEY: 'k', LIVEKIT_API_SECRET: SECRET })) as { video: { kind: string; url: string }; simulator?: unknown; close(): Promise<void> };
    expect([inst.video.kind, inst.video.url, inst.simulator]).toEqual(['livekit', 'wss://x.livekit.cloud', undefined]);
    await inst.close();
  });
});
