import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newMessageId } from '../../../src/modules/eprescribing/network/adapter.js';
import { PAYER_DENIAL_CODES, PAYER_FOLLOW_UP_SET, PAYER_QUESTION_SET, type PharmacySimulator } from '../../../src/modules/eprescribing/index.js';
import type { TestApp } from '../../helpers/app.js';
import { TRANSMIT_RX, ScriptedSafety, createRxClinic, errorOf, getRx, ok, signedRx, startRxApp, type RxClinic, type RxView } from './lifecycle-helpers.js';

/**
 * Electronic prior authorization over GraphQL HTTP against the pharmacy simulator acting as the payer (SCRIPT PA
 * transactions, signed posts both ways): a pharmacy's RxChangeRequest P opens one (REQUIRED) → request
 * (PAInitiationRequest) → the payer's question set → answers (PARequest) → APPROVED; denied → appeal → approved;
 * pended → more answers; illegal steps and bad answers are typed errors that change nothing.
 */
let t: TestApp;
let sim: PharmacySimulator;
let c: RxClinic;
let other: RxClinic;

beforeAll(async () => {
  ({ t, sim } = await startRxApp({ safety: new ScriptedSafety() }));
  c = await createRxClinic(t);
  other = await createRxClinic(t, { npi: '1987654328' });
}, 240_000);
afterAll(async () => {
  await t?.close();
  await sim?.close();
});

const PA_FIELDS = 'id prescriptionId patientId status caseId awaitingAnswers version determinationReason approvedUntil appealReason questionSets { id questions { id type required answer choices { id } } } attachments { sha256 fileName contentType sizeBytes }';
const LIST = `query($p: UUID!) { prescriptionPriorAuthorizations(prescriptionId: $p) { ${PA_FIELDS} } }`;
const GET = `query($id: UUID!) { priorAuthorization(id: $id) { ${PA_FIELDS} } }`;
const OPEN = `mutation($p: UUID!) { openPriorAuthorization(prescriptionId: $p) { ${PA_FIELDS} } }`;
const REQUEST = `mutation($id: UUID!) { requestPriorAuthorization(id: $id) { ${PA_FIELDS} } }`;
const ANSWER = `mutation($id: UUID!, $a: [PriorAuthorizationAnswerInput!]!, $att: [PriorAuthorizationAttachmentInput!]) { answerPriorAuthorization(id: $id, answers: $a, attachments: $att) { ${PA_FIELDS} } }`;
const APPEAL = `mutation($id: UUID!, $r: String!, $att: [PriorAuthorizationAttachmentInput!]) { appealPriorAuthorization(id: $id, reason: $r, attachments: $att) { ${PA_FIELDS} } }`;

interface PaView {
  id: string;
  status: string;
  caseId: string | null;
  awaitingAnswers: boolean;
  version: number;
  determinationReason: string | null;
  approvedUntil: string | null;
  questionSets: { id: string; questions: { id: string; answer: string | null }[] }[];
  attachments: unknown[];
}

const attachment = { fileName: 'chart-notes.pdf', contentType: 'application/pdf', sizeBytes: 48213, sha256: 'ab'.repeat(32), description: 'Chart notes: lisinopril trial' };

async function transmitted(): Promise<RxView> {
  const rx = await signedRx(c);
  return ok(await c.as.provider<{ transmitPrescription: RxView }>(TRANSMIT_RX, { id: rx.id })).transmitPrescription;
}
const getPa = async (id: string) => ok(await c.as.provider<{ priorAuthorization: PaView }>(GET, { id })).priorAuthorization;
const paMessages = () => sim.received.filter((m) => m.type.startsWith('PA')).length;

/** Every illegal or bad call in `calls` answers `code` (and `reason`), and neither the PA nor the payer changes. */
async function refusedUnchanged(pa: PaView, calls: [Promise<Parameters<typeof errorOf>[0]>, string, string?][]) {
  const before = paMessages();
  for (const [call, code, reason] of calls) {
    const e = errorOf(await call);
    expect(e.code, e.message).toBe(code);
    if (reason) expect(e.extensions.reason).toBe(reason);
  }
  expect(await getPa(pa.id)).toEqual(pa);
  expect(paMessages()).toBe(before);
}

