import type { ObjectRef } from '@pothos/core';
import type { Builder, SchemaTypes } from '../../schema/builder.js';
import { annotateDocument, documentAnnotations, removeAnnotation, SHAPE_TYPES, visitDocument, visitDocuments, visitSummary, writeVisitSummary, type Annotation, type Shape, type ShapeType, type SummaryNote, type VisitDocument, type VisitSummary } from './documents.js';
import { DOWNLOAD_PATH } from './document-routes.js';
import { visitVitals, type VitalSign } from './in-visit.js';
import type { Appointment } from './tables.js';
import { visitSession, type VisitSession } from './video.js';

type Types = PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>;
interface Refs {
  AppointmentRef: ObjectRef<Types, Appointment & { __providerName?: string }>;
  SessionRef: ObjectRef<Types, VisitSession>;
  VitalRef: ObjectRef<Types, VitalSign>;
}

/**
 * GraphQL of shared documents (metadata; the bytes go over the REST routes of document-routes.ts), their annotations
 * and the visit summary. Thin fields over documents.ts; every PHI field read is audited.
 */
export function registerDocumentsSchema(builder: Builder, refs: Refs): void {
  const ShapeTypeEnum = builder.enumType('AnnotationShapeType', {
    values: Object.fromEntries(SHAPE_TYPES.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<ShapeType>, { value: ShapeType }>,
  });
  const PointRef = builder.objectRef<{ x: number; y: number }>('AnnotationPoint').implement({
    description: 'A point relative to the image: x and y from 0 (left, top) to 1 (right, bottom)',
    fields: (t) => ({ x: t.exposeFloat('x'), y: t.exposeFloat('y') }),
  });
  const ShapeRef = builder.objectRef<Shape>('AnnotationShape').implement({
    fields: (t) => ({
      type: t.field({ type: ShapeTypeEnum, resolve: (s) => s.type }),
      points: t.field({ type: [PointRef], resolve: (s) => s.points }),
      color: t.exposeString('color', { description: '#RRGGBB' }),
      strokeWidth: t.exposeFloat('strokeWidth', { description: 'in image pixels' }),
    }),
  });
  const PointInput = builder.inputType('AnnotationPointInput', { fields: (t) => ({ x: t.float({ required: true }), y: t.float({ required: true }) }) });
  const ShapeInput = builder.inputType('AnnotationShapeInput', {
    fields: (t) => ({
      type: t.field({ type: ShapeTypeEnum, required: true, description: 'RECT, ELLIPSE, ARROW, LINE: 2 points (corners, or from/to); POINT: 1; POLYLINE 2+, POLYGON 3+, FREEHAND 2+' }),
      points: t.field({ type: [PointInput], required: true }),
      color: t.string({ description: '#RRGGBB (default #FF0000)' }),
      strokeWidth: t.float({ description: 'in image pixels, 0.5 to 100 (default 3)' }),
    }),
  });

  const DocumentRef = builder.objectRef<VisitDocument>('VisitDocument').implement({
    description: 'A document or image shared in a visit. Its bytes: GET downloadUrl (audited). Name and description are PHI.',
    phiResource: { patientId: (d) => d.patientId, resourceType: 'VisitDocument' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (d) => d.id }),
      appointmentId: t.field({ type: 'UUID', resolve: (d) => d.appointmentId }),
      fileName: t.string({ phi: 'documents', resolve: (d) => d.fileName }),
      description: t.string({ nullable: true, phi: 'documents', resolve: (d) => d.description }),
      contentType: t.exposeString('contentType'),
      sizeBytes: t.exposeInt('sizeBytes'),
      sha256: t.exposeString('sha256', { description: 'of the content as uploaded (checked on every download)' }),
      width: t.int({ nullable: true, description: 'pixels (images)', resolve: (d) => d.width }),
      height: t.int({ nullable: true, description: 'pixels (images)', resolve: (d) => d.height }),
      uploadedBy: t.field({ type: 'UUID', resolve: (d) => d.uploadedBy }),
      uploaderRole: t.string({ description: 'provider, patient or other', resolve: (d) => d.uploaderRole }),
      createdAt: t.field({ type: 'DateTime', resolve: (d) => d.createdAt }),
      downloadUrl: t.string({ description: 'path of the audited download (same credentials as /graphql)', resolve: (d) => DOWNLOAD_PATH.replace(':id', d.id) }),
      annotations: t.field({ type: [AnnotationRef], resolve: (d, _a, ctx) => documentAnnotations(ctx, { documentId: d.id }) }),
    }),
  });
  const AnnotationRef = builder.objectRef<Annotation>('VisitAnnotation').implement({
    description: 'Shapes drawn on a shared image (data, not pixels) and a note (PHI)',
    phiResource: { patientId: (a) => a.patientId, resourceType: 'VisitAnnotation' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (a) => a.id }),
      documentId: t.field({ type: 'UUID', resolve: (a) => a.documentId }),
      authorId: t.field({ type: 'UUID', resolve: (a) => a.authorId }),
      shapes: t.field({ type: [ShapeRef], phi: 'documents', resolve: (a) => a.shapes }),
      note: t.string({ nullable: true, phi: 'documents', resolve: (a) => a.note }),
      createdAt: t.field({ type: 'DateTime', resolve: (a) => a.createdAt }),
      removedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.removedAt }),
    }),
  });
  const NoteRef = builder.objectRef<SummaryNote>('VisitSummaryNote').implement({
    description: 'The clinician’s written summary (PHI)',
    phiResource: { patientId: (n) => n.patientId, resourceType: 'VisitSummary', resourceId: (n) => n.appointmentId },
    fields: (t) => ({
      body: t.string({ phi: 'summary', description: 'assessment and plan', resolve: (n) => n.body }),
      followUp: t.string({ nullable: true, phi: 'summary', resolve: (n) => n.followUp }),
      authorId: t.field({ type: 'UUID', resolve: (n) => n.authorId }),
      version: t.exposeInt('version', { description: 'pass it to writeVisitSummary to change the summary' }),
      updatedAt: t.field({ type: 'DateTime', resolve: (n) => n.updatedAt }),
    }),
  });
  const SummaryRef = builder.objectRef<VisitSummary>('VisitSummary').implement({
    description: 'Everything about one visit in one place: the appointment, attendance, vital signs, shared documents and the written summary',
    fields: (t) => ({
      appointment: t.field({ type: refs.AppointmentRef, resolve: (s) => s.appointment }),
      session: t.field({ type: refs.SessionRef, description: 'attendance and times reported by the video provider', resolve: (s, _a, ctx) => visitSession(ctx, s.appointment.id) }),
      vitalSigns: t.field({ type: [refs.VitalRef], resolve: (s, _a, ctx) => visitVitals(ctx, { appointmentId: s.appointment.id }) }),
      documents: t.field({ type: [DocumentRef], resolve: (s, _a, ctx) => visitDocuments(ctx, { appointmentId: s.appointment.id }) }),
      chatMessageCount: t.exposeInt('chatMessageCount'),
      documentCount: t.exposeInt('documentCount'),
      note: t.field({ type: NoteRef, nullable: true, resolve: (s) => s.note }),
    }),
  });
  const SummaryInput = builder.inputType('WriteVisitSummaryInput', {
    fields: (t) => ({
      appointmentId: t.field({ type: 'UUID', required: true }),
      body: t.string({ required: true, description: 'assessment and plan (up to 20,000 characters)' }),
      followUp: t.string({ description: 'follow-up instructions (up to 4,000 characters)' }),
      version: t.int({ required: true, description: 'the version read (0 for the first summary): another is CONFLICT (VERSION_CONFLICT)' }),
    }),
  });

  builder.queryFields((t) => ({
    visitDocuments: t.field({
      type: [DocumentRef],
      description: 'documents and images shared in the visit, oldest first',
      authScopes: { permission: 'telehealth:clinical:read' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => visitDocuments(ctx, args),
    }),
    visitDocument: t.field({
      type: DocumentRef,
      authScopes: { permission: 'telehealth:clinical:read' },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => visitDocument(ctx, args.id),
    }),
    documentAnnotations: t.field({
      type: [AnnotationRef],
      authScopes: { permission: 'telehealth:clinical:read' },
      args: { documentId: t.arg({ type: 'UUID', required: true }), includeRemoved: t.arg.boolean() },
      resolve: (_r, args, ctx) => documentAnnotations(ctx, args),
    }),
    visitSummary: t.field({
      type: SummaryRef,
      authScopes: { permission: 'telehealth:clinical:read' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => visitSummary(ctx, args),
    }),
  }));
  builder.mutationFields((t) => ({
    annotateDocument: t.field({
      type: AnnotationRef,
      description: 'draws shapes (and a note) on a shared image; a visit.annotationAdded event tells the visit room',
      authScopes: { permission: 'telehealth:visit:join' },
      args: { documentId: t.arg({ type: 'UUID', required: true }), shapes: t.arg({ type: [ShapeInput], required: true }), note: t.arg.string() },
      resolve: (_r, args, ctx) => annotateDocument(ctx, args),
    }),
    removeAnnotation: t.field({
      type: AnnotationRef,
      description: 'its author removes an annotation (kept, marked removed)',
      authScopes: { permission: 'telehealth:visit:join' },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => removeAnnotation(ctx, args.id),
    }),
    writeVisitSummary: t.field({
      type: NoteRef,
      description: 'writes or rewrites the visit summary (in progress or completed visits; whoever conducts the visit)',
      authScopes: { permission: 'telehealth:visit:conduct' },
      args: { input: t.arg({ type: SummaryInput, required: true }) },
      resolve: (_r, args, ctx) => writeVisitSummary(ctx, args.input),
    }),
  }));
}
