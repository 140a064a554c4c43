import type { FastifyRequest } from 'fastify';
import { badInput } from '../../platform/errors.js';
import { defineRoute } from '../../platform/scope/index.js';
import { downloadDocument, uploadDocument } from './documents.js';

/**
 * REST routes of shared documents (GraphQL carries no bytes):
 *
 *   POST /telehealth/visits/:appointmentId/documents   body: the file's bytes; Content-Type: image/png, image/jpeg,
 *        image/webp or application/pdf; X-File-Name: the file's name (percent-encoded UTF-8); X-Description: optional.
 *        Answers the document's metadata (JSON). Honours Idempotency-Key.
 *   GET  /telehealth/documents/:id/content               the bytes, as an attachment (audited download)
 */
export const UPLOAD_PATH = '/telehealth/visits/:appointmentId/documents';
export const DOWNLOAD_PATH = '/telehealth/documents/:id/content';

/** A header's percent-encoded UTF-8 text (undefined when absent). */
function encodedHeader(req: FastifyRequest, name: string, field: string): string | undefined {
  const raw = req.headers[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw badInput(`${name} must be sent once`, field);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badInput(`${name} must be percent-encoded UTF-8`, field);
  }
}

const json = (d: Awaited<ReturnType<typeof uploadDocument>>) => ({
  id: d.id,
  appointmentId: d.appointmentId,
  fileName: d.fileName,
  description: d.description,
  contentType: d.contentType,
  sizeBytes: d.sizeBytes,
  sha256: d.sha256,
  width: d.width,
  height: d.height,
  uploaderRole: d.uploaderRole,
  createdAt: d.createdAt.toISOString(),
});

export const uploadRoute = defineRoute({
  method: 'POST',
  url: UPLOAD_PATH,
  permission: 'telehealth:visit:join',
  operationName: 'POST /telehealth/visits/:appointmentId/documents',
  auditDenials: { resourceType: 'VisitDocument', action: 'create' },
  handler: async (scope, req) => {
    const doc = await uploadDocument(scope, {
      appointmentId: (req.params as { appointmentId?: unknown }).appointmentId,
      contentType: req.headers['content-type'],
      fileName: encodedHeader(req, 'x-file-name', 'fileName'),
      description: encodedHeader(req, 'x-description', 'description'),
      body: req.body,
    });
    return json(doc);
  },
});

export const downloadRoute = defineRoute({
  method: 'GET',
  url: DOWNLOAD_PATH,
  permission: 'telehealth:clinical:read',
  operationName: 'GET /telehealth/documents/:id/content',
  auditDenials: { resourceType: 'VisitDocument', action: 'read' },
  handler: async (scope, req, reply) => {
    const { document, content } = await downloadDocument(scope, (req.params as { id?: unknown }).id);
    reply
      .type(document.contentType)
      .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(document.fileName)}`)
      .header('cache-control', 'private, no-store')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', "default-src 'none'; sandbox");
    return content;
  },
});
