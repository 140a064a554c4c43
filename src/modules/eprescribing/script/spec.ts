import type { ScriptMessageType } from './model.js';

/**
 * The SCRIPT 2017071 element structure this module sends and accepts: for
 * each message type, the elements in the standard's order, which are
 * required, which form a choice, and the value formats. One description
 * serves three purposes: the builder orders its elements by it, the
 * validator reports every missing or malformed element by path before a
 * message is sent, and the parser checks an inbound message with it.
 *
 * The tree it describes is fast-xml-parser's: an element is a string (text
 * only) or an object of child elements, `#text` and `@_<attribute>`;
 * repeated elements are arrays.
 */
export interface AttributeSpec {
  name: string;
  required?: boolean;
  pattern?: RegExp;
}

export interface ElementSpec {
  name: string;
  required?: boolean;
  /** may occur more than once */
  repeat?: boolean;
  /** child elements, in the standard's order */
  children?: readonly ElementSpec[];
  /** exactly one of the children must be present (an XSD choice) */
  choice?: boolean;
  attributes?: readonly AttributeSpec[];
  /** a leaf's text must match */
  pattern?: RegExp;
  /** a further check of a leaf's text (check digits, calendar dates) */
  check?: (text: string) => boolean;
  maxLength?: number;
  /** an element whose presence is the value (`<Approved/>`): may be empty */
  empty?: boolean;
}

export type XmlNode = string | XmlElement;
export interface XmlElement {
  [key: string]: XmlNode | XmlNode[] | undefined;
}

const leaf = (name: string, required = false, pattern?: RegExp, maxLength?: number, check?: (text: string) => boolean): ElementSpec => ({ name, required, pattern, maxLength, check });
const el = (name: string, required: boolean, children: readonly ElementSpec[], extra: Partial<ElementSpec> = {}): ElementSpec => ({ name, required, children, ...extra });

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})$/;
const DIGITS = (min: number, max: number) => new RegExp(`^\\d{${min},${max}}$`);
const DECIMAL = /^\d{1,11}(\.\d{1,5})?$/;
const NCI = /^C\d{4,6}$/;
const ID35 = /^[\x21-\x7e]{1,35}$/;
const PHONE = /^\d{10}$/;
const STATE = /^[A-Z]{2}$/;
const COUNTRY = /^[A-Z]{2}$/;
const POSTAL = /^(\d{5}|\d{9}|[A-Z0-9 -]{3,10})$/;

/** Date > Date | DateTime */
const dateChoice = (name: string, required: boolean) => el(name, required, [leaf('Date', false, DATE, undefined, isCalendarDate), leaf('DateTime', false, DATETIME, undefined, isCalendarDate)], { choice: true });

