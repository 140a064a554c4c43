import type {
  PAQuestionSet,
  ScriptHeader,
  ScriptMedication,
  ScriptMessage,
  ScriptMessageType,
  ScriptPatient,
  ScriptPharmacy,
  ScriptPrescriber,
} from '../../../src/modules/eprescribing/script/index.js';

/** Synthetic SCRIPT parties (valid NPI / DEA check digits; no real person). */
export const patient: ScriptPatient = {
  name: { last: 'Testpatient', first: 'Avery', middle: 'Q' },
  gender: 'F',
  birthDate: '1961-04-12',
  medicalRecordNumber: 'MRN-000123',
  address: { line1: '12 Elm St', city: 'Springfield', state: 'IL', postalCode: '62701', country: 'US' },
  phone: '2175550100',
};
export const pharmacy: ScriptPharmacy = {
  ncpdpId: '1234567',
  npi: '1987654328',
  businessName: 'Carebase Test Pharmacy',
  address: { line1: '1 Main St', line2: 'Suite 2', city: 'Springfield', state: 'IL', postalCode: '627010000', country: 'US' },
  phone: '2175550111',
  fax: '2175550112',
};
export const prescriber: ScriptPrescriber = {
  npi: '1234567893',
  deaNumber: 'AB1234563',
  stateLicenseNumber: 'IL-036-123456',
  name: { last: 'Prescriber', first: 'Morgan', suffix: 'MD' },
  address: { line1: '5 Clinic Way', city: 'Springfield', state: 'IL', postalCode: '62702', country: 'US' },
  phone: '2175550199',
};
export const medication: ScriptMedication = {
  description: 'lisinopril 10 MG Oral Tablet',
  ndc: '00093111001',
  rxnorm: { code: '314076', qualifier: 'SCD' },
  quantity: { value: '30', codeListQualifier: '38', unitCode: 'C48542' },
  daysSupply: 30,
  writtenDate: '2026-12-01',
  substitutions: '0',
  numberOfRefills: 3,
  sig: 'Take 1 tablet by mouth once daily',
  note: 'synthetic',
};
export const controlled: ScriptMedication = {
  description: 'oxycodone hydrochloride 5 MG Oral Tablet',
  rxnorm: { code: '1049621', qualifier: 'SCD' },
  deaSchedule: 'CII',
  quantity: { value: '12', codeListQualifier: '38', unitCode: 'C48542' },
  daysSupply: 3,
  writtenDate: '2026-12-01',
  substitutions: '0',
  numberOfRefills: 0,
  sig: 'Take 1 tablet by mouth every 6 hours as needed for pain',
};

export function header(over: Partial<ScriptHeader> = {}): ScriptHeader {
  return {
    to: { qualifier: 'P', id: '1234567' },
    from: { qualifier: 'D', id: '1234567893' },
    messageId: 'MSG-0001',
    sentTime: '2026-12-01T10:15:30.123Z',
    senderSoftware: { developer: 'Carebase', product: 'Carebase eRx', version: '1.0' },
    prescriberOrderNumber: 'ORDER-1',
    ...over,
  };
}

export function questionSet(answers?: string[]): PAQuestionSet {
  const qs: PAQuestionSet = {
    id: 'QS-1',
    questions: [
      { id: 'Q1', text: 'Has the patient tried and failed a formulary alternative?', type: 'Select', required: true, choices: [{ id: 'yes', text: 'Yes' }, { id: 'no', text: 'No' }] },
      { id: 'Q2', text: 'Diagnosis (ICD-10)', type: 'FreeText', required: true },
    ],
  };
  if (answers) qs.questions.forEach((q, i) => (q.answer = answers[i]));
  return qs;
}

