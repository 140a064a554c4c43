import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createBlobStore, LocalBlobStore } from '../../src/platform/blobs/index.js';
import { BlobStoreError, S3BlobStore } from '../../src/platform/blobs/s3.js';
import { S3Simulator } from '../../src/platform/blobs/s3-simulator.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { BOOK, consentAll, createClinic, FakeClock, ok, publishConsent, telehealthModules, telehealthTestEnv, type AppointmentView } from '../modules/telehealth/helpers.js';

/**
 * The platform blob store: local files (the default) and S3 through the real AWS SDK against the in-repo S3 simulator,
 * which verifies every request's Signature V4. Content is whatever the caller puts (callers encrypt first).
 */
const ACCESS = { accessKeyId: 'AKIACAREBASETEST0001', secretAccessKey: randomBytes(30).toString('base64') };
let sim: S3Simulator;
let dir: string;

beforeAll(async () => {
  sim = await S3Simulator.start({ ...ACCESS, bucket: 'carebase-test' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carebase-blobs-'));
});
afterAll(async () => {
  await sim?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const s3 = (extra: Partial<ConstructorParameters<typeof S3BlobStore>[0]> = {}) =>
  new S3BlobStore({ bucket: 'carebase-test', region: 'us-east-1', endpoint: sim.url, forcePathStyle: true, credentials: ACCESS, timeoutMs: 5_000, ...extra });

describe('local blob store', () => {
  it('puts, gets, replaces and deletes; a missing object is null; files are private', async () => {
    const store = new LocalBlobStore(dir);
    const data = randomBytes(4096);
    await store.put('t1/telehealth/abc', data);
    expect((await store.get('t1/telehealth/abc'))!.equals(data)).toBe(true);
    expect(fs.statSync(path.join(dir, 't1', 'telehealth', 'abc')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 't1', 'telehealth')).mode & 0o777).toBe(0o700);
    // the store keeps exactly the bytes it is given (the caller's envelope), nothing added or transformed
    expect(fs.readFileSync(path.join(dir, 't1', 'telehealth', 'abc')).equals(data)).toBe(true);
    await store.put('t1/telehealth/abc', Buffer.from('second'));
    expect((await store.get('t1/telehealth/abc'))!.toString()).toBe('second');
    expect(await store.get('t1/telehealth/missing')).toBeNull();
    await store.delete('t1/telehealth/abc');
    await store.delete('t1/telehealth/abc');
    expect(await store.get('t1/telehealth/abc')).toBeNull();
    expect(fs.readdirSync(path.join(dir, 't1', 'telehealth')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses keys that could leave its folder', async () => {
    const store = new LocalBlobStore(dir);
    for (const key of ['../x', '/abs', 'a/../b', 'a/./b', 'a//b', '', 'a/b.c', 'a\\b', 'a/b/'.repeat(10)]) {
      await expect(store.put(key, Buffer.from('x')), key).rejects.toThrow(/invalid object key/);
    }
  });
});

describe('S3 blob store (AWS SDK against the S3 simulator)', () => {
  it('round-trips a 1 MB object byte for byte under the key prefix; a missing object is null; delete is idempotent', async () => {
    const store = s3({ prefix: 'env/test' });
    const data = randomBytes(1024 * 1024);
    await store.put('t2/telehealth/doc1', data);
    expect([...sim.objects.keys()]).toContain('env/test/t2/telehealth/doc1');
    expect(sim.objects.get('env/test/t2/telehealth/doc1')!.body.equals(data)).toBe(true);
    expect((await store.get('t2/telehealth/doc1'))!.equals(data)).toBe(true);
    expect(await store.get('t2/telehealth/none')).toBeNull();
    await store.delete('t2/telehealth/doc1');
    await store.delete('t2/telehealth/doc1');
    expect(await store.get('t2/telehealth/doc1')).toBeNull();
    await store.close();
  });

  it('a wrong secret is refused by the signature check and nothing is stored; the error names neither secret nor content', async () => {
    const before = sim.objects.size;
    const bad = s3({ credentials: { accessKeyId: ACCESS.accessKeyId, secretAccessKey: randomBytes(30).toString('base64') } });
    const err = await bad.put('t3/telehealth/x', Buffer.from('secret content')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobStoreError);
    expect((err as BlobStoreError).code).toBe('SignatureDoesNotMatch');
    expect(String((err as Error).message)).not.toMatch(/secret content|AKIA/);
    expect(sim.objects.size).toBe(before);
    expect(sim.refusals).toContain('SignatureDoesNotMatch');
    await bad.close();
  });

  it('the simulator refuses unsigned requests, unknown keys and buckets, and a body that is not the one signed', async () => {
    expect((await fetch(`${sim.url}/carebase-test/a`, { method: 'PUT', body: 'x' })).status).toBe(403);
    const other = s3({ credentials: { accessKeyId: 'AKIAOTHER00000000000', secretAccessKey: ACCESS.secretAccessKey } });
    await expect(other.get('t4/x/y')).rejects.toMatchObject({ code: 'InvalidAccessKeyId' });
    const wrongBucket = s3({ bucket: 'not-there' });
    await expect(wrongBucket.put('t4/x/y', Buffer.from('x'))).rejects.toMatchObject({ code: 'NoSuchBucket' });
    // a signed request replayed with another body: the declared payload hash no longer matches
    let captured: { url: string; headers: Record<string, string> } | undefined;
    const spy = s3();
    (spy as unknown as { client: { middlewareStack: { add: (fn: unknown, o: unknown) => void } } }).client.middlewareStack.add(
      (next: (a: unknown) => Promise<unknown>) => async (args: { request: { hostname: string; port?: number; path: string; query?: Record<string, string>; headers: Record<string, string> } }) => {
        const r = args.request;
        const q = new URLSearchParams(r.query ?? {}).toString();
        captured = { url: `http://${r.hostname}:${r.port}${r.path}${q ? `?${q}` : ''}`, headers: { ...r.headers } };
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low' },
    );
    await spy.put('t4/telehealth/orig', Buffer.from('original'));
    expect(captured).toBeDefined();
    const tampered = await fetch(captured!.url, { method: 'PUT', headers: captured!.headers, body: 'tampered' });
    expect(tampered.status).toBe(403);
    expect(await tampered.text()).toContain('XAmzContentSHA256Mismatch');
    expect(sim.objects.get('t4/telehealth/orig')!.body.toString()).toBe('original');
    // the same signed headers sent for another object, with a changed signed header, or with an added query: the signature no longer matches
    const refusedBefore = sim.refusals.filter((r) => r === 'SignatureDoesNotMatch').length;
    const otherPath = await fetch(captured!.url.replace('/t4/telehealth/orig', '/t4/telehealth/forged'), { method: 'PUT', headers: captured!.headers, body: 'original' });
    expect(otherPath.status).toBe(403);
    expect(await otherPath.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    const otherHeader = await fetch(captured!.url, { method: 'PUT', headers: { ...captured!.headers, 'content-type': 'text/html' }, body: 'original' });
    expect(otherHeader.status).toBe(403);
    expect(await otherHeader.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect(captured!.url).toContain('?x-id=PutObject');
    const otherQuery = await fetch(captured!.url.replace('x-id=PutObject', 'x-id=PutObject&versionId=1'), { method: 'PUT', headers: captured!.headers, body: 'original' });
    expect(otherQuery.status).toBe(403);
    expect(sim.refusals.filter((r) => r === 'SignatureDoesNotMatch').length).toBe(refusedBefore + 3);
    expect(sim.objects.has('t4/telehealth/forged')).toBe(false);
    // the untampered replay of the same request still verifies (the refusals above are the tampering, not the replay)
    expect((await fetch(captured!.url, { method: 'PUT', headers: captured!.headers, body: 'original' })).status).toBe(200);
    await spy.close();
    await other.close();
    await wrongBucket.close();
  });

  it('get: a missing bucket is an error, not a missing object; a bare 404 of an S3-compatible service is a missing object', async () => {
    const wrongBucket = s3({ bucket: 'not-there' });
    await expect(wrongBucket.get('t5/x/y')).rejects.toMatchObject({ code: 'NoSuchBucket' });
    await wrongBucket.close();
    // a real HTTP server that answers every request 404 without a body (some S3-compatible services do)
    const bare = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(404, { 'content-length': '0' });
        res.end();
      });
    });
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const store = s3({ endpoint: `http://127.0.0.1:${(bare.address() as AddressInfo).port}` });
    try {
      expect(await store.get('t5/x/y')).toBeNull();
    } finally {
      await store.close();
      bare.closeAllConnections();
      await new Promise<void>((r) => bare.close(() => r()));
    }
  });
});

describe('configuration', () => {
  const base = { DATA_DIR: dir ?? os.tmpdir() };
  it('BLOB_STORE=s3 needs S3_BUCKET; keys go in pairs; the default is local files under DATA_DIR/blobs', async () => {
    expect(() => loadConfig({ ...base, BLOB_STORE: 's3' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, BLOB_STORE: 's3', S3_BUCKET: 'b-1', S3_ACCESS_KEY_ID: 'x' })).toThrow(/S3_SECRET_ACCESS_KEY/);
    expect(() => loadConfig({ ...base, BLOB_STORE: 'ftp' })).toThrow(ConfigError);
    const local = await createBlobStore(loadConfig(base));
    expect(local).toBeInstanceOf(LocalBlobStore);
    expect((local as LocalBlobStore).root).toBe(path.join(path.resolve(base.DATA_DIR), 'blobs'));
    const cfg = loadConfig({ ...base, BLOB_STORE: 's3', S3_BUCKET: 'carebase-test', S3_ENDPOINT: sim.url, S3_ACCESS_KEY_ID: ACCESS.accessKeyId, S3_SECRET_ACCESS_KEY: ACCESS.secretAccessKey });
    expect(cfg.blobs.s3).toMatchObject({ bucket: 'carebase-test', region: 'us-east-1', forcePathStyle: true });
    const store = await createBlobStore(cfg);
    expect(store.kind).toBe('s3');
    await store.close();
  });
});

describe('telehealth documents on S3', () => {
  const clock = new FakeClock(Date.parse('2030-07-01T08:00:00Z'));
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      modules: telehealthModules({ now: clock.now }),
      env: { ...telehealthTestEnv, BLOB_STORE: 's3', S3_BUCKET: 'carebase-test', S3_ENDPOINT: sim.url, S3_ACCESS_KEY_ID: ACCESS.accessKeyId, S3_SECRET_ACCESS_KEY: ACCESS.secretAccessKey, S3_PREFIX: 'app' },
    });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  it('a shared image is stored in the bucket as an envelope (never the image) and downloads byte for byte', async () => {
    const c = await createClinic(t);
    await publishConsent(c);
    await consentAll(c);
    const startsAt = new Date(clock.now() + 30 * 60_000).toISOString();
    const appt = ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.patientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt } })).bookAppointment;
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
    const up = await fetch(`${t.url}/telehealth/visits/${appt.id}/documents`, { method: 'POST', headers: { ...c.patientUser.headers, 'content-type': 'image/png', 'x-file-name': 'rash.png' }, body: png });
    expect(up.status).toBe(200);
    const { id } = (await up.json()) as { id: string };
    const key = `app/${c.tenant.id}/telehealth/${id}`;
    expect(sim.objects.has(key)).toBe(true);
    expect(sim.objects.get(key)!.body.includes(png.subarray(0, 16))).toBe(false);
    const down = await fetch(`${t.url}/telehealth/documents/${id}/content`, { headers: c.provider.headers });
    expect(down.status).toBe(200);
    expect(Buffer.from(await down.arrayBuffer()).equals(png)).toBe(true);
  });
});
