import { createHash, randomUUID } from 'node:crypto';
import { and, asc, count, eq, isNull, sql } from 'drizzle-orm';
import { imageSize } from 'image-size';
import { textArg, uuidArg } from '../../platform/args.js';
import type { FieldContext } from '../../platform/crypto/index.js';
import { AppError, ErrorCode, badInput, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { authorizeAppointment } from './appointments.js';
import { instanceOf, participantRole, principalOf, visitNotOpen } from './common.js';
import { telehealthAnnotations, telehealthChatMessages, telehealthDocuments, telehealthVisitSummaries, type Appointment } from './tables.js';

/**
 * Shared documents and images of a visit, their annotations and the visit summary.
 *
 * A participant uploads through `POST /telehealth/visits/:appointmentId/documents` (the route adapter: same
 * credentials and rate limits as /graphql, audited, idempotent by Idempotency-Key). The bytes are checked against the
 * declared type (PNG, JPEG, WebP by their headers, PDF by its signature), encrypted with an envelope bound to the
 * tenant and put in the platform blob store; the row keeps the plaintext's sha256, checked on every download. Downloads
 * (`GET /telehealth/documents/:id/content`) are audited as PHI reads of the visit's patient. Annotations are shapes as
 * data in image-relative coordinates, never burnt into the image.
 */

/** Accepted types: the declared Content-Type and the format the bytes must have. */
export const DOCUMENT_TYPES: Readonly<Record<string, 'png' | 'jpg' | 'webp' | 'pdf'>> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'application/pdf': 'pdf',
};
export const DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024;

/** Statuses in which documents may be shared (before the visit too: a patient sends a photo after booking). */
const SHARE_OPEN = new Set(['scheduled', 'checked_in', 'waiting', 'in_progress']);
/** Statuses in which a shared image may be annotated (after the visit too: the provider reviewing it). */
const ANNOTATE_OPEN = new Set(['scheduled', 'checked_in', 'waiting', 'in_progress', 'completed']);

export type VisitDocument = Omit<typeof telehealthDocuments.$inferSelect, 'fileName' | 'description' | 'blobKey'> & { fileName: string; description: string | null };

const contentContext = (tenantId: string): FieldContext => ({ tenantId, table: 'telehealth_documents', column: 'content' });

/** Checks the bytes against the declared type; returns the image's size (null for a PDF). */
function sniff(contentType: string, body: Buffer): { width: number | null; height: number | null } {
  const expected = DOCUMENT_TYPES[contentType];
  const mismatch = () => new AppError(ErrorCode.BAD_USER_INPUT, `The content is not a valid ${contentType} file`, { field: 'body', reason: 'CONTENT_TYPE_MISMATCH' });
  if (expected === 'pdf') {
    if (!body.subarray(0, 5).equals(Buffer.from('%PDF-'))) throw mismatch();
    return { width: null, height: null };
  }
  let size;
  try {
    size = imageSize(body);
  } catch {
    throw mismatch();
  }
  if (size.type !== expected || !(size.width > 0) || !(size.height > 0)) throw mismatch();
  return { width: size.width, height: size.height };
}

async function openDocument(scope: RequestScope, row: typeof telehealthDocuments.$inferSelect): Promise<VisitDocument> {
  const crypto = instanceOf(scope).crypto;
  const { blobKey: _key, ...rest } = row;
  const plain = await crypto.decryptFields(telehealthDocuments, row.tenantId, { fileName: row.fileName, description: row.description });
  return { ...rest, fileName: plain.fileName, description: plain.description ?? null };
}

export interface UploadInput {
  appointmentId: unknown;
  contentType: unknown;
  fileName: unknown;
  description?: unknown;
  body: unknown;
}

