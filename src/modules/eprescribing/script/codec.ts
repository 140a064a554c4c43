import {
  DEA_SCHEDULE_NCI,
  NCI_DEA_SCHEDULE,
  type ChangeRequestCode,
  type FillStatus,
  type PAAttachment,
  type PAQuestion,
  type PAQuestionSet,
  type ScriptAddress,
  type ScriptHeader,
  type ScriptMedication,
  type ScriptMessage,
  type ScriptMessageType,
  type ScriptName,
  type ScriptParty,
  type ScriptPatient,
  type ScriptPharmacy,
  type ScriptPrescriber,
  type ScriptResponse,
} from './model.js';
import type { XmlElement, XmlNode } from './spec.js';

/**
 * Typed SCRIPT messages <-> the standard's element tree (fast-xml-parser's
 * object form). toTree does not order or validate (spec.ts does both);
 * fromTree reads a tree that validateTree accepted, so every required
 * element is there.
 */

const opt = (v: string | number | boolean | undefined): string | undefined => (v === undefined ? undefined : String(v));

function nameTree(n: ScriptName): XmlElement {
  return { LastName: n.last, FirstName: n.first, MiddleName: n.middle, Suffix: n.suffix, Prefix: n.prefix };
}
function addressTree(a: ScriptAddress | undefined): XmlElement | undefined {
  if (!a) return undefined;
  return { AddressLine1: a.line1, AddressLine2: a.line2, City: a.city, StateProvince: a.state, PostalCode: a.postalCode, CountryCode: a.country };
}
function communicationTree(phone: string | undefined, fax?: string): XmlElement | undefined {
  if (!phone && !fax) return undefined;
  return { PrimaryTelephone: phone ? { Number: phone } : undefined, Fax: fax ? { Number: fax } : undefined };
}
function partyTree(p: ScriptParty): XmlElement {
  return { '#text': p.id, '@_Qualifier': p.qualifier };
}

function headerTree(h: ScriptHeader): XmlElement {
  return {
    To: partyTree(h.to),
    From: partyTree(h.from),
    MessageID: h.messageId,
    RelatesToMessageID: h.relatesToMessageId,
    SentTime: h.sentTime,
    SenderSoftware: h.senderSoftware
      ? { SenderSoftwareDeveloper: h.senderSoftware.developer, SenderSoftwareProduct: h.senderSoftware.product, SenderSoftwareVersionRelease: h.senderSoftware.version }
      : undefined,
    RxReferenceNumber: h.rxReferenceNumber,
    PrescriberOrderNumber: h.prescriberOrderNumber,
    DigitalSignature: h.digitalSignature
      ? {
          '@_Version': h.digitalSignature.version,
          DigitalSignatureIndicator: String(h.digitalSignature.indicator),
          DigestMethod: h.digitalSignature.digestMethod,
          DigestValue: h.digitalSignature.digestValue,
          SignatureValue: h.digitalSignature.signatureValue,
        }
      : undefined,
  };
}

function patientTree(p: ScriptPatient): XmlElement {
  return {
    HumanPatient: {
      Identification: p.medicalRecordNumber ? { MedicalRecordIdentificationNumberEHR: p.medicalRecordNumber } : undefined,
      Name: nameTree(p.name),
      Gender: p.gender,
      DateOfBirth: { Date: p.birthDate },
      Address: addressTree(p.address),
      CommunicationNumbers: communicationTree(p.phone),
    },
  };
}

function pharmacyTree(p: ScriptPharmacy): XmlElement {
  return {
    Identification: { NCPDPID: p.ncpdpId, NPI: p.npi },
    BusinessName: p.businessName,
    Address: addressTree(p.address),
    CommunicationNumbers: communicationTree(p.phone, p.fax),
  };
}

function prescriberTree(p: ScriptPrescriber): XmlElement {
  return {
    NonVeterinarian: {
      Identification: { StateLicenseNumber: p.stateLicenseNumber, DEANumber: p.deaNumber, NPI: p.npi },
      Name: nameTree(p.name),
      Address: addressTree(p.address),
      CommunicationNumbers: communicationTree(p.phone, p.fax),
    },
  };
}

