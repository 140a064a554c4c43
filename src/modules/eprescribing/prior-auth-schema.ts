import type { Builder } from '../../schema/index.js';
import { PRIOR_AUTH_STATUSES, type PriorAuth } from './prescription-tables.js';
import { answerPriorAuth, appealPriorAuth, awaitingAnswers, createPriorAuth, getPriorAuth, listPriorAuths, questionSetsOf, requestPriorAuth } from './prior-auth.js';
import type { PAAttachment, PAQuestion, PAQuestionSet } from './script/index.js';

/**
 * GraphQL of electronic prior authorization (thin: prior-auth.ts does the work). A prior authorization is PHI of its
 * patient (`phiResource`, fields `phi: 'medications'`): every resolution is audited; each change is recorded by the
 * service (history row of the prescription, outbox event, audit entry).
 */
export function registerPriorAuthSchema(builder: Builder): void {
  const StatusEnum = builder.enumType('PriorAuthorizationStatus', {
    description:
      'REQUIRED (the payer needs one) → REQUESTED (PAInitiationRequest sent; the payer’s questions arrive) → PENDING (answers sent) → APPROVED | DENIED | MORE_INFO (another question set: answer again); DENIED → APPEALED → APPROVED | DENIED; CANCELLED (the payer closed the case)',
    values: Object.fromEntries(PRIOR_AUTH_STATUSES.map((s) => [s.toUpperCase(), { value: s }])) as Record<Uppercase<(typeof PRIOR_AUTH_STATUSES)[number]>, { value: (typeof PRIOR_AUTH_STATUSES)[number] }>,
  });
  const QuestionTypeEnum = builder.enumType('PriorAuthorizationQuestionType', {
    description: 'how an answer is written: FREE_TEXT; NUMERIC (a decimal); DATE (YYYY-MM-DD); SELECT (a choice id); BOOLEAN (true or false)',
    values: { FREE_TEXT: { value: 'FreeText' }, NUMERIC: { value: 'Numeric' }, DATE: { value: 'Date' }, SELECT: { value: 'Select' }, BOOLEAN: { value: 'Boolean' } },
  });

  const ChoiceRef = builder.objectRef<{ id: string; text: string }>('PriorAuthorizationChoice').implement({
    fields: (t) => ({ id: t.exposeString('id'), text: t.exposeString('text') }),
  });
  const QuestionRef = builder.objectRef<PAQuestion>('PriorAuthorizationQuestion').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      text: t.exposeString('text'),
      type: t.field({ type: QuestionTypeEnum, resolve: (q) => q.type }),
      required: t.exposeBoolean('required'),
      choices: t.field({ type: [ChoiceRef], resolve: (q) => q.choices ?? [] }),
      answer: t.string({ nullable: true, description: 'the answer sent to the payer', resolve: (q) => q.answer ?? null }),
    }),
  });
  const QuestionSetRef = builder.objectRef<PAQuestionSet>('PriorAuthorizationQuestionSet').implement({
    fields: (t) => ({ id: t.exposeString('id'), questions: t.field({ type: [QuestionRef], resolve: (s) => s.questions }) }),
  });
  const AttachmentRef = builder.objectRef<PAAttachment>('PriorAuthorizationAttachment').implement({
    description: 'metadata of a document sent with answers or an appeal (the document travels by the payer’s upload channel)',
    fields: (t) => ({
      sha256: t.string({ resolve: (a) => a.controlNumber }),
      fileName: t.exposeString('fileName'),
      contentType: t.string({ resolve: (a) => a.mimeType }),
      sizeBytes: t.int({ resolve: (a) => a.sizeBytes }),
      description: t.string({ nullable: true, resolve: (a) => a.description ?? null }),
    }),
  });

  const PriorAuthRef = builder.objectRef<PriorAuth>('PriorAuthorization').implement({
    description: 'An electronic prior authorization (ePA) of a prescription with its payer (NCPDP SCRIPT PA transactions)',
    phiResource: { patientId: (pa) => pa.patientId, resourceType: 'PriorAuthorization' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (pa) => pa.id }),
      prescriptionId: t.field({ type: 'UUID', resolve: (pa) => pa.prescriptionId }),
      patientId: t.field({ type: 'UUID', resolve: (pa) => pa.patientId }),
      status: t.field({ type: StatusEnum, resolve: (pa) => pa.status }),
      caseId: t.exposeString('caseId', { nullable: true, description: 'the payer’s case id' }),
      awaitingAnswers: t.boolean({ description: 'the payer’s latest question set waits for answers (answerPriorAuthorization)', resolve: (pa) => awaitingAnswers(pa) }),
      questionSets: t.field({ type: [QuestionSetRef], phi: 'medications', description: 'the payer’s question sets in order, with the answers sent', resolve: (pa) => questionSetsOf(pa) }),
      attachments: t.field({ type: [AttachmentRef], phi: 'medications', resolve: (pa) => pa.attachments as PAAttachment[] }),
      determinationReason: t.string({ nullable: true, description: 'the payer’s reason code (denied, closed)', resolve: (pa) => pa.determinationReason }),
      approvedUntil: t.field({ type: 'Date', nullable: true, resolve: (pa) => pa.approvedUntil }),
      appealReason: t.string({ nullable: true, phi: 'medications', resolve: (pa) => pa.appealReason }),
      version: t.exposeInt('version'),
      createdAt: t.field({ type: 'DateTime', resolve: (pa) => pa.createdAt }),
      updatedAt: t.field({ type: 'DateTime', resolve: (pa) => pa.updatedAt }),
    }),
  });

  const AnswerInput = builder.inputType('PriorAuthorizationAnswerInput', {
    fields: (t) => ({ questionId: t.string({ required: true }), answer: t.string({ required: true, description: 'as the question’s type says (a choice id for SELECT)' }) }),
  });
  const AttachmentInput = builder.inputType('PriorAuthorizationAttachmentInput', {
    description: 'metadata only: the document is uploaded to the payer separately, named by its sha256',
    fields: (t) => ({
      fileName: t.string({ required: true }),
      contentType: t.string({ required: true, description: 'application/pdf, image/png, image/jpeg, image/tiff or text/plain' }),
      sizeBytes: t.int({ required: true, description: '1 byte to 25 MiB' }),
      sha256: t.string({ required: true, description: '64 hex characters' }),
      description: t.string({ required: false }),
    }),
  });

  builder.queryField('priorAuthorization', (t) =>
    t.field({ type: PriorAuthRef, authScopes: { permission: 'rx:prescription:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => getPriorAuth(ctx, args.id) }),
  );
  builder.queryField('prescriptionPriorAuthorizations', (t) =>
    t.field({
      type: [PriorAuthRef],
      description: 'the prior authorizations of a prescription, oldest first',
      authScopes: { permission: 'rx:prescription:read' },
      args: { prescriptionId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => listPriorAuths(ctx, args.prescriptionId),
    }),
  );

  builder.mutationField('openPriorAuthorization', (t) =>
    t.field({
      type: PriorAuthRef,
      description: 'opens a prior authorization (REQUIRED) for a prescription the payer is known to need one for; a pharmacy’s RxChangeRequest P opens one too',
      authScopes: { permission: 'rx:prescription:write' },
      args: { prescriptionId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => createPriorAuth(ctx, args.prescriptionId),
    }),
  );
  builder.mutationField('requestPriorAuthorization', (t) =>
    t.field({
      type: PriorAuthRef,
      description: 'REQUIRED → REQUESTED: sends the PAInitiationRequest to the payer (its question set arrives on the inbound route)',
      authScopes: { permission: 'rx:prescription:write' },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => requestPriorAuth(ctx, args.id),
    }),
  );
  builder.mutationField('answerPriorAuthorization', (t) =>
    t.field({
      type: PriorAuthRef,
      description: 'REQUESTED (questions received) or MORE_INFO → PENDING: sends the answers to the latest question set (PARequest) with attachment metadata',
      authScopes: { permission: 'rx:prescription:write' },
      args: { id: t.arg({ type: 'UUID', required: true }), answers: t.arg({ type: [AnswerInput], required: true }), attachments: t.arg({ type: [AttachmentInput], required: false }) },
      resolve: (_r, args, ctx) => answerPriorAuth(ctx, args.id, args.answers, args.attachments),
    }),
  );
  builder.mutationField('appealPriorAuthorization', (t) =>
    t.field({
      type: PriorAuthRef,
      description: 'DENIED → APPEALED: sends a PAAppealRequest with the reason (10-2000 characters) and attachment metadata',
      authScopes: { permission: 'rx:prescription:write' },
      args: { id: t.arg({ type: 'UUID', required: true }), reason: t.arg.string({ required: true }), attachments: t.arg({ type: [AttachmentInput], required: false }) },
      resolve: (_r, args, ctx) => appealPriorAuth(ctx, args.id, args.reason, args.attachments),
    }),
  );
}