/** A participant shares a document or image in the visit (the route's handler). */
export async function uploadDocument(scope: RequestScope, input: UploadInput): Promise<VisitDocument> {
  const appt = await authorizeAppointment(scope, input.appointmentId, 'join');
  const p = principalOf(scope);
  if (p.kind !== 'user') throw badInput('Only a participant of the visit may share documents', 'appointmentId');
  const inst = instanceOf(scope);
  const contentType = typeof input.contentType === 'string' ? input.contentType.split(';')[0]!.trim().toLowerCase() : '';
  if (!DOCUMENT_TYPES[contentType]) {
    throw new AppError(ErrorCode.BAD_USER_INPUT, `Content-Type must be one of ${Object.keys(DOCUMENT_TYPES).join(', ')}`, { field: 'contentType', reason: 'UNSUPPORTED_MEDIA_TYPE' });
  }
  const body = input.body;
  if (!Buffer.isBuffer(body) || body.length === 0) throw new AppError(ErrorCode.BAD_USER_INPUT, 'The upload is empty', { field: 'body', reason: 'EMPTY' });
  if (body.length > inst.maxUploadBytes) throw new AppError(ErrorCode.PAYLOAD_TOO_LARGE, `A document may be at most ${inst.maxUploadBytes} bytes`, { field: 'body', limit: inst.maxUploadBytes });
  const fileName = textArg(input.fileName, 'fileName', { max: 255 })!;
  if (/[/\\]/.test(fileName)) throw badInput('fileName is a name, not a path', 'fileName');
  const description = textArg(input.description, 'description', { max: 2000, optional: true }) ?? null;
  const { width, height } = sniff(contentType, body);
  if (!SHARE_OPEN.has(appt.status)) throw visitNotOpen('sharing documents', appt.status);

  const id = randomUUID();
  const blobKey = `${appt.tenantId}/telehealth/${id}`;
  const sha256 = createHash('sha256').update(body).digest('hex');
  const envelope = await inst.crypto.encryptBytes(body, contentContext(appt.tenantId));
  const enc = await inst.crypto.encryptFields(telehealthDocuments, appt.tenantId, { fileName, description });
  const db = await scope.db();
  // the blob first, then the row: a row never points at nothing. A request that fails after the put removes the blob
  // when its transaction rolls back; only a commit in doubt (the database did not confirm) can leave an orphan blob,
  // unreadable without its row.
  await inst.blobs.put(blobKey, envelope);
  scope.onRollback(() => inst.blobs.delete(blobKey));
  const [row] = await db
    .insert(telehealthDocuments)
    .values({ id, tenantId: appt.tenantId, appointmentId: appt.id, patientId: appt.patientId, uploadedBy: p.id, uploaderRole: participantRole(scope, appt), fileName: enc.fileName!, description: enc.description ?? null, contentType, sizeBytes: body.length, sha256, blobKey, width, height })
    .returning();
  scope.recordPhiAccess({ patientIds: [appt.patientId], resourceType: 'VisitDocument', resourceId: id, fields: ['VisitDocument.content', 'VisitDocument.fileName'], action: 'create', outcome: 'allowed', detail: { contentType, sizeBytes: body.length } });
  await emitEvent(db, { type: 'visit.documentShared', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, documentId: id, uploaderRole: row!.uploaderRole }, rooms: [`visit:${appt.id}`] });
  return openDocument(scope, row!);
}

async function loadDocument(scope: RequestScope, idArg: unknown, field = 'documentId') {
  const id = uuidArg(idArg, field);
  const p = principalOf(scope);
  const db = await scope.db();
  const [row] = await db.select().from(telehealthDocuments).where(and(eq(telehealthDocuments.tenantId, p.tenantId), eq(telehealthDocuments.id, id)));
  if (!row) throw notFound('Document');
  return row;
}

/** The visit's shared documents, oldest first (clinical read of the visit). */
export async function visitDocuments(scope: RequestScope, args: { appointmentId: unknown }): Promise<VisitDocument[]> {
  const appt = await authorizeAppointment(scope, args.appointmentId, 'clinical');
  const db = await scope.db();
  const rows = await db
    .select()
    .from(telehealthDocuments)
    .where(and(eq(telehealthDocuments.tenantId, appt.tenantId), eq(telehealthDocuments.appointmentId, appt.id)))
    .orderBy(asc(telehealthDocuments.createdAt), asc(telehealthDocuments.id));
  return Promise.all(rows.map((r) => openDocument(scope, r)));
}

/** One document's metadata (clinical read of its visit). */
export async function visitDocument(scope: RequestScope, idArg: unknown): Promise<VisitDocument> {
  const row = await loadDocument(scope, idArg, 'id');
  await authorizeAppointment(scope, row.appointmentId, 'clinical');
  return openDocument(scope, row);
}