function medicationTree(m: ScriptMedication | undefined): XmlElement | undefined {
  if (!m) return undefined;
  const coded = m.ndc || m.rxnorm || m.deaSchedule;
  return {
    DrugDescription: m.description,
    DrugCoded: coded
      ? {
          ProductCode: m.ndc ? { Code: m.ndc, Qualifier: 'ND' } : undefined,
          DrugDBCode: m.rxnorm ? { Code: m.rxnorm.code, Qualifier: m.rxnorm.qualifier } : undefined,
          DEASchedule: m.deaSchedule ? { Code: DEA_SCHEDULE_NCI[m.deaSchedule] ?? m.deaSchedule } : undefined,
        }
      : undefined,
    Quantity: { Value: m.quantity.value, CodeListQualifier: m.quantity.codeListQualifier, QuantityUnitOfMeasure: { Code: m.quantity.unitCode } },
    DaysSupply: opt(m.daysSupply),
    WrittenDate: { Date: m.writtenDate },
    LastFillDate: m.lastFillDate ? { Date: m.lastFillDate } : undefined,
    Substitutions: m.substitutions,
    NumberOfRefills: opt(m.numberOfRefills),
    Note: m.note,
    Sig: { SigText: m.sig },
  };
}

function responseTree(r: ScriptResponse<string>): XmlElement {
  const inner: XmlElement = r.status === 'Denied' ? { ReasonCode: r.reasonCode, DenialReason: r.reason } : { Note: r.note };
  return { [r.status]: inner };
}

function questionSetTree(q: PAQuestionSet): XmlElement {
  return {
    QuestionSetID: q.id,
    Question: q.questions.map((x) => ({
      QuestionID: x.id,
      QuestionText: x.text,
      QuestionType: x.type,
      Required: String(x.required),
      Choice: x.choices?.length ? x.choices.map((c) => ({ ChoiceID: c.id, ChoiceText: c.text })) : undefined,
      Answer: x.answer,
    })),
  };
}
function attachmentsTree(list: PAAttachment[]): XmlElement[] | undefined {
  return list.length ? list.map((a) => ({ AttachmentControlNumber: a.controlNumber, FileName: a.fileName, MIMEType: a.mimeType, Size: String(a.sizeBytes), Description: a.description })) : undefined;
}
const dateTree = (d: string) => ({ Date: d });

function codeTree(code: string, descriptionCode?: string, description?: string): XmlElement {
  return { Code: code, DescriptionCode: descriptionCode, Description: description };
}