/** 2024-02-30 matches the pattern but is no date. */
export function isCalendarDate(v: string): boolean {
  const [y, m, d] = v.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/** NPI check digit: Luhn over the 9 digits prefixed with the 80840 health-industry prefix (CMS NPI standard). */
export function isValidNpi(npi: string): boolean {
  if (!/^\d{10}$/.test(npi)) return false;
  const digits = `80840${npi.slice(0, 9)}`;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10 === Number(npi[9]);
}

/** DEA registration number: two letters then seven digits whose last is (d1+d3+d5 + 2*(d2+d4+d6)) mod 10. */
export function isValidDeaNumber(dea: string): boolean {
  if (!/^[A-Z][A-Z9]\d{7}$/.test(dea)) return false;
  const d = dea.slice(2).split('').map(Number) as number[];
  const sum = d[0]! + d[2]! + d[4]! + 2 * (d[1]! + d[3]! + d[5]!);
  return sum % 10 === d[6];
}

const nameSpec = (firstRequired: boolean) =>
  el('Name', true, [leaf('LastName', true, undefined, 35), leaf('FirstName', firstRequired, undefined, 35), leaf('MiddleName', false, undefined, 35), leaf('Suffix', false, undefined, 10), leaf('Prefix', false, undefined, 10)]);

const addressSpec = (required: boolean) =>
  el('Address', required, [
    leaf('AddressLine1', true, undefined, 40),
    leaf('AddressLine2', false, undefined, 40),
    leaf('City', true, undefined, 35),
    leaf('StateProvince', true, STATE),
    leaf('PostalCode', true, POSTAL),
    leaf('CountryCode', true, COUNTRY),
  ]);

const communication = (phoneRequired: boolean) =>
  el('CommunicationNumbers', phoneRequired, [
    el('PrimaryTelephone', phoneRequired, [leaf('Number', true, PHONE), leaf('Extension', false, DIGITS(1, 8))]),
    el('Fax', false, [leaf('Number', true, PHONE)]),
  ]);

const party = (name: 'To' | 'From'): ElementSpec => ({
  name,
  required: true,
  pattern: /^[\x21-\x7e]{1,35}$/,
  attributes: [{ name: 'Qualifier', required: true, pattern: /^(P|D|C|M|ZZ)$/ }],
});

/** Header, with the per-message requirements of RelatesToMessageID / PrescriberOrderNumber / RxReferenceNumber. */
function headerSpec(req: { relatesTo?: boolean; orderNumber?: boolean; rxReference?: boolean }): ElementSpec {
  return el('Header', true, [
    party('To'),
    party('From'),
    leaf('MessageID', true, ID35),
    leaf('RelatesToMessageID', req.relatesTo ?? false, ID35),
    leaf('SentTime', true, DATETIME),
    el('SenderSoftware', false, [leaf('SenderSoftwareDeveloper', true, undefined, 35), leaf('SenderSoftwareProduct', true, undefined, 35), leaf('SenderSoftwareVersionRelease', true, undefined, 35)]),
    leaf('RxReferenceNumber', req.rxReference ?? false, ID35),
    leaf('PrescriberOrderNumber', req.orderNumber ?? false, ID35),
    el(
      'DigitalSignature',
      false,
      [leaf('DigitalSignatureIndicator', true, /^(true|false)$/), leaf('DigestMethod', false, /^[A-Za-z0-9-]{1,20}$/), leaf('DigestValue', false, /^[A-Za-z0-9+/=_-]{1,200}$/), leaf('SignatureValue', false, /^[A-Za-z0-9+/=_-]{1,400}$/)],
      { attributes: [{ name: 'Version', required: true, pattern: /^[0-9.]{1,10}$/ }] },
    ),
  ]);
}

const patientSpec = el('Patient', true, [
  el('HumanPatient', true, [
    el('Identification', false, [leaf('MedicalRecordIdentificationNumberEHR', false, undefined, 35)]),
    nameSpec(true),
    leaf('Gender', true, /^(M|F|U)$/),
    dateChoice('DateOfBirth', true),
    addressSpec(false),
    communication(false),
  ]),
]);

const pharmacySpec = el('Pharmacy', true, [
  el('Identification', true, [leaf('NCPDPID', true, DIGITS(7, 7)), leaf('NPI', false, DIGITS(10, 10), undefined, isValidNpi)]),
  leaf('BusinessName', true, undefined, 70),
  addressSpec(false),
  communication(true),
]);

const prescriberSpec = el('Prescriber', true, [
  el('NonVeterinarian', true, [
    el('Identification', true, [leaf('StateLicenseNumber', false, undefined, 35), leaf('DEANumber', false, /^[A-Z][A-Z9]\d{7}$/, undefined, isValidDeaNumber), leaf('NPI', true, DIGITS(10, 10), undefined, isValidNpi)]),
    nameSpec(true),
    addressSpec(true),
    communication(true),
  ]),
]);

/** MedicationPrescribed / MedicationDispensed / MedicationRequested share one structure. */
function medicationSpec(name: string, required: boolean, opts: { refillsRequired?: boolean; repeat?: boolean; lastFill?: boolean } = {}): ElementSpec {
  return el(
    name,
    required,
    [
      leaf('DrugDescription', true, undefined, 105),
      el('DrugCoded', false, [
        el('ProductCode', false, [leaf('Code', true, DIGITS(11, 11)), leaf('Qualifier', true, /^ND$/)]),
        el('DrugDBCode', false, [leaf('Code', true, DIGITS(1, 10)), leaf('Qualifier', true, /^(SCD|SBD|GPCK|BPCK)$/)]),
        el('DEASchedule', false, [leaf('Code', true, /^C(48675|48676|48677|48679|48672|38046)$/)]),
      ]),
      el('Quantity', true, [leaf('Value', true, DECIMAL), leaf('CodeListQualifier', true, /^[0-9A-Z]{2}$/), el('QuantityUnitOfMeasure', true, [leaf('Code', true, NCI)])]),
      leaf('DaysSupply', false, DIGITS(1, 3)),
      dateChoice('WrittenDate', true),
      ...(opts.lastFill ? [dateChoice('LastFillDate', false)] : []),
      leaf('Substitutions', true, /^[01]$/),
      leaf('NumberOfRefills', opts.refillsRequired ?? false, DIGITS(1, 2)),
      leaf('Note', false, undefined, 210),
      el('Sig', true, [leaf('SigText', true, undefined, 1000)]),
    ],
    { repeat: opts.repeat },
  );
}

const responseSpec = (choices: readonly string[]) =>
  el(
    'Response',
    true,
    choices.map((c) =>
      c === 'Denied'
        ? el('Denied', false, [leaf('ReasonCode', false, /^[A-Z0-9]{2,3}$/), leaf('DenialReason', false, undefined, 260)], { empty: true })
        : el(c, false, [leaf('Note', false, undefined, 260)], { empty: true }),
    ),
    { choice: true },
  );

const codeDescription = () => [leaf('Code', true, DIGITS(3, 3)), leaf('DescriptionCode', false, DIGITS(3, 3)), leaf('Description', false, undefined, 140)];

// ---- ePA (prior authorization) parts
const questionSetSpec = (required: boolean) =>
  el('QuestionSet', required, [
    leaf('QuestionSetID', true, ID35),
    el(
      'Question',
      true,
      [
        leaf('QuestionID', true, ID35),
        leaf('QuestionText', true, undefined, 500),
        leaf('QuestionType', true, /^(FreeText|Numeric|Date|Select|Boolean)$/),
        leaf('Required', true, /^(true|false)$/),
        el('Choice', false, [leaf('ChoiceID', true, ID35), leaf('ChoiceText', true, undefined, 200)], { repeat: true }),
        leaf('Answer', false, undefined, 2000),
      ],
      { repeat: true },
    ),
  ]);
const attachmentSpec = el(
  'Attachment',
  false,
  [leaf('AttachmentControlNumber', true, /^[0-9a-f]{64}$/), leaf('FileName', true, undefined, 255), leaf('MIMEType', true, /^[A-Za-z]+\/[A-Za-z0-9.+-]+$/), leaf('Size', true, DIGITS(1, 10)), leaf('Description', false, undefined, 200)],
  { repeat: true },
);
const paNote = leaf('PANote', false, undefined, 500);
const paReasonCode = leaf('ReasonCode', true, /^[A-Z0-9]{1,3}$/);
const approvedPeriod = el('Approved', false, [dateChoice('EffectiveDate', true), dateChoice('ExpirationDate', true), paNote]);
const deniedPA = el('Denied', false, [paReasonCode, paNote]);
const paParties = [patientSpec, prescriberSpec, medicationSpec('MedicationPrescribed', true)];

const BODIES: Record<ScriptMessageType, { header: ElementSpec; body: ElementSpec }> = {
  NewRx: {
    header: headerSpec({ orderNumber: true }),
    body: el('NewRx', true, [patientSpec, pharmacySpec, prescriberSpec, medicationSpec('MedicationPrescribed', true, { refillsRequired: true }), leaf('ProhibitRenewalRequest', false, /^(true|false)$/)]),
  },
  CancelRx: {
    header: headerSpec({ orderNumber: true }),
    body: el('CancelRx', true, [patientSpec, pharmacySpec, prescriberSpec, medicationSpec('MedicationPrescribed', true)]),
  },
  CancelRxResponse: {
    header: headerSpec({ relatesTo: true }),
    body: el('CancelRxResponse', true, [responseSpec(['Approved', 'Denied'])]),
  },
  RxRenewalRequest: {
    header: headerSpec({ rxReference: true }),
    body: el('RxRenewalRequest', true, [patientSpec, pharmacySpec, prescriberSpec, medicationSpec('MedicationDispensed', true, { lastFill: true }), medicationSpec('MedicationPrescribed', false)]),
  },
  RxRenewalResponse: {
    header: headerSpec({ relatesTo: true }),
    body: el('RxRenewalResponse', true, [responseSpec(['Approved', 'ApprovedWithChanges', 'Denied', 'Replace']), patientSpec, pharmacySpec, prescriberSpec, medicationSpec('MedicationPrescribed', true, { refillsRequired: true })]),
  },
  RxChangeRequest: {
    header: headerSpec({ rxReference: false }),
    body: el('RxChangeRequest', true, [leaf('MessageRequestCode', true, /^(G|T|P|S|OS|D|U)$/), patientSpec, pharmacySpec, prescriberSpec, medicationSpec('MedicationPrescribed', true), medicationSpec('MedicationRequested', false, { repeat: true })]),
  },
  RxChangeResponse: {
    header: headerSpec({ relatesTo: true }),
    body: el('RxChangeResponse', true, [leaf('MessageRequestCode', true, /^(G|T|P|S|OS|D|U)$/), responseSpec(['Approved', 'ApprovedWithChanges', 'Denied', 'Validated']), patientSpec, pharmacySpec, prescriberSpec, medicationSpec('MedicationPrescribed', true)]),
  },
  RxFill: {
    header: headerSpec({}),
    body: el('RxFill', true, [
      el('FillStatus', true, ['Dispensed', 'PartiallyDispensed', 'NotDispensed', 'TransferredToAnotherPharmacy'].map((s) => el(s, false, [leaf('Note', false, undefined, 70)], { empty: true })), { choice: true }),
      patientSpec,
      pharmacySpec,
      prescriberSpec,
      medicationSpec('MedicationPrescribed', false),
      medicationSpec('MedicationDispensed', true, { lastFill: true }),
    ]),
  },
  PAInitiationRequest: {
    header: headerSpec({ orderNumber: true }),
    body: el('PAInitiationRequest', true, [leaf('PAReferenceID', true, ID35), ...paParties]),
  },
  PAInitiationResponse: {
    header: headerSpec({ relatesTo: true }),
    body: el('PAInitiationResponse', true, [
      leaf('PAReferenceID', true, ID35),
      el('Response', true, [el('Open', false, [leaf('PACaseID', true, ID35), questionSetSpec(true)]), el('Closed', false, [paReasonCode, paNote])], { choice: true }),
    ]),
  },
  PARequest: {
    header: headerSpec({ orderNumber: true }),
    body: el('PARequest', true, [leaf('PAReferenceID', true, ID35), leaf('PACaseID', true, ID35), ...paParties, questionSetSpec(true), attachmentSpec]),
  },
  PAResponse: {
    header: headerSpec({ relatesTo: true }),
    body: el('PAResponse', true, [
      leaf('PAReferenceID', true, ID35),
      leaf('PACaseID', true, ID35),
      el('Response', true, [approvedPeriod, deniedPA, el('Pended', false, [questionSetSpec(true), paNote]), el('Closed', false, [paReasonCode, paNote])], { choice: true }),
    ]),
  },
  PAAppealRequest: {
    header: headerSpec({ orderNumber: true }),
    body: el('PAAppealRequest', true, [leaf('PAReferenceID', true, ID35), leaf('PACaseID', true, ID35), ...paParties, leaf('AppealReason', true, undefined, 2000), attachmentSpec]),
  },
  PAAppealResponse: {
    header: headerSpec({ relatesTo: true }),
    body: el('PAAppealResponse', true, [leaf('PAReferenceID', true, ID35), leaf('PACaseID', true, ID35), el('Response', true, [approvedPeriod, deniedPA], { choice: true })]),
  },
  Status: { header: headerSpec({ relatesTo: true }), body: el('Status', true, codeDescription()) },
  Error: { header: headerSpec({ relatesTo: true }), body: el('Error', true, codeDescription()) },
  Verify: { header: headerSpec({ relatesTo: true }), body: el('Verify', true, [el('VerifyStatus', true, [leaf('Code', true, DIGITS(3, 3)), leaf('Description', false, undefined, 140)])]) },
};

/** Message attributes of 2017071. */
export const MESSAGE_ATTRIBUTES: readonly AttributeSpec[] = [
  { name: 'DatatypesVersion', required: true, pattern: /^20170715$/ },
  { name: 'TransportVersion', required: true, pattern: /^20170715$/ },
  { name: 'TransactionDomain', required: true, pattern: /^SCRIPT$/ },
  { name: 'TransactionVersion', required: true, pattern: /^20170715$/ },
  { name: 'StructuresVersion', required: true, pattern: /^20170715$/ },
  { name: 'ECLVersion', required: true, pattern: /^20170715$/ },
];

/** The whole Message element of one message type. */
export function messageSpec(type: ScriptMessageType): ElementSpec {
  const { header, body } = BODIES[type];
  return el('Message', true, [header, el('Body', true, [body])], { attributes: MESSAGE_ATTRIBUTES });
}

export interface SpecIssue {
  /** element path, e.g. Message/Body/NewRx/Prescriber/NonVeterinarian/Identification/NPI (an attribute: .../To/@Qualifier) */
  path: string;
  problem: 'missing' | 'invalid' | 'choice';
}

// eslint-disable-next-line no-control-regex
const XML_FORBIDDEN_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

function textOf(node: XmlNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (typeof node === 'string') return node;
  const t = node['#text'];
  return typeof t === 'string' ? t : undefined;
}

function isPresent(node: XmlNode | XmlNode[] | undefined): boolean {
  return node !== undefined && !(Array.isArray(node) && node.length === 0);
}

/**
 * Every missing required element, every malformed value and every broken
 * choice of a tree against its spec (empty list: valid). Paths name
 * elements only, never values (they may carry PHI).
 */
export function validateTree(spec: ElementSpec, node: XmlNode | XmlNode[] | undefined, path = spec.name, issues: SpecIssue[] = []): SpecIssue[] {
  if (!isPresent(node)) {
    if (spec.required) issues.push({ path, problem: 'missing' });
    return issues;
  }
  const occurrences = Array.isArray(node) ? node : [node as XmlNode];
  if (occurrences.length > 1 && !spec.repeat) issues.push({ path, problem: 'invalid' });
  occurrences.forEach((occ, i) => {
    const here = occurrences.length > 1 ? `${path}[${i + 1}]` : path;
    for (const a of spec.attributes ?? []) {
      const v = typeof occ === 'object' ? occ[`@_${a.name}`] : undefined;
      if (v === undefined || v === '') {
        if (a.required) issues.push({ path: `${here}/@${a.name}`, problem: 'missing' });
      } else if (typeof v !== 'string' || (a.pattern && !a.pattern.test(v))) issues.push({ path: `${here}/@${a.name}`, problem: 'invalid' });
    }
    if (spec.children) {
      if (typeof occ === 'string') {
        // text where elements belong; an empty-allowed element written <X/> parses as ''
        if (occ === '' && spec.empty) return;
        if (occ === '' && !spec.children.some((c) => c.required) && !spec.choice) return;
        issues.push({ path: here, problem: occ === '' ? 'missing' : 'invalid' });
        return;
      }
      if (spec.choice) {
        const present = spec.children.filter((c) => isPresent(occ[c.name]));
        if (present.length !== 1) {
          issues.push({ path: here, problem: 'choice' });
          return;
        }
      }
      for (const c of spec.children) validateTree(c, occ[c.name], `${here}/${c.name}`, issues);
      return;
    }
    const text = textOf(occ);
    if (text === undefined || text === '') {
      issues.push({ path: here, problem: 'missing' });
      return;
    }
    if (XML_FORBIDDEN_CHARS.test(text) || (spec.maxLength !== undefined && text.length > spec.maxLength) || (spec.pattern && !spec.pattern.test(text)) || (spec.check && !spec.check(text))) {
      issues.push({ path: here, problem: 'invalid' });
    }
  });
  return issues;
}

/**
 * The tree with its elements in the spec's order (attributes, then text,
 * then children), undefined and empty optional parts dropped: XML element
 * order is significant in SCRIPT.
 */
export function orderTree(spec: ElementSpec, node: XmlNode | XmlNode[] | undefined): XmlNode | XmlNode[] | undefined {
  if (node === undefined) return undefined;
  if (Array.isArray(node)) {
    const items = node.map((n) => orderTree(spec, n)).filter((n): n is XmlNode => n !== undefined && !Array.isArray(n));
    return items.length ? items : undefined;
  }
  if (typeof node === 'string' || !spec.children) return node;
  const out: XmlElement = {};
  for (const a of spec.attributes ?? []) if (node[`@_${a.name}`] !== undefined) out[`@_${a.name}`] = node[`@_${a.name}`];
  if (node['#text'] !== undefined) out['#text'] = node['#text'];
  for (const c of spec.children) {
    const v = orderTree(c, node[c.name]);
    if (v !== undefined) out[c.name] = v;
  }
  if (!Object.keys(out).length) return spec.empty || spec.required ? '' : undefined;
  return out;
}

/** The spec of the Body's only child, by message type. */
export function bodySpec(type: ScriptMessageType): ElementSpec {
  return BODIES[type].body;
}

/** Elements that may repeat (the parser makes them arrays even when there is one). */
export function repeatedPaths(): Set<string> {
  const out = new Set<string>();
  const walk = (s: ElementSpec, path: string) => {
    if (s.repeat) out.add(path);
    for (const c of s.children ?? []) walk(c, `${path}.${c.name}`);
  };
  for (const t of Object.keys(BODIES) as ScriptMessageType[]) walk(messageSpec(t), 'Message');
  return out;
}