/** The document's bytes, decrypted and checked against the stored digest; the download is audited (the route's handler). */
export async function downloadDocument(scope: RequestScope, idArg: unknown): Promise<{ document: VisitDocument; content: Buffer }> {
  const row = await loadDocument(scope, idArg, 'id');
  await authorizeAppointment(scope, row.appointmentId, 'clinical');
  const inst = instanceOf(scope);
  const envelope = await inst.blobs.get(row.blobKey);
  if (!envelope) throw new AppError(ErrorCode.PROVIDER_UNAVAILABLE, 'The document’s content is not in the blob store', { reason: 'CONTENT_MISSING' });
  const content = await inst.crypto.decryptBytes(envelope, contentContext(row.tenantId));
  if (createHash('sha256').update(content).digest('hex') !== row.sha256) {
    content.fill(0);
    throw new AppError(ErrorCode.PROVIDER_UNAVAILABLE, 'The document’s content does not match what was uploaded', { reason: 'CONTENT_MISMATCH' });
  }
  scope.recordPhiAccess({ patientIds: [row.patientId], resourceType: 'VisitDocument', resourceId: row.id, fields: ['VisitDocument.content'], action: 'read', outcome: 'allowed', detail: { download: true, sizeBytes: row.sizeBytes } });
  return { document: await openDocument(scope, row), content };
}

// ------------------------------------------------------------------ annotations

export const SHAPE_TYPES = ['rect', 'ellipse', 'arrow', 'line', 'polyline', 'polygon', 'freehand', 'point'] as const;
export type ShapeType = (typeof SHAPE_TYPES)[number];
/** How many points each shape takes: [min, max]. */
const POINTS: Record<ShapeType, [number, number]> = { rect: [2, 2], ellipse: [2, 2], arrow: [2, 2], line: [2, 2], point: [1, 1], polyline: [2, 500], polygon: [3, 500], freehand: [2, 2000] };
const MAX_SHAPES = 50;

export interface Shape {
  type: ShapeType;
  /** image-relative: x and y from 0 (left, top) to 1 (right, bottom) */
  points: { x: number; y: number }[];
  /** #RRGGBB */
  color: string;
  /** stroke width in image pixels */
  strokeWidth: number;
}

export type Annotation = Omit<typeof telehealthAnnotations.$inferSelect, 'note' | 'shapes'> & { note: string | null; shapes: Shape[] };

function shapesArg(value: unknown): Shape[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_SHAPES) throw badInput(`shapes must hold 1 to ${MAX_SHAPES} shapes`, 'shapes');
  return value.map((raw, i) => {
    const s = raw as { type?: unknown; points?: unknown; color?: unknown; strokeWidth?: unknown };
    const field = `shapes[${i}]`;
    const type = typeof s?.type === 'string' ? (s.type.toLowerCase() as ShapeType) : undefined;
    if (!type || !SHAPE_TYPES.includes(type)) throw badInput(`${field}.type must be one of ${SHAPE_TYPES.join(', ')}`, field);
    const [min, max] = POINTS[type];
    if (!Array.isArray(s.points) || s.points.length < min || s.points.length > max) throw badInput(`${field}: a ${type} takes ${min === max ? min : `${min} to ${max}`} points`, field);
    const points = s.points.map((pt: { x?: unknown; y?: unknown }) => {
      const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;
      if (!pt || !ok(pt.x) || !ok(pt.y)) throw badInput(`${field}: points are image-relative, x and y from 0 to 1`, field);
      return { x: pt.x, y: pt.y };
    });
    const color = s.color ?? '#FF0000';
    if (typeof color !== 'string' || !/^#[0-9A-Fa-f]{6}$/.test(color)) throw badInput(`${field}.color must be #RRGGBB`, field);
    const strokeWidth = s.strokeWidth ?? 3;
    if (typeof strokeWidth !== 'number' || !Number.isFinite(strokeWidth) || strokeWidth < 0.5 || strokeWidth > 100) throw badInput(`${field}.strokeWidth must be 0.5 to 100`, field);
    return { type, points, color: color.toUpperCase(), strokeWidth };
  });
}

async function openAnnotation(scope: RequestScope, row: typeof telehealthAnnotations.$inferSelect): Promise<Annotation> {
  const { note } = await instanceOf(scope).crypto.decryptFields(telehealthAnnotations, row.tenantId, { note: row.note });
  return { ...row, shapes: row.shapes as Shape[], note: note ?? null };
}