/** One valid message of every type. */
export function sampleMessages(): Record<ScriptMessageType, ScriptMessage> {
  const parties = { patient, pharmacy, prescriber };
  const reply = header({ to: { qualifier: 'D', id: '1234567893' }, from: { qualifier: 'P', id: '1234567' }, messageId: 'PH-1', relatesToMessageId: 'MSG-0001' });
  return {
    NewRx: { type: 'NewRx', header: header(), ...parties, medication, prohibitRenewalRequest: false },
    CancelRx: { type: 'CancelRx', header: header({ messageId: 'MSG-0002' }), ...parties, medication },
    CancelRxResponse: { type: 'CancelRxResponse', header: reply, response: { status: 'Denied', reasonCode: 'AA', reason: 'Already dispensed' } },
    RxRenewalRequest: {
      type: 'RxRenewalRequest',
      header: header({ to: reply.to, from: reply.from, messageId: 'PH-2', rxReferenceNumber: 'RX-889', prescriberOrderNumber: 'ORDER-1' }),
      ...parties,
      medicationDispensed: { ...medication, lastFillDate: '2026-12-20', numberOfRefills: 0 },
      medicationPrescribed: medication,
    },
    RxRenewalResponse: { type: 'RxRenewalResponse', header: header({ messageId: 'MSG-0003', relatesToMessageId: 'PH-2' }), response: { status: 'Approved', note: 'ok' }, ...parties, medication: { ...medication, numberOfRefills: 5 } },
    RxChangeRequest: {
      type: 'RxChangeRequest',
      header: header({ to: reply.to, from: reply.from, messageId: 'PH-3', rxReferenceNumber: 'RX-889' }),
      requestCode: 'G',
      ...parties,
      medication,
      requested: [{ ...medication, description: 'lisinopril 10 MG Oral Tablet [generic B]', ndc: '68180051301' }, { ...medication, description: 'lisinopril 20 MG Oral Tablet', quantity: { value: '15', codeListQualifier: '38', unitCode: 'C48542' } }],
    },
    RxChangeResponse: { type: 'RxChangeResponse', header: header({ messageId: 'MSG-0004', relatesToMessageId: 'PH-3' }), requestCode: 'G', response: { status: 'Approved' }, ...parties, medication },
    RxFill: {
      type: 'RxFill',
      header: header({ to: reply.to, from: reply.from, messageId: 'PH-4', relatesToMessageId: 'MSG-0001', rxReferenceNumber: 'RX-889' }),
      fillStatus: { status: 'Dispensed', note: 'picked up' },
      ...parties,
      medicationPrescribed: medication,
      medicationDispensed: { ...medication, lastFillDate: '2026-12-02' },
    },
    Status: { type: 'Status', header: reply, code: '010', description: 'Accepted by pharmacy' },
    Error: { type: 'Error', header: reply, code: '900', descriptionCode: '210', description: 'Prescriber unknown' },
    Verify: { type: 'Verify', header: reply, code: '010', description: 'Received and processed' },
    PAInitiationRequest: { type: 'PAInitiationRequest', header: header({ messageId: 'PA-1', to: { qualifier: 'ZZ', id: 'PAYER01' } }), paReferenceId: 'PAREF-1', patient, prescriber, medication },
    PAInitiationResponse: {
      type: 'PAInitiationResponse',
      header: { ...reply, from: { qualifier: 'ZZ', id: 'PAYER01' }, relatesToMessageId: 'PA-1' },
      paReferenceId: 'PAREF-1',
      response: { status: 'Open', caseId: 'CASE-9', questionSet: questionSet() },
    },
    PARequest: {
      type: 'PARequest',
      header: header({ messageId: 'PA-2', to: { qualifier: 'ZZ', id: 'PAYER01' } }),
      paReferenceId: 'PAREF-1',
      caseId: 'CASE-9',
      patient,
      prescriber,
      medication,
      questionSet: questionSet(['yes', 'I10']),
      attachments: [{ controlNumber: 'a'.repeat(64), fileName: 'notes.pdf', mimeType: 'application/pdf', sizeBytes: 52311, description: 'Chart notes' }],
    },
    PAResponse: {
      type: 'PAResponse',
      header: { ...reply, from: { qualifier: 'ZZ', id: 'PAYER01' }, relatesToMessageId: 'PA-2' },
      paReferenceId: 'PAREF-1',
      caseId: 'CASE-9',
      response: { status: 'Approved', effectiveDate: '2026-12-01', expirationDate: '2027-11-30', note: 'Approved for 12 months' },
    },
    PAAppealRequest: {
      type: 'PAAppealRequest',
      header: header({ messageId: 'PA-3', to: { qualifier: 'ZZ', id: 'PAYER01' } }),
      paReferenceId: 'PAREF-1',
      caseId: 'CASE-9',
      patient,
      prescriber,
      medication,
      reason: 'Formulary alternative caused angioedema',
      attachments: [],
    },
    PAAppealResponse: {
      type: 'PAAppealResponse',
      header: { ...reply, from: { qualifier: 'ZZ', id: 'PAYER01' }, relatesToMessageId: 'PA-3' },
      paReferenceId: 'PAREF-1',
      caseId: 'CASE-9',
      response: { status: 'Denied', reasonCode: 'NC', note: 'Not covered' },
    },
  };
}