describe('prior authorization', () => {
  it('RxChangeRequest P → required → request → the payer’s questions → answers → approved; illegal steps change nothing', async () => {
    const rx = await transmitted();
    expect(rx.status).toBe('ACCEPTED');
    await sim.requestChange(rx.orderNumber, 'P');
    const [required] = ok(await c.as.provider<{ prescriptionPriorAuthorizations: PaView[] }>(LIST, { p: rx.id })).prescriptionPriorAuthorizations;
    expect(required).toMatchObject({ status: 'REQUIRED', caseId: null, awaitingAnswers: false, questionSets: [] });

    // answering or appealing before anything was asked: illegal, nothing changes (and nothing reaches the payer)
    await refusedUnchanged(required!, [
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'yes' }] }), 'INVALID_STATE_TRANSITION'],
      [c.as.provider(APPEAL, { id: required!.id, r: 'The patient cannot take the alternatives' }), 'INVALID_STATE_TRANSITION'],
      // a second one while this one is open
      [c.as.provider(OPEN, { p: rx.id }), 'CONFLICT', 'PRIOR_AUTH_OPEN'],
    ]);

    // request: the payer receives a PAInitiationRequest with the patient, prescriber and medication
    const requested = ok(await c.as.provider<{ requestPriorAuthorization: PaView }>(REQUEST, { id: required!.id })).requestPriorAuthorization;
    expect(requested).toMatchObject({ status: 'REQUESTED', awaitingAnswers: false });
    const initiation = sim.received.at(-1)!;
    expect(initiation).toMatchObject({ type: 'PAInitiationRequest', header: { to: { qualifier: 'ZZ' }, prescriberOrderNumber: rx.orderNumber }, patient: { name: { last: 'Testpatient' } }, medication: { rxnorm: { code: rx.drugRxcui } } });
    // the payer's case opens with its question set (PAInitiationResponse on the inbound route)
    await sim.idle();
    const questions = await getPa(required!.id);
    expect(questions).toMatchObject({ status: 'REQUESTED', awaitingAnswers: true, caseId: sim.paCases.get(required!.id.replace(/-/g, ''))!.caseId });
    expect(questions.questionSets.map((s) => [s.id, s.questions.map((q) => q.id)])).toEqual([[PAYER_QUESTION_SET.id, ['Q1', 'Q2', 'Q3']]]);
    expect(sim.deliveries.at(-1)).toMatchObject({ type: 'PAInitiationResponse', status: 200, answer: { type: 'Status', code: '010' } });

    // bad answers: typed, nothing sent, nothing changed
    await refusedUnchanged(questions, [
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'yes' }] }), 'BAD_USER_INPUT', 'ANSWER_REQUIRED'],
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q9', answer: 'x' }, { questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }] }), 'BAD_USER_INPUT', 'UNKNOWN_QUESTION'],
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'maybe' }, { questionId: 'Q2', answer: 'I10' }] }), 'BAD_USER_INPUT', 'INVALID_ANSWER'],
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }, { questionId: 'Q3', answer: '2026-02-30' }] }), 'BAD_USER_INPUT', 'INVALID_ANSWER'],
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }], att: [{ ...attachment, sha256: 'nope' }] }), 'BAD_USER_INPUT', 'INVALID_ATTACHMENT'],
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }], att: [{ ...attachment, contentType: 'application/x-msdownload' }] }), 'BAD_USER_INPUT', 'INVALID_ATTACHMENT'],
      [c.as.provider(REQUEST, { id: required!.id }), 'INVALID_STATE_TRANSITION'],
      // another tenant: not found
      [other.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }] }), 'NOT_FOUND'],
    ]);
    expect(errorOf(await other.as.provider(GET, { id: required!.id })).code).toBe('NOT_FOUND');
    expect(errorOf(await other.as.provider(LIST, { p: rx.id })).code).toBe('NOT_FOUND');

    // the answers with a document's metadata: PENDING, then the payer approves (PAResponse)
    const pending = ok(
      await c.as.provider<{ answerPriorAuthorization: PaView }>(ANSWER, {
        id: required!.id,
        a: [
          { questionId: 'Q1', answer: 'yes' },
          { questionId: 'Q2', answer: 'I10' },
          { questionId: 'Q3', answer: '2026-09-01' },
        ],
        att: [attachment],
      }),
    ).answerPriorAuthorization;
    expect(pending).toMatchObject({ status: 'PENDING', awaitingAnswers: false, attachments: [{ sha256: attachment.sha256, fileName: 'chart-notes.pdf', sizeBytes: 48213 }] });
    expect(sim.received.at(-1)).toMatchObject({
      type: 'PARequest',
      caseId: questions.caseId,
      questionSet: { id: PAYER_QUESTION_SET.id, questions: [{ id: 'Q1', answer: 'yes' }, { id: 'Q2', answer: 'I10' }, { id: 'Q3', answer: '2026-09-01' }] },
      attachments: [{ controlNumber: attachment.sha256, mimeType: 'application/pdf', sizeBytes: 48213 }],
    });
    await sim.idle();
    const approved = await getPa(required!.id);
    expect(approved).toMatchObject({ status: 'APPROVED', determinationReason: null });
    expect(approved.approvedUntil).toMatch(/^\d{4}-\d{2}-\d{2}$/);

    // finished: every step is illegal now
    await refusedUnchanged(approved, [
      [c.as.provider(REQUEST, { id: required!.id }), 'INVALID_STATE_TRANSITION'],
      [c.as.provider(ANSWER, { id: required!.id, a: [{ questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }] }), 'INVALID_STATE_TRANSITION'],
      [c.as.provider(APPEAL, { id: required!.id, r: 'The patient cannot take the alternatives' }), 'INVALID_STATE_TRANSITION'],
    ]);

    // the prescription's history, SCRIPT traffic and the outbox tell the same story
    const after = await getRx(c.as.provider, rx.id);
    expect(after.status).toBe('ACCEPTED');
    const paSteps = after.history.filter((h) => h.action === 'priorAuth');
    expect(paSteps).toHaveLength(5); // required, requested, questions, pending, approved
    expect(paSteps.filter((h) => h.actor === 'system:pharmacy-network')).toHaveLength(3); // required (RxChangeRequest), questions, approved
    expect(after.messages.filter((m) => m.messageType.startsWith('PA')).map((m) => [m.direction, m.messageType, m.answerType])).toEqual([
      ['outbound', 'PAInitiationRequest', 'Status'],
      ['inbound', 'PAInitiationResponse', 'Status'],
      ['outbound', 'PARequest', 'Status'],
      ['inbound', 'PAResponse', 'Status'],
    ]);
    const events = await t.db.owner<{ payload: Record<string, unknown> }[]>`select payload from outbox where tenant_id = ${c.tenant.id} and type = 'prescription.priorAuthorization' and aggregate_id = ${rx.id} order by created_at, id`;
    expect(events.map((e) => e.payload.paStatus)).toEqual(['required', 'requested', 'requested', 'pending', 'approved']);
    // audited as PHI of the patient, without the answers in the entry
    const audit = await t.db.owner<{ detail: unknown }[]>`select detail from audit_events where tenant_id = ${c.tenant.id} and resource_id = ${rx.id} and detail->>'transition' = 'priorAuth'`;
    expect(audit.length).toBeGreaterThanOrEqual(5);
    expect(JSON.stringify(audit)).not.toContain('I10');
    // reading a PA's PHI fields is audited as a read of the PriorAuthorization
    const reads = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_events where tenant_id = ${c.tenant.id} and resource_type = 'PriorAuthorization' and resource_id = ${required!.id} and action = 'read'`;
    expect(reads[0]!.n).toBeGreaterThan(0);
  });

  it('denied → appeal → approved on appeal', async () => {
    const rx = await transmitted();
    const pa = ok(await c.as.provider<{ openPriorAuthorization: PaView }>(OPEN, { p: rx.id })).openPriorAuthorization;
    expect(pa.status).toBe('REQUIRED');
    ok(await c.as.provider(REQUEST, { id: pa.id }));
    await sim.idle();
    ok(await c.as.provider(ANSWER, { id: pa.id, a: [{ questionId: 'Q1', answer: 'no' }, { questionId: 'Q2', answer: 'E78.5' }] }));
    await sim.idle();
    const denied = await getPa(pa.id);
    expect(denied).toMatchObject({ status: 'DENIED', determinationReason: PAYER_DENIAL_CODES.stepTherapy, approvedUntil: null });
    // a reason too short, a bad attachment: nothing changes
    await refusedUnchanged(denied, [
      [c.as.provider(APPEAL, { id: pa.id, r: 'no' }), 'BAD_USER_INPUT'],
      [c.as.provider(APPEAL, { id: pa.id, r: 'Angioedema on the formulary alternative', att: [{ ...attachment, sizeBytes: 0 }] }), 'BAD_USER_INPUT', 'INVALID_ATTACHMENT'],
      [c.as.provider(ANSWER, { id: pa.id, a: [{ questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }] }), 'INVALID_STATE_TRANSITION'],
    ]);
    const appealed = ok(await c.as.provider<{ appealPriorAuthorization: PaView & { appealReason: string } }>(APPEAL, { id: pa.id, r: 'Angioedema on the formulary alternative (ACE inhibitor)', att: [attachment] })).appealPriorAuthorization;
    expect(appealed).toMatchObject({ status: 'APPEALED', appealReason: 'Angioedema on the formulary alternative (ACE inhibitor)' });
    expect(sim.received.at(-1)).toMatchObject({ type: 'PAAppealRequest', caseId: denied.caseId, reason: 'Angioedema on the formulary alternative (ACE inhibitor)' });
    await sim.idle();
    const approved = await getPa(pa.id);
    expect(approved).toMatchObject({ status: 'APPROVED', determinationReason: null });
    await refusedUnchanged(approved, [[c.as.provider(APPEAL, { id: pa.id, r: 'Angioedema on the formulary alternative' }), 'INVALID_STATE_TRANSITION']]);
  });

  it('pended: the payer asks more (a follow-up question set), answered; scripted denials of the determination and of the appeal', async () => {
    const rx = await transmitted();
    const pa = ok(await c.as.provider<{ openPriorAuthorization: PaView }>(OPEN, { p: rx.id })).openPriorAuthorization;
    ok(await c.as.provider(REQUEST, { id: pa.id }));
    await sim.idle();
    ok(await c.as.provider(ANSWER, { id: pa.id, a: [{ questionId: 'Q1', answer: 'yes' }, { questionId: 'Q2', answer: 'I10' }] }));
    await sim.idle();
    const more = await getPa(pa.id);
    expect(more).toMatchObject({ status: 'MORE_INFO', awaitingAnswers: true });
    expect(more.questionSets.map((s) => s.id)).toEqual([PAYER_QUESTION_SET.id, PAYER_FOLLOW_UP_SET.id]);
    // the follow-up set's questions only: Q1 is not asked any more; Q4 is numeric
    await refusedUnchanged(more, [
      [c.as.provider(ANSWER, { id: pa.id, a: [{ questionId: 'Q1', answer: 'yes' }] }), 'BAD_USER_INPUT', 'UNKNOWN_QUESTION'],
      [c.as.provider(ANSWER, { id: pa.id, a: [{ questionId: 'Q4', answer: 'thirty' }] }), 'BAD_USER_INPUT', 'INVALID_ANSWER'],
    ]);
    // the payer denies this time, whatever the answer
    sim.payerNext({ status: 'Denied', reasonCode: 'NC', note: 'Not covered under the plan' });
    ok(await c.as.provider(ANSWER, { id: pa.id, a: [{ questionId: 'Q4', answer: '45' }] }));
    await sim.idle();
    expect(await getPa(pa.id)).toMatchObject({ status: 'DENIED', determinationReason: 'NC' });
    sim.payerNext({ status: 'Denied', reasonCode: 'AD' });
    ok(await c.as.provider(APPEAL, { id: pa.id, r: 'Medically necessary: documented failure of two alternatives' }));
    await sim.idle();
    expect(await getPa(pa.id)).toMatchObject({ status: 'DENIED', determinationReason: 'AD' });
  });

  it('the network refuses a PA message: CONFLICT, nothing changed; the payer closes a case: CANCELLED', async () => {
    const rx = await transmitted();
    const pa = ok(await c.as.provider<{ openPriorAuthorization: PaView }>(OPEN, { p: rx.id })).openPriorAuthorization;
    sim.failNext({ code: '601', description: 'Receiver unable to process' });
    expect(errorOf(await c.as.provider(REQUEST, { id: pa.id }))).toMatchObject({ code: 'CONFLICT', extensions: { reason: 'PA_REFUSED', scriptCode: '601' } });
    expect(await getPa(pa.id)).toEqual(pa);
    expect((await getRx(c.as.provider, rx.id)).messages.filter((m) => m.messageType.startsWith('PA'))).toEqual([]);
    sim.payerNext({ status: 'Closed', reasonCode: 'NR', note: 'No prior authorization required' });
    ok(await c.as.provider(REQUEST, { id: pa.id }));
    await sim.idle();
    expect(await getPa(pa.id)).toMatchObject({ status: 'CANCELLED', determinationReason: 'NR', awaitingAnswers: false });
    // a new one may be opened now
    expect(ok(await c.as.provider<{ openPriorAuthorization: PaView }>(OPEN, { p: rx.id })).openPriorAuthorization.status).toBe('REQUIRED');
  });

  it('an inbound PA response for an unknown PA reference or in the wrong state is refused (SCRIPT Error, 409) and changes nothing', async () => {
    const rx = await transmitted();
    const pa = ok(await c.as.provider<{ openPriorAuthorization: PaView }>(OPEN, { p: rx.id })).openPriorAuthorization;
    const header = { to: { qualifier: 'D' as const, id: '1234567893' }, from: { qualifier: 'ZZ' as const, id: 'PBM' }, messageId: newMessageId(), relatesToMessageId: newMessageId(), sentTime: new Date().toISOString(), prescriberOrderNumber: rx.orderNumber };
    const unknown = await sim.deliver({ type: 'PAResponse', header, paReferenceId: 'f'.repeat(32), caseId: 'CASE999', response: { status: 'Approved', effectiveDate: '2026-12-01', expirationDate: '2027-11-30' } });
    expect(unknown).toMatchObject({ status: 409, answer: { type: 'Error', code: '900' } });
    // approving a REQUIRED one (nothing was asked) is an illegal transition
    const early = await sim.deliver({ type: 'PAResponse', header: { ...header, messageId: newMessageId() }, paReferenceId: pa.id.replace(/-/g, ''), caseId: 'CASE999', response: { status: 'Approved', effectiveDate: '2026-12-01', expirationDate: '2027-11-30' } });
    expect(early).toMatchObject({ status: 409, answer: { type: 'Error', code: '900' } });
    expect(await getPa(pa.id)).toEqual(pa);
    // a case opens once: a second PAInitiationResponse Open (another case, other questions) is refused
    ok(await c.as.provider(REQUEST, { id: pa.id }));
    await sim.idle();
    const opened = await getPa(pa.id);
    expect(opened).toMatchObject({ status: 'REQUESTED', awaitingAnswers: true });
    const again = await sim.deliver({ type: 'PAInitiationResponse', header: { ...header, messageId: newMessageId() }, paReferenceId: pa.id.replace(/-/g, ''), response: { status: 'Open', caseId: 'CASE-OTHER', questionSet: PAYER_FOLLOW_UP_SET } });
    expect(again).toMatchObject({ status: 409, answer: { type: 'Error', code: '900' } });
    expect(await getPa(pa.id)).toEqual(opened);
  });
});