/** A participant annotates a shared image (shapes and an optional note); a visit.annotationAdded event tells the room. */
export async function annotateDocument(scope: RequestScope, input: { documentId: unknown; shapes: unknown; note?: unknown }): Promise<Annotation> {
  const doc = await loadDocument(scope, input.documentId);
  const appt = await authorizeAppointment(scope, doc.appointmentId, 'join');
  const p = principalOf(scope);
  if (p.kind !== 'user') throw badInput('Only a participant of the visit may annotate', 'documentId');
  if (doc.width === null) throw new AppError(ErrorCode.BAD_USER_INPUT, 'Only images are annotated', { field: 'documentId', reason: 'NOT_AN_IMAGE' });
  const shapes = shapesArg(input.shapes);
  const note = textArg(input.note, 'note', { max: 2000, optional: true }) ?? null;
  if (!ANNOTATE_OPEN.has(appt.status)) throw visitNotOpen('annotations', appt.status);
  const inst = instanceOf(scope);
  const enc = await inst.crypto.encryptFields(telehealthAnnotations, appt.tenantId, { note });
  const db = await scope.db();
  const [row] = await db
    .insert(telehealthAnnotations)
    .values({ tenantId: appt.tenantId, documentId: doc.id, appointmentId: appt.id, patientId: appt.patientId, authorId: p.id, shapes, note: enc.note ?? null })
    .returning();
  scope.recordPhiAccess({ patientIds: [appt.patientId], resourceType: 'VisitAnnotation', resourceId: row!.id, fields: ['VisitAnnotation.shapes', 'VisitAnnotation.note'], action: 'create', outcome: 'allowed', detail: { documentId: doc.id, shapes: shapes.length } });
  await emitEvent(db, { type: 'visit.annotationAdded', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, documentId: doc.id, annotationId: row!.id }, rooms: [`visit:${appt.id}`] });
  return openAnnotation(scope, row!);
}

/** Its author removes an annotation (the row stays, marked removed); a visit.annotationRemoved event tells the room. */
export async function removeAnnotation(scope: RequestScope, idArg: unknown): Promise<Annotation> {
  const id = uuidArg(idArg, 'id');
  const p = principalOf(scope);
  const db = await scope.db();
  const [row] = await db.select().from(telehealthAnnotations).where(and(eq(telehealthAnnotations.tenantId, p.tenantId), eq(telehealthAnnotations.id, id)));
  if (!row) throw notFound('Annotation');
  await authorizeAppointment(scope, row.appointmentId, 'join');
  if (row.authorId !== p.id) throw new AppError(ErrorCode.FORBIDDEN, 'Only its author removes an annotation', { reason: 'NOT_THE_AUTHOR' });
  if (row.removedAt) return openAnnotation(scope, row);
  const [updated] = await db
    .update(telehealthAnnotations)
    .set({ removedAt: sql`now()`, removedBy: p.id })
    .where(and(eq(telehealthAnnotations.tenantId, p.tenantId), eq(telehealthAnnotations.id, id), isNull(telehealthAnnotations.removedAt)))
    .returning();
  const out = updated ?? row;
  scope.recordPhiAccess({ patientIds: [row.patientId], resourceType: 'VisitAnnotation', resourceId: row.id, fields: ['VisitAnnotation.removedAt'], action: 'update', outcome: 'allowed' });
  await emitEvent(db, { type: 'visit.annotationRemoved', tenantId: row.tenantId, aggregateId: row.appointmentId, payload: { appointmentId: row.appointmentId, documentId: row.documentId, annotationId: row.id }, rooms: [`visit:${row.appointmentId}`] });
  return openAnnotation(scope, out);
}

/** A document's annotations, oldest first; removed ones only when asked. */
export async function documentAnnotations(scope: RequestScope, args: { documentId: unknown; includeRemoved?: unknown }): Promise<Annotation[]> {
  const doc = await loadDocument(scope, args.documentId);
  await authorizeAppointment(scope, doc.appointmentId, 'clinical');
  const db = await scope.db();
  const conds = [eq(telehealthAnnotations.tenantId, doc.tenantId), eq(telehealthAnnotations.documentId, doc.id)];
  if (args.includeRemoved !== true) conds.push(isNull(telehealthAnnotations.removedAt));
  const rows = await db.select().from(telehealthAnnotations).where(and(...conds)).orderBy(asc(telehealthAnnotations.createdAt), asc(telehealthAnnotations.id));
  return Promise.all(rows.map((r) => openAnnotation(scope, r)));
}

// ------------------------------------------------------------------ visit summary

export type SummaryNote = Omit<typeof telehealthVisitSummaries.$inferSelect, 'body' | 'followUp'> & { body: string; followUp: string | null };

