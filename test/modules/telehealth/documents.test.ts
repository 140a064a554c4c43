import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { connect, next, request } from '../../helpers/realtime.js';
import { createUser, loginAs, type AuthSession } from '../../helpers/auth.js';
import { APPOINTMENT_FIELDS, BOOK, consentAll, createClinic, errorOf, FakeClock, ok, publishConsent, telehealthModules, telehealthTestEnv, type AppointmentView, type Clinic } from './helpers.js';

/**
 * Shared documents and images of a visit (upload and download over the REST routes, metadata over GraphQL), image
 * annotations as data, and the visit summary. The bytes are stored encrypted in the blob store (DATA_DIR/blobs), every
 * download is audited, another tenant gets 404 and a refusal stores nothing.
 */
const MAX = 64 * 1024;
const clock = new FakeClock(Date.parse('2030-06-03T08:00:00Z'));
let t: TestApp;
let c: Clinic;
let b: Clinic;
let nurse: AuthSession;

// a 1x1 PNG, a 2x3 PNG header (IHDR) and a small PDF
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

const step = (field: string) => `mutation($id: UUID!) { ${field}(id: $id) { ${APPOINTMENT_FIELDS} } }`;
const DOC_FIELDS = 'id appointmentId fileName description contentType sizeBytes sha256 width height uploaderRole downloadUrl';
const DOCS = `query($a: UUID!) { visitDocuments(appointmentId: $a) { ${DOC_FIELDS} annotations { id note } } }`;
const ANNOTATE = 'mutation($d: UUID!, $s: [AnnotationShapeInput!]!, $n: String) { annotateDocument(documentId: $d, shapes: $s, note: $n) { id documentId note shapes { type color strokeWidth points { x y } } } }';
const ANNOTATIONS = 'query($d: UUID!, $r: Boolean) { documentAnnotations(documentId: $d, includeRemoved: $r) { id note removedAt } }';
const REMOVE = 'mutation($id: UUID!) { removeAnnotation(id: $id) { id removedAt } }';
const WRITE_SUMMARY = 'mutation($i: WriteVisitSummaryInput!) { writeVisitSummary(input: $i) { body followUp version authorId } }';
const SUMMARY = `query($a: UUID!) { visitSummary(appointmentId: $a) { appointment { id status } session { appointmentId } vitalSigns { kind value } documents { id fileName } chatMessageCount documentCount note { body followUp version } } }`;

beforeAll(async () => {
  t = await startTestApp({ modules: telehealthModules({ now: clock.now, maxUploadBytes: MAX }), env: telehealthTestEnv });
  c = await createClinic(t);
  b = await createClinic(t);
  nurse = await loginAs(t, await createUser(t, c.tenant, 'NURSE'));
  await publishConsent(c);
  await consentAll(c);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

async function visit(clinic: Clinic, status: 'scheduled' | 'in_progress'): Promise<AppointmentView> {
  clock.advance(120);
  const startsAt = new Date(clock.now() + 30 * 60_000).toISOString();
  const appt = ok(await clinic.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: clinic.patientId, providerId: clinic.provider.user.id, visitTypeId: clinic.visitTypeId, startsAt } })).bookAppointment;
  if (status === 'in_progress') {
    ok(await clinic.as.patient(step('checkInAppointment'), { id: appt.id }));
    ok(await clinic.as.patient(step('enterWaitingRoom'), { id: appt.id }));
    ok(await clinic.as.provider(step('admitPatient'), { id: appt.id }));
  }
  return appt;
}

interface Uploaded {
  status: number;
  body: { id?: string; sha256?: string; width?: number; height?: number; errors?: { extensions: { code: string; reason?: string } }[]; [k: string]: unknown };
}

async function upload(session: AuthSession, appointmentId: string, content: Buffer, contentType: string, fileName: string | null = 'rash photo.png', extra: Record<string, string> = {}): Promise<Uploaded> {
  const headers: Record<string, string> = { ...session.headers, 'content-type': contentType, ...extra };
  delete headers['Content-Type'];
  if (fileName !== null) headers['x-file-name'] = encodeURIComponent(fileName);
  const res = await fetch(`${t.url}/telehealth/visits/${appointmentId}/documents`, { method: 'POST', headers, body: content });
  return { status: res.status, body: (await res.json()) as Uploaded['body'] };
}