/** The Message element's content (Header + Body) of a typed message, unordered. */
export function toTree(m: ScriptMessage): { header: XmlElement; body: XmlElement } {
  const header = headerTree(m.header);
  const parties = (x: { patient: ScriptPatient; pharmacy: ScriptPharmacy; prescriber: ScriptPrescriber }) => ({
    Patient: patientTree(x.patient),
    Pharmacy: pharmacyTree(x.pharmacy),
    Prescriber: prescriberTree(x.prescriber),
  });
  let body: XmlElement;
  switch (m.type) {
    case 'NewRx':
      body = { ...parties(m), MedicationPrescribed: medicationTree(m.medication), ProhibitRenewalRequest: opt(m.prohibitRenewalRequest) };
      break;
    case 'CancelRx':
      body = { ...parties(m), MedicationPrescribed: medicationTree(m.medication) };
      break;
    case 'CancelRxResponse':
      body = { Response: responseTree(m.response) };
      break;
    case 'RxRenewalRequest':
      body = { ...parties(m), MedicationDispensed: medicationTree(m.medicationDispensed), MedicationPrescribed: medicationTree(m.medicationPrescribed) };
      break;
    case 'RxRenewalResponse':
      body = { Response: responseTree(m.response), ...parties(m), MedicationPrescribed: medicationTree(m.medication) };
      break;
    case 'RxChangeRequest':
      body = {
        MessageRequestCode: m.requestCode,
        ...parties(m),
        MedicationPrescribed: medicationTree(m.medication),
        MedicationRequested: m.requested.map((r) => medicationTree(r) as XmlElement),
      };
      break;
    case 'RxChangeResponse':
      body = { MessageRequestCode: m.requestCode, Response: responseTree(m.response), ...parties(m), MedicationPrescribed: medicationTree(m.medication) };
      break;
    case 'RxFill':
      body = {
        FillStatus: { [m.fillStatus.status]: { Note: m.fillStatus.note } },
        ...parties(m),
        MedicationPrescribed: medicationTree(m.medicationPrescribed),
        MedicationDispensed: medicationTree(m.medicationDispensed),
      };
      break;
    case 'Status':
    case 'Error':
      body = codeTree(m.code, m.descriptionCode, m.description);
      break;
    case 'Verify':
      body = { VerifyStatus: { Code: m.code, Description: m.description } };
      break;
    case 'PAInitiationRequest':
      body = { PAReferenceID: m.paReferenceId, Patient: patientTree(m.patient), Prescriber: prescriberTree(m.prescriber), MedicationPrescribed: medicationTree(m.medication) };
      break;
    case 'PAInitiationResponse':
      body = {
        PAReferenceID: m.paReferenceId,
        Response:
          m.response.status === 'Open'
            ? { Open: { PACaseID: m.response.caseId, QuestionSet: questionSetTree(m.response.questionSet) } }
            : { Closed: { ReasonCode: m.response.reasonCode, PANote: m.response.note } },
      };
      break;
    case 'PARequest':
      body = {
        PAReferenceID: m.paReferenceId,
        PACaseID: m.caseId,
        Patient: patientTree(m.patient),
        Prescriber: prescriberTree(m.prescriber),
        MedicationPrescribed: medicationTree(m.medication),
        QuestionSet: questionSetTree(m.questionSet),
        Attachment: attachmentsTree(m.attachments),
      };
      break;
    case 'PAResponse': {
      const r = m.response;
      const inner =
        r.status === 'Approved'
          ? { EffectiveDate: dateTree(r.effectiveDate), ExpirationDate: dateTree(r.expirationDate), PANote: r.note }
          : r.status === 'Pended'
            ? { QuestionSet: questionSetTree(r.questionSet), PANote: r.note }
            : { ReasonCode: r.reasonCode, PANote: r.note };
      body = { PAReferenceID: m.paReferenceId, PACaseID: m.caseId, Response: { [r.status]: inner } };
      break;
    }
    case 'PAAppealRequest':
      body = {
        PAReferenceID: m.paReferenceId,
        PACaseID: m.caseId,
        Patient: patientTree(m.patient),
        Prescriber: prescriberTree(m.prescriber),
        MedicationPrescribed: medicationTree(m.medication),
        AppealReason: m.reason,
        Attachment: attachmentsTree(m.attachments),
      };
      break;
    case 'PAAppealResponse': {
      const r = m.response;
      body = {
        PAReferenceID: m.paReferenceId,
        PACaseID: m.caseId,
        Response: { [r.status]: r.status === 'Approved' ? { EffectiveDate: dateTree(r.effectiveDate), ExpirationDate: dateTree(r.expirationDate), PANote: r.note } : { ReasonCode: r.reasonCode, PANote: r.note } },
      };
      break;
    }
  }
  return { header, body: { [m.type]: body } };
}

// ---- tree -> typed ----

function child(node: XmlNode | XmlNode[] | undefined, name: string): XmlNode | undefined {
  if (node === undefined || typeof node === 'string' || Array.isArray(node)) return undefined;
  const v = node[name];
  return Array.isArray(v) ? v[0] : v;
}
function text(node: XmlNode | XmlNode[] | undefined, ...names: string[]): string | undefined {
  let cur: XmlNode | undefined = Array.isArray(node) ? node[0] : node;
  for (const n of names) cur = child(cur, n);
  if (cur === undefined) return undefined;
  if (typeof cur === 'string') return cur === '' ? undefined : cur;
  const t = cur['#text'];
  return typeof t === 'string' && t !== '' ? t : undefined;
}
const req = (v: string | undefined): string => v ?? '';
const int = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number.parseInt(v, 10));
function dateOf(node: XmlNode | undefined): string {
  return req(text(node, 'Date') ?? text(node, 'DateTime')?.slice(0, 10));
}

function nameOf(n: XmlNode | undefined): ScriptName {
  return strip({ last: req(text(n, 'LastName')), first: text(n, 'FirstName'), middle: text(n, 'MiddleName'), suffix: text(n, 'Suffix'), prefix: text(n, 'Prefix') });
}
function addressOf(a: XmlNode | undefined): ScriptAddress | undefined {
  if (a === undefined) return undefined;
  return strip({
    line1: req(text(a, 'AddressLine1')),
    line2: text(a, 'AddressLine2'),
    city: req(text(a, 'City')),
    state: req(text(a, 'StateProvince')),
    postalCode: req(text(a, 'PostalCode')),
    country: req(text(a, 'CountryCode')),
  });
}
function partyOf(p: XmlNode | undefined): ScriptParty {
  const q = typeof p === 'object' ? p['@_Qualifier'] : undefined;
  return { qualifier: (typeof q === 'string' ? q : 'ZZ') as ScriptParty['qualifier'], id: req(text(p)) };
}