export interface VisitSummary {
  appointment: Appointment;
  note: SummaryNote | null;
  chatMessageCount: number;
  documentCount: number;
}

const SUMMARY_OPEN = new Set(['in_progress', 'completed']);

/**
 * Whoever conducts the visit writes (or rewrites) its summary: the assessment and plan, and the follow-up. `version`:
 * the version the writer read (0 for none): another version is CONFLICT, so two clinicians never overwrite each other.
 */
export async function writeVisitSummary(scope: RequestScope, input: { appointmentId: unknown; body: unknown; followUp?: unknown; version: unknown }): Promise<SummaryNote> {
  const appt = await authorizeAppointment(scope, input.appointmentId, 'conduct');
  const p = principalOf(scope);
  if (p.kind !== 'user') throw badInput('Only a clinician writes a visit summary', 'appointmentId');
  const body = textArg(input.body, 'body', { max: 20_000 })!;
  const followUp = textArg(input.followUp, 'followUp', { max: 4000, optional: true }) ?? null;
  if (typeof input.version !== 'number' || !Number.isInteger(input.version) || input.version < 0) throw badInput('version must be the version read (0 for a first summary)', 'version');
  if (!SUMMARY_OPEN.has(appt.status)) throw visitNotOpen('a summary', appt.status);
  const inst = instanceOf(scope);
  const enc = await inst.crypto.encryptFields(telehealthVisitSummaries, appt.tenantId, { body, followUp });
  const db = await scope.db();
  const stale = () => new AppError(ErrorCode.CONFLICT, 'The summary was changed since it was read', { reason: 'VERSION_CONFLICT', field: 'version' });
  let row;
  if (input.version === 0) {
    [row] = await db
      .insert(telehealthVisitSummaries)
      .values({ tenantId: appt.tenantId, appointmentId: appt.id, patientId: appt.patientId, body: enc.body!, followUp: enc.followUp ?? null, authorId: p.id, version: 1 })
      .onConflictDoNothing()
      .returning();
  } else {
    [row] = await db
      .update(telehealthVisitSummaries)
      .set({ body: enc.body!, followUp: enc.followUp ?? null, authorId: p.id, version: input.version + 1, updatedAt: sql`now()` })
      .where(and(eq(telehealthVisitSummaries.tenantId, appt.tenantId), eq(telehealthVisitSummaries.appointmentId, appt.id), eq(telehealthVisitSummaries.version, input.version)))
      .returning();
  }
  if (!row) throw stale();
  scope.recordPhiAccess({ patientIds: [appt.patientId], resourceType: 'VisitSummary', resourceId: appt.id, fields: ['VisitSummary.body', 'VisitSummary.followUp'], action: row.version === 1 ? 'create' : 'update', outcome: 'allowed', detail: { version: row.version } });
  await emitEvent(db, { type: 'visit.summaryWritten', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, version: row.version }, rooms: [`visit:${appt.id}`] });
  return { ...row, body, followUp };
}

/** The visit's summary: the appointment, the written note (if any) and counts of what was shared; vitals, documents and attendance are fields of the GraphQL type. */
export async function visitSummary(scope: RequestScope, args: { appointmentId: unknown }): Promise<VisitSummary> {
  const appt = await authorizeAppointment(scope, args.appointmentId, 'clinical');
  const db = await scope.db();
  const [[noteRow], [chat], [docs]] = await Promise.all([
    db.select().from(telehealthVisitSummaries).where(and(eq(telehealthVisitSummaries.tenantId, appt.tenantId), eq(telehealthVisitSummaries.appointmentId, appt.id))),
    db.select({ n: count() }).from(telehealthChatMessages).where(and(eq(telehealthChatMessages.tenantId, appt.tenantId), eq(telehealthChatMessages.appointmentId, appt.id))),
    db.select({ n: count() }).from(telehealthDocuments).where(and(eq(telehealthDocuments.tenantId, appt.tenantId), eq(telehealthDocuments.appointmentId, appt.id))),
  ]);
  let note: SummaryNote | null = null;
  if (noteRow) {
    const plain = await instanceOf(scope).crypto.decryptFields(telehealthVisitSummaries, appt.tenantId, { body: noteRow.body, followUp: noteRow.followUp });
    note = { ...noteRow, body: plain.body, followUp: plain.followUp ?? null };
  }
  return { appointment: appt, note, chatMessageCount: chat?.n ?? 0, documentCount: docs?.n ?? 0 };
}