const download = (session: AuthSession, id: string) => fetch(`${t.url}/telehealth/documents/${id}/content`, { headers: session.headers });
const docCount = async (appointmentId: string) => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from telehealth_documents where appointment_id = ${appointmentId}`)[0]!.n;
const blobFiles = () => {
  const root = path.join(t.app.config.dataDir, 'blobs');
  const out: string[] = [];
  const walk = (d: string) => fs.existsSync(d) && fs.readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : out.push(path.join(d, e.name))));
  walk(root);
  return out.sort();
};

describe('shared documents', () => {
  it('the patient shares an image: the provider hears of it, reads it back byte for byte, the blob is encrypted, the download is audited', async () => {
    const appt = await visit(c, 'in_progress');
    const socket = await connect(t.url, c.provider.token);
    try {
      expect((await request(socket, 'room:join', { room: `visit:${appt.id}` })).ok).toBe(true);
      const heard = next<{ type: string; payload: Record<string, unknown> }>(socket, 'event', 10_000, (e) => e.type === 'visit.documentShared');
      const up = await upload(c.patientUser, appt.id, PNG, 'image/png', 'éczema – left arm.png', { 'x-description': encodeURIComponent('since Monday') });
      expect(up.status, JSON.stringify(up.body)).toBe(200);
      expect(up.body).toMatchObject({ appointmentId: appt.id, fileName: 'éczema – left arm.png', description: 'since Monday', contentType: 'image/png', sizeBytes: PNG.length, width: 1, height: 1, uploaderRole: 'patient' });
      const ev = await heard;
      expect(ev.payload).toMatchObject({ appointmentId: appt.id, documentId: up.body.id, uploaderRole: 'patient' });
      expect(JSON.stringify(ev.payload)).not.toContain('czema');

      const listed = ok(await c.as.provider<{ visitDocuments: { id: string; fileName: string; downloadUrl: string }[] }>(DOCS, { a: appt.id })).visitDocuments;
      expect(listed.map((d) => [d.id, d.fileName])).toEqual([[up.body.id, 'éczema – left arm.png']]);

      const res = await fetch(`${t.url}${listed[0]!.downloadUrl}`, { headers: c.provider.headers });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
      expect(res.headers.get('content-disposition')).toContain("filename*=UTF-8''");
      expect(res.headers.get('cache-control')).toContain('no-store');
      expect(Buffer.from(await res.arrayBuffer()).equals(PNG)).toBe(true);
      const requestId = res.headers.get('x-request-id');

      // stored: an envelope in DATA_DIR/blobs, never the image; the file name encrypted in the row
      const [row] = await t.db.owner<{ blob_key: string; file_name: Buffer }[]>`select blob_key, file_name from telehealth_documents where id = ${up.body.id!}`;
      const blob = fs.readFileSync(path.join(t.app.config.dataDir, 'blobs', ...row!.blob_key.split('/')));
      expect(blob.includes(PNG.subarray(0, 16))).toBe(false);
      expect(blob.length).toBeGreaterThan(PNG.length);
      expect(Buffer.from(row!.file_name).toString('latin1')).not.toContain('left arm');

      const audit = await t.db.owner<{ action: string; outcome: string; patient_id: string; actor_id: string }[]>`
        select action, outcome, patient_id, actor_id from audit_events where resource_type = 'VisitDocument' and resource_id = ${up.body.id!} order by at, seq`;
      expect(audit.map((a) => [a.action, a.outcome])).toEqual(expect.arrayContaining([['create', 'allowed'], ['read', 'allowed']]));
      expect(audit.every((a) => a.patient_id === c.patientId)).toBe(true);
      if (requestId) {
        const [dl] = await t.db.owner`select action from audit_events where request_id = ${requestId} and resource_type = 'VisitDocument'`;
        expect(dl).toMatchObject({ action: 'read' });
      }
      // the patient reads their own document too
      expect((await download(c.patientUser, up.body.id!)).status).toBe(200);
    } finally {
      socket.disconnect();
    }
  });

  it('a PDF is shared and downloaded as a PDF; an Idempotency-Key retry is the same document', async () => {
    const appt = await visit(c, 'scheduled');
    const key = randomUUID();
    const first = await upload(c.provider, appt.id, PDF, 'application/pdf', 'lab results.pdf', { 'idempotency-key': key });
    const again = await upload(c.provider, appt.id, PDF, 'application/pdf', 'lab results.pdf', { 'idempotency-key': key });
    expect(first.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(first.body).toMatchObject({ width: null, height: null, uploaderRole: 'provider' });
    expect(await docCount(appt.id)).toBe(1);
    const res = await download(c.patientUser, first.body.id!);
    expect(res.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await res.arrayBuffer()).equals(PDF)).toBe(true);
  });

  it('refuses a wrong type, bytes that are not what they claim, an oversized or empty upload, a missing or path-like name: typed, nothing stored', async () => {
    const appt = await visit(c, 'in_progress');
    const files = blobFiles();
    const cases: [Buffer, string, string | null, number, string, string?][] = [
      [Buffer.from('hello'), 'text/plain', 'note.txt', 400, 'BAD_USER_INPUT', 'UNSUPPORTED_MEDIA_TYPE'],
      [Buffer.from('{}'), 'application/json', 'x.json', 400, 'BAD_USER_INPUT', 'UNSUPPORTED_MEDIA_TYPE'],
      [Buffer.from('x'), 'application/octet-stream', 'x.bin', 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE'],
      [PNG, 'application/pdf', 'x.pdf', 400, 'BAD_USER_INPUT', 'CONTENT_TYPE_MISMATCH'],
      [PDF, 'image/png', 'x.png', 400, 'BAD_USER_INPUT', 'CONTENT_TYPE_MISMATCH'],
      [Buffer.concat([PNG.subarray(0, 8), Buffer.alloc(40)]), 'image/png', 'x.png', 400, 'BAD_USER_INPUT', 'CONTENT_TYPE_MISMATCH'],
      [Buffer.concat([PDF, Buffer.alloc(MAX)]), 'application/pdf', 'big.pdf', 413, 'PAYLOAD_TOO_LARGE'],
      [PNG, 'image/png', null, 400, 'BAD_USER_INPUT'],
      [PNG, 'image/png', '../../etc/passwd', 400, 'BAD_USER_INPUT'],
      [PNG, 'image/png', 'a\u0000b.png', 400, 'BAD_USER_INPUT'],
    ];
    for (const [content, type, name, status, code, reason] of cases) {
      const res = await upload(c.patientUser, appt.id, content, type, name);
      expect([res.status, type, name], JSON.stringify(res.body)).toEqual([status, type, name]);
      const err = res.body.errors?.[0]?.extensions ?? (res.body as { code?: string });
      if (code.startsWith('FST_')) expect(JSON.stringify(res.body)).not.toContain('at ');
      else expect(err).toMatchObject(reason ? { code, reason } : { code });
    }
    const empty = await fetch(`${t.url}/telehealth/visits/${appt.id}/documents`, { method: 'POST', headers: { ...c.patientUser.headers, 'content-type': 'image/png', 'x-file-name': 'e.png' }, body: Buffer.alloc(0) });
    expect(empty.status).toBe(400);
    expect(await docCount(appt.id)).toBe(0);
    expect(blobFiles()).toEqual(files);
  });

  it('across tenants and roles: another clinic gets 404, a user without clinical access 403 (audited), a non-participant patient 403', async () => {
    const appt = await visit(c, 'in_progress');
    const up = await upload(c.provider, appt.id, PNG, 'image/png', 'wound.png');
    expect(up.status).toBe(200);
    // another clinic's provider: neither the visit nor the document exists for them
    expect((await upload(b.provider, appt.id, PNG, 'image/png')).status).toBe(404);
    const foreign = await download(b.provider, up.body.id!);
    expect(foreign.status).toBe(404);
    expect(((await foreign.json()) as Uploaded['body']).errors?.[0]?.extensions.code).toBe('NOT_FOUND');
    expect(errorOf(await b.as.provider(DOCS, { a: appt.id })).code).toBe('NOT_FOUND');
    // front desk has no clinical read: refused, and the refusal is in the audit log
    const fd = await download(c.frontDesk, up.body.id!);
    expect(fd.status).toBe(403);
    const denied = await t.db.owner`select outcome from audit_events where resource_type = 'VisitDocument' and actor_id = ${c.frontDesk.user.id} and outcome = 'denied'`;
    expect(denied.length).toBeGreaterThan(0);
    expect(errorOf(await c.as.frontDesk(DOCS, { a: appt.id })).code).toBe('FORBIDDEN');
    // the clinic's patient may not read another patient's visit documents
    const other = ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.otherPatientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt: new Date(clock.now() + 10 * 86_400_000).toISOString() } })).bookAppointment;
    const otherDoc = await upload(c.provider, other.id, PNG, 'image/png', 'other.png');
    expect(otherDoc.status).toBe(200);
    expect((await download(c.patientUser, otherDoc.body.id!)).status).toBe(403);
    expect((await upload(c.patientUser, other.id, PNG, 'image/png')).status).toBe(403);
    // a nurse (tenant-wide clinical read) may read it
    expect((await download(nurse, otherDoc.body.id!)).status).toBe(200);
    // a malformed id is a typed 400
    expect((await download(c.provider, 'not-a-uuid')).status).toBe(400);
  });

  it('a request that fails after the blob was written leaves no blob behind (removed when its transaction rolls back)', async () => {
    const appt = await visit(c, 'in_progress');
    // the row's insert fails after the blob is in the store (a trigger of this test's database refuses this one size)
    const odd = Buffer.concat([PDF, Buffer.from('% padding to a size no other test uses\n')]);
    await t.db.owner.unsafe(`create or replace function test_refuse_doc() returns trigger language plpgsql as $$ begin if new.size_bytes = ${odd.length} then raise exception 'refused by the test'; end if; return new; end $$`);
    await t.db.owner`create trigger test_refuse_doc before insert on telehealth_documents for each row execute function test_refuse_doc()`;
    try {
      const files = blobFiles();
      const res = await upload(c.provider, appt.id, odd, 'application/pdf', 'will fail.pdf');
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(JSON.stringify(res.body)).not.toContain('refused by the test');
      expect(await docCount(appt.id)).toBe(0);
      expect(blobFiles()).toEqual(files);
    } finally {
      await t.db.owner`drop trigger test_refuse_doc on telehealth_documents`;
    }
  });

  it('a visit that ended takes no new documents', async () => {
    const appt = await visit(c, 'in_progress');
    ok(await c.as.provider(step('completeVisit'), { id: appt.id }));
    const res = await upload(c.patientUser, appt.id, PNG, 'image/png');
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'VISIT_NOT_OPEN' });
    expect(await docCount(appt.id)).toBe(0);
  });
});

describe('annotations', () => {
  it('shapes are stored as data with a note; the room hears of it; only the author removes it; removed ones are kept', async () => {
    const appt = await visit(c, 'in_progress');
    const img = await upload(c.patientUser, appt.id, PNG, 'image/png', 'mole.png');
    const shapes = [
      { type: 'RECT', points: [{ x: 0.1, y: 0.2 }, { x: 0.4, y: 0.5 }], color: '#00ff00' },
      { type: 'FREEHAND', points: [{ x: 0.5, y: 0.5 }, { x: 0.55, y: 0.52 }, { x: 0.6, y: 0.58 }], strokeWidth: 2 },
      { type: 'POINT', points: [{ x: 1, y: 0 }] },
    ];
    const socket = await connect(t.url, c.patientUser.token);
    let annotationId: string;
    try {
      expect((await request(socket, 'room:join', { room: `visit:${appt.id}` })).ok).toBe(true);
      const heard = next<{ type: string; payload: Record<string, unknown> }>(socket, 'event', 10_000, (e) => e.type === 'visit.annotationAdded');
      const a = ok(await c.as.provider<{ annotateDocument: { id: string; note: string; shapes: { type: string; color: string; strokeWidth: number; points: unknown[] }[] } }>(ANNOTATE, { d: img.body.id, s: shapes, n: 'Irregular border: biopsy' })).annotateDocument;
      annotationId = a.id;
      expect(a.note).toBe('Irregular border: biopsy');
      expect(a.shapes.map((s) => [s.type, s.color, s.strokeWidth, s.points.length])).toEqual([
        ['RECT', '#00FF00', 3, 2],
        ['FREEHAND', '#FF0000', 2, 3],
        ['POINT', '#FF0000', 3, 1],
      ]);
      expect((await heard).payload).toMatchObject({ documentId: img.body.id, annotationId: a.id });
    } finally {
      socket.disconnect();
    }
    // the image itself is unchanged
    expect(Buffer.from(await (await download(c.provider, img.body.id!)).arrayBuffer()).equals(PNG)).toBe(true);
    const seen = ok(await c.as.patient<{ documentAnnotations: { id: string; note: string }[] }>(ANNOTATIONS, { d: img.body.id })).documentAnnotations;
    expect(seen).toEqual([{ id: annotationId, note: 'Irregular border: biopsy', removedAt: null }]);
    const [stored] = await t.db.owner<{ note: Buffer }[]>`select note from telehealth_annotations where id = ${annotationId}`;
    expect(Buffer.from(stored!.note).toString('latin1')).not.toContain('biopsy');

    expect(errorOf(await c.as.patient(REMOVE, { id: annotationId })).extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'NOT_THE_AUTHOR' });
    expect(ok(await c.as.provider<{ removeAnnotation: { removedAt: string | null } }>(REMOVE, { id: annotationId })).removeAnnotation.removedAt).not.toBeNull();
    expect(ok(await c.as.provider<{ documentAnnotations: unknown[] }>(ANNOTATIONS, { d: img.body.id })).documentAnnotations).toEqual([]);
    expect(ok(await c.as.provider<{ documentAnnotations: unknown[] }>(ANNOTATIONS, { d: img.body.id, r: true })).documentAnnotations).toHaveLength(1);
    expect(errorOf(await b.as.provider(ANNOTATIONS, { d: img.body.id })).code).toBe('NOT_FOUND');
  });

  it('refuses shapes outside the image, wrong point counts, too many shapes, a bad color, a PDF, another tenant: nothing stored', async () => {
    const appt = await visit(c, 'in_progress');
    const img = await upload(c.patientUser, appt.id, PNG, 'image/png');
    const pdf = await upload(c.patientUser, appt.id, PDF, 'application/pdf', 'a.pdf');
    const p = (x: number, y: number) => ({ x, y });
    const bad: [string, unknown][] = [
      [img.body.id!, [{ type: 'RECT', points: [p(0.1, 0.1), p(1.5, 0.5)] }]],
      [img.body.id!, [{ type: 'RECT', points: [p(0.1, 0.1), p(0.2, 0.2), p(0.3, 0.3)] }]],
      [img.body.id!, [{ type: 'POLYGON', points: [p(0.1, 0.1), p(0.2, 0.2)] }]],
      [img.body.id!, []],
      [img.body.id!, Array.from({ length: 51 }, () => ({ type: 'POINT', points: [p(0.5, 0.5)] }))],
      [img.body.id!, [{ type: 'POINT', points: [p(0.5, 0.5)], color: 'red' }]],
      [img.body.id!, [{ type: 'POINT', points: [p(0.5, 0.5)], strokeWidth: 0 }]],
      [pdf.body.id!, [{ type: 'POINT', points: [p(0.5, 0.5)] }]],
    ];
    for (const [d, s] of bad) expect(errorOf(await c.as.provider(ANNOTATE, { d, s })).code, JSON.stringify(s).slice(0, 80)).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(ANNOTATE, { d: pdf.body.id, s: [{ type: 'POINT', points: [p(0.5, 0.5)] }] })).extensions.reason).toBe('NOT_AN_IMAGE');
    expect(errorOf(await b.as.provider(ANNOTATE, { d: img.body.id, s: [{ type: 'POINT', points: [p(0.5, 0.5)] }] })).code).toBe('NOT_FOUND');
    const n = (await t.db.owner<{ n: number }[]>`select count(*)::int as n from telehealth_annotations where appointment_id = ${appt.id}`)[0]!.n;
    expect(n).toBe(0);
  });
});

describe('visit summary', () => {
  it('the provider writes and revises the summary (versioned); the summary gathers vitals, documents, chat and attendance; the patient reads their own', async () => {
    const appt = await visit(c, 'in_progress');
    ok(await c.as.provider('mutation($i: RecordVitalSignInput!) { recordVitalSign(input: $i) { id } }', { i: { appointmentId: appt.id, kind: 'HEART_RATE', value: 72, unit: '/min' } }));
    ok(await c.as.patient('mutation($a: UUID!, $b: String!, $k: String!) { sendVisitChatMessage(appointmentId: $a, body: $b, clientMessageId: $k) { id } }', { a: appt.id, b: 'Thank you', k: 'k1' }));
    const doc = await upload(c.patientUser, appt.id, PNG, 'image/png', 'arm.png');

    const v1 = ok(await c.as.provider<{ writeVisitSummary: { version: number } }>(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: 'Assessment: eczema.\nPlan: emollients.', followUp: 'Review in 4 weeks', version: 0 } })).writeVisitSummary;
    expect(v1.version).toBe(1);
    // a second writer who read no summary: CONFLICT, nothing overwritten
    expect(errorOf(await c.as.provider(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: 'Other text', version: 0 } })).extensions).toMatchObject({ code: 'CONFLICT', reason: 'VERSION_CONFLICT' });
    ok(await c.as.provider(step('completeVisit'), { id: appt.id }));
    const v2 = ok(await c.as.provider<{ writeVisitSummary: { version: number; body: string } }>(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: 'Assessment: atopic eczema.\nPlan: emollients, topical steroid.', version: 1 } })).writeVisitSummary;
    expect(v2).toMatchObject({ version: 2, body: 'Assessment: atopic eczema.\nPlan: emollients, topical steroid.' });
    expect(errorOf(await c.as.provider(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: 'stale', version: 1 } })).code).toBe('CONFLICT');

    type S = { visitSummary: { appointment: { id: string; status: string }; vitalSigns: { kind: string; value: number }[]; documents: { id: string; fileName: string }[]; chatMessageCount: number; documentCount: number; note: { body: string; followUp: string | null; version: number } } };
    const s = ok(await c.as.patient<S>(SUMMARY, { a: appt.id })).visitSummary;
    expect(s.appointment).toEqual({ id: appt.id, status: 'COMPLETED' });
    expect(s.vitalSigns).toEqual([{ kind: 'HEART_RATE', value: 72 }]);
    expect(s.documents).toEqual([{ id: doc.body.id, fileName: 'arm.png' }]);
    expect(s).toMatchObject({ chatMessageCount: 1, documentCount: 1, note: { version: 2, followUp: null } });
    const [stored] = await t.db.owner<{ body: Buffer }[]>`select body from telehealth_visit_summaries where appointment_id = ${appt.id}`;
    expect(Buffer.from(stored!.body).toString('latin1')).not.toContain('eczema');
    const audit = await t.db.owner<{ action: string }[]>`select action from audit_events where resource_type = 'VisitSummary' and resource_id = ${appt.id} order by at, seq`;
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(['create', 'update', 'read']));
  });

  it('refuses a summary before the visit, from someone not conducting it, with a bad version; other tenants and the front desk cannot read it', async () => {
    const appt = await visit(c, 'scheduled');
    expect(errorOf(await c.as.provider(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: 'Too early', version: 0 } })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'VISIT_NOT_OPEN' });
    expect(errorOf(await c.as.patient(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: 'Mine', version: 0 } })).code).toBe('FORBIDDEN');
    expect(errorOf(await c.as.provider(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: 'x', version: -1 } })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(WRITE_SUMMARY, { i: { appointmentId: appt.id, body: '   ', version: 0 } })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await b.as.provider(SUMMARY, { a: appt.id })).code).toBe('NOT_FOUND');
    expect(errorOf(await c.as.frontDesk(SUMMARY, { a: appt.id })).code).toBe('FORBIDDEN');
    const s = ok(await c.as.provider<{ visitSummary: { note: unknown; documentCount: number } }>(SUMMARY, { a: appt.id })).visitSummary;
    expect(s).toMatchObject({ note: null, documentCount: 0 });
  });
});