/** Drops undefined properties (so a parsed value deep-equals the one that was built). */
function strip<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function headerOf(h: XmlNode | undefined): ScriptHeader {
  const sw = child(h, 'SenderSoftware');
  const ds = child(h, 'DigitalSignature');
  const dsVersion = typeof ds === 'object' ? ds['@_Version'] : undefined;
  return strip({
    to: partyOf(child(h, 'To')),
    from: partyOf(child(h, 'From')),
    messageId: req(text(h, 'MessageID')),
    relatesToMessageId: text(h, 'RelatesToMessageID'),
    sentTime: req(text(h, 'SentTime')),
    senderSoftware: sw ? { developer: req(text(sw, 'SenderSoftwareDeveloper')), product: req(text(sw, 'SenderSoftwareProduct')), version: req(text(sw, 'SenderSoftwareVersionRelease')) } : undefined,
    rxReferenceNumber: text(h, 'RxReferenceNumber'),
    prescriberOrderNumber: text(h, 'PrescriberOrderNumber'),
    digitalSignature: ds
      ? strip({
          version: typeof dsVersion === 'string' ? dsVersion : '',
          indicator: text(ds, 'DigitalSignatureIndicator') === 'true',
          digestMethod: text(ds, 'DigestMethod'),
          digestValue: text(ds, 'DigestValue'),
          signatureValue: text(ds, 'SignatureValue'),
        })
      : undefined,
  });
}

function patientOf(p: XmlNode | undefined): ScriptPatient {
  const h = child(p, 'HumanPatient');
  return strip({
    name: nameOf(child(h, 'Name')),
    gender: req(text(h, 'Gender')) as ScriptPatient['gender'],
    birthDate: dateOf(child(h, 'DateOfBirth')),
    medicalRecordNumber: text(h, 'Identification', 'MedicalRecordIdentificationNumberEHR'),
    address: addressOf(child(h, 'Address')),
    phone: text(h, 'CommunicationNumbers', 'PrimaryTelephone', 'Number'),
  });
}

function pharmacyOf(p: XmlNode | undefined): ScriptPharmacy {
  return strip({
    ncpdpId: req(text(p, 'Identification', 'NCPDPID')),
    npi: text(p, 'Identification', 'NPI'),
    businessName: req(text(p, 'BusinessName')),
    address: addressOf(child(p, 'Address')),
    phone: req(text(p, 'CommunicationNumbers', 'PrimaryTelephone', 'Number')),
    fax: text(p, 'CommunicationNumbers', 'Fax', 'Number'),
  });
}

function prescriberOf(p: XmlNode | undefined): ScriptPrescriber {
  const n = child(p, 'NonVeterinarian');
  return strip({
    npi: req(text(n, 'Identification', 'NPI')),
    deaNumber: text(n, 'Identification', 'DEANumber'),
    stateLicenseNumber: text(n, 'Identification', 'StateLicenseNumber'),
    name: nameOf(child(n, 'Name')),
    address: addressOf(child(n, 'Address')) as ScriptAddress,
    phone: req(text(n, 'CommunicationNumbers', 'PrimaryTelephone', 'Number')),
    fax: text(n, 'CommunicationNumbers', 'Fax', 'Number'),
  });
}

function medicationOf(m: XmlNode | undefined): ScriptMedication {
  const coded = child(m, 'DrugCoded');
  const db = child(coded, 'DrugDBCode');
  const schedule = text(coded, 'DEASchedule', 'Code');
  const last = child(m, 'LastFillDate');
  return strip({
    description: req(text(m, 'DrugDescription')),
    ndc: text(coded, 'ProductCode', 'Code'),
    rxnorm: db ? { code: req(text(db, 'Code')), qualifier: req(text(db, 'Qualifier')) as NonNullable<ScriptMedication['rxnorm']>['qualifier'] } : undefined,
    deaSchedule: schedule ? NCI_DEA_SCHEDULE[schedule] : undefined,
    quantity: { value: req(text(m, 'Quantity', 'Value')), codeListQualifier: req(text(m, 'Quantity', 'CodeListQualifier')), unitCode: req(text(m, 'Quantity', 'QuantityUnitOfMeasure', 'Code')) },
    daysSupply: int(text(m, 'DaysSupply')),
    writtenDate: dateOf(child(m, 'WrittenDate')),
    lastFillDate: last ? dateOf(last) : undefined,
    substitutions: req(text(m, 'Substitutions')) as '0' | '1',
    numberOfRefills: int(text(m, 'NumberOfRefills')),
    note: text(m, 'Note'),
    sig: req(text(m, 'Sig', 'SigText')),
  });
}

function responseOf<S extends string>(r: XmlNode | undefined, choices: readonly S[]): ScriptResponse<S> {
  const status = choices.find((c) => child(r, c) !== undefined) as S;
  const inner = child(r, status);
  return strip({ status, note: text(inner, 'Note'), reasonCode: text(inner, 'ReasonCode'), reason: text(inner, 'DenialReason') });
}

function medications(node: XmlNode | XmlNode[] | undefined): ScriptMedication[] {
  if (node === undefined) return [];
  return (Array.isArray(node) ? node : [node]).map(medicationOf);
}

function list(node: XmlNode | XmlNode[] | undefined): XmlNode[] {
  return node === undefined ? [] : Array.isArray(node) ? node : [node];
}
function questionSetOf(q: XmlNode | undefined): PAQuestionSet {
  const questions = list(typeof q === 'object' ? q.Question : undefined).map((x): PAQuestion => {
    const choices = list(typeof x === 'object' ? x.Choice : undefined).map((c) => ({ id: req(text(c, 'ChoiceID')), text: req(text(c, 'ChoiceText')) }));
    return strip({
      id: req(text(x, 'QuestionID')),
      text: req(text(x, 'QuestionText')),
      type: req(text(x, 'QuestionType')) as PAQuestion['type'],
      required: text(x, 'Required') === 'true',
      choices: choices.length ? choices : undefined,
      answer: text(x, 'Answer'),
    });
  });
  return { id: req(text(q, 'QuestionSetID')), questions };
}
function attachmentsOf(node: XmlNode | XmlNode[] | undefined): PAAttachment[] {
  return list(node).map((a) => strip({ controlNumber: req(text(a, 'AttachmentControlNumber')), fileName: req(text(a, 'FileName')), mimeType: req(text(a, 'MIMEType')), sizeBytes: Number(req(text(a, 'Size'))), description: text(a, 'Description') }));
}

/** A typed message from a validated Header and Body/<type> element. */
export function fromTree(type: ScriptMessageType, headerNode: XmlNode, bodyNode: XmlNode): ScriptMessage {
  const header = headerOf(headerNode);
  const parties = () => ({ patient: patientOf(child(bodyNode, 'Patient')), pharmacy: pharmacyOf(child(bodyNode, 'Pharmacy')), prescriber: prescriberOf(child(bodyNode, 'Prescriber')) });
  // what a PA request and a PA appeal both carry: the case, who and what it is about, the attachments
  const paCase = () => ({
    paReferenceId: req(text(bodyNode, 'PAReferenceID')),
    caseId: req(text(bodyNode, 'PACaseID')),
    patient: patientOf(child(bodyNode, 'Patient')),
    prescriber: prescriberOf(child(bodyNode, 'Prescriber')),
    medication: medicationOf(child(bodyNode, 'MedicationPrescribed')),
    attachments: attachmentsOf(typeof bodyNode === 'object' ? bodyNode.Attachment : undefined),
  });
  switch (type) {
    case 'NewRx': {
  const prohibit = text(bodyNode, 'ProhibitRenewalRequest');
      return strip({ type, header, ...parties(), medication: medicationOf(child(bodyNode, 'MedicationPrescribed')), prohibitRenewalRequest: prohibit === undefined ? undefined : prohibit === 'true' });
    }
    case 'CancelRx':
      return { type, header, ...parties(), medication: medicationOf(child(bodyNode, 'MedicationPrescribed')) };
    case 'CancelRxResponse':
      return { type, header, response: responseOf(child(bodyNode, 'Response'), ['Approved', 'Denied'] as const) };
    case 'RxRenewalRequest': {
      const prescribed = child(bodyNode, 'MedicationPrescribed');
      return strip({ type, header, ...parties(), medicationDispensed: medicationOf(child(bodyNode, 'MedicationDispensed')), medicationPrescribed: prescribed ? medicationOf(prescribed) : undefined });
    }
    case 'RxRenewalResponse':
      return { type, header, response: responseOf(child(bodyNode, 'Response'), ['Approved', 'ApprovedWithChanges', 'Denied', 'Replace'] as const), ...parties(), medication: medicationOf(child(bodyNode, 'MedicationPrescribed')) };
    case 'RxChangeRequest':
      return {
        type,
        header,
        requestCode: req(text(bodyNode, 'MessageRequestCode')) as ChangeRequestCode,
        ...parties(),
        medication: medicationOf(child(bodyNode, 'MedicationPrescribed')),
        requested: medications(typeof bodyNode === 'object' ? bodyNode.MedicationRequested : undefined),
      };
    case 'RxChangeResponse':
      return {
        type,
        header,
        requestCode: req(text(bodyNode, 'MessageRequestCode')) as ChangeRequestCode,
        response: responseOf(child(bodyNode, 'Response'), ['Approved', 'ApprovedWithChanges', 'Denied', 'Validated'] as const),
        ...parties(),
        medication: medicationOf(child(bodyNode, 'MedicationPrescribed')),
      };
    case 'RxFill': {
      const fs = child(bodyNode, 'FillStatus');
      const status = (['Dispensed', 'PartiallyDispensed', 'NotDispensed', 'TransferredToAnotherPharmacy'] as const).find((s) => child(fs, s) !== undefined) as FillStatus;
      const prescribed = child(bodyNode, 'MedicationPrescribed');
      return strip({
        type,
        header,
        fillStatus: strip({ status, note: text(child(fs, status), 'Note') }),
        ...parties(),
        medicationPrescribed: prescribed ? medicationOf(prescribed) : undefined,
        medicationDispensed: medicationOf(child(bodyNode, 'MedicationDispensed')),
      });
    }
    case 'Status':
    case 'Error':
      return strip({ type, header, code: req(text(bodyNode, 'Code')), descriptionCode: text(bodyNode, 'DescriptionCode'), description: text(bodyNode, 'Description') });
    case 'Verify':
      return strip({ type, header, code: req(text(bodyNode, 'VerifyStatus', 'Code')), description: text(bodyNode, 'VerifyStatus', 'Description') });
    case 'PAInitiationRequest':
      return { type, header, paReferenceId: req(text(bodyNode, 'PAReferenceID')), patient: patientOf(child(bodyNode, 'Patient')), prescriber: prescriberOf(child(bodyNode, 'Prescriber')), medication: medicationOf(child(bodyNode, 'MedicationPrescribed')) };
    case 'PAInitiationResponse': {
      const r = child(bodyNode, 'Response');
      const open = child(r, 'Open');
      const closed = child(r, 'Closed');
      return {
        type,
        header,
        paReferenceId: req(text(bodyNode, 'PAReferenceID')),
        response: open !== undefined ? { status: 'Open', caseId: req(text(open, 'PACaseID')), questionSet: questionSetOf(child(open, 'QuestionSet')) } : strip({ status: 'Closed' as const, reasonCode: req(text(closed, 'ReasonCode')), note: text(closed, 'PANote') }),
      };
    }
    case 'PARequest':
      return { type, header, ...paCase(), questionSet: questionSetOf(child(bodyNode, 'QuestionSet')) };
    case 'PAResponse':
    case 'PAAppealResponse': {
      const r = child(bodyNode, 'Response');
      const approved = child(r, 'Approved');
      const pended = child(r, 'Pended');
      const denied = child(r, 'Denied');
      const closed = child(r, 'Closed');
      const response =
        approved !== undefined
          ? strip({ status: 'Approved' as const, effectiveDate: dateOf(child(approved, 'EffectiveDate')), expirationDate: dateOf(child(approved, 'ExpirationDate')), note: text(approved, 'PANote') })
          : pended !== undefined
            ? strip({ status: 'Pended' as const, questionSet: questionSetOf(child(pended, 'QuestionSet')), note: text(pended, 'PANote') })
            : strip({ status: denied !== undefined ? ('Denied' as const) : ('Closed' as const), reasonCode: req(text(denied ?? closed, 'ReasonCode')), note: text(denied ?? closed, 'PANote') });
      return { type, header, paReferenceId: req(text(bodyNode, 'PAReferenceID')), caseId: req(text(bodyNode, 'PACaseID')), response } as ScriptMessage;
    }
    case 'PAAppealRequest':
      return { type, header, ...paCase(), reason: req(text(bodyNode, 'AppealReason')) };
  }
}
