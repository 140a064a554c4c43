/**
 * NCPDP SCRIPT 2017071 messages as typed values (what the rest of the module
 * works with). codec.ts turns them into the standard's element tree and
 * back; spec.ts says which elements each message requires, in which order.
 *
 * Names follow the standard: a message is Message > Header > Body > <type>;
 * the body carries Patient/HumanPatient, Pharmacy, Prescriber/NonVeterinarian
 * and MedicationPrescribed (or MedicationDispensed, MedicationRequested).
 */

/** The SCRIPT version this module speaks (the one US regulation requires today). */
export const SCRIPT_VERSION = '2017071';
/** The value of the Message element's *Version attributes for 2017071 (datatypes, transport, structures, ECL). */
export const SCRIPT_SCHEMA_VERSION = '20170715';
export const SCRIPT_NAMESPACE = 'http://www.ncpdp.org/schema/SCRIPT';

export const SCRIPT_MESSAGE_TYPES = [
  'NewRx',
  'CancelRx',
  'CancelRxResponse',
  'RxRenewalRequest',
  'RxRenewalResponse',
  'RxChangeRequest',
  'RxChangeResponse',
  'RxFill',
  'Status',
  'Error',
  'Verify',
  'PAInitiationRequest',
  'PAInitiationResponse',
  'PARequest',
  'PAResponse',
  'PAAppealRequest',
  'PAAppealResponse',
] as const;
export type ScriptMessageType = (typeof SCRIPT_MESSAGE_TYPES)[number];

/**
 * Header To/From qualifiers: P = pharmacy (NCPDP ID), D = prescriber / EHR
 * (the network's prescriber id, here the NPI), C = clinic, M = mailbox,
 * ZZ = mutually defined.
 */
export type PartyQualifier = 'P' | 'D' | 'C' | 'M' | 'ZZ';
export interface ScriptParty {
  qualifier: PartyQualifier;
  id: string;
}

/** Header > DigitalSignature: an EPCS prescription's signature (21 CFR 1311.120(b)(17)). */
export interface ScriptDigitalSignature {
  /** the DigitalSignature element's Version attribute */
  version: string;
  indicator: boolean;
  /** e.g. "SHA256" */
  digestMethod?: string;
  /** base64 digest of the signed prescription content */
  digestValue?: string;
  /** base64 signature over the digest */
  signatureValue?: string;
}

export interface ScriptHeader {
  to: ScriptParty;
  from: ScriptParty;
  /** unique per sender, at most 35 characters */
  messageId: string;
  /** the MessageID this message answers (Status, Error, Verify and every *Response) */
  relatesToMessageId?: string;
  /** ISO 8601 UTC timestamp */
  sentTime: string;
  senderSoftware?: { developer: string; product: string; version: string };
  /** the pharmacy's prescription number (RxRenewalRequest, RxChangeRequest, RxFill) */
  rxReferenceNumber?: string;
  /** the prescriber system's order number (NewRx and everything about that prescription) */
  prescriberOrderNumber?: string;
  digitalSignature?: ScriptDigitalSignature;
}

export interface ScriptName {
  last: string;
  first?: string;
  middle?: string;
  suffix?: string;
  prefix?: string;
}

export interface ScriptAddress {
  line1: string;
  line2?: string;
  city: string;
  /** two-letter state or province */
  state: string;
  postalCode: string;
  /** ISO 3166 alpha-2 */
  country: string;
}

export interface ScriptPatient {
  name: ScriptName;
  /** M, F or U (unknown) */
  gender: 'M' | 'F' | 'U';
  /** YYYY-MM-DD */
  birthDate: string;
  /** the prescriber system's medical record number */
  medicalRecordNumber?: string;
  address?: ScriptAddress;
  phone?: string;
}

export interface ScriptPharmacy {
  /** 7-digit NCPDP provider id */
  ncpdpId: string;
  npi?: string;
  businessName: string;
  address?: ScriptAddress;
  phone: string;
  fax?: string;
}

export interface ScriptPrescriber {
  npi: string;
  /** required on a controlled-substance prescription */
  deaNumber?: string;
  stateLicenseNumber?: string;
  name: ScriptName;
  address: ScriptAddress;
  phone: string;
  fax?: string;
}

/** DEA schedule as the catalog spells it. */
export type ScriptDeaSchedule = 'CII' | 'CIII' | 'CIV' | 'CV';
/** NCI thesaurus codes SCRIPT uses for DrugCoded/DEASchedule/Code. */
export const DEA_SCHEDULE_NCI: Readonly<Record<ScriptDeaSchedule, string>> = {
  CII: 'C48675',
  CIII: 'C48676',
  CIV: 'C48677',
  CV: 'C48679',
};
export const NCI_DEA_SCHEDULE: Readonly<Record<string, ScriptDeaSchedule>> = Object.fromEntries(
  Object.entries(DEA_SCHEDULE_NCI).map(([k, v]) => [v, k as ScriptDeaSchedule]),
);

/** NCI codes for QuantityUnitOfMeasure (the potency unit list SCRIPT uses) for the common units. */
export const QUANTITY_UNIT_NCI = {
  tablet: 'C48542',
  capsule: 'C48480',
  milliliter: 'C28254',
  gram: 'C48155',
  each: 'C64933',
} as const;

export interface ScriptMedication {
  /** DrugDescription: the full drug name with strength and form, at most 105 characters */
  description: string;
  /** 11-digit NDC (DrugCoded/ProductCode, qualifier ND) */
  ndc?: string;
  /** RxNorm concept (DrugCoded/DrugDBCode; qualifier SCD, SBD, GPCK or BPCK) */
  rxnorm?: { code: string; qualifier: 'SCD' | 'SBD' | 'GPCK' | 'BPCK' };
  deaSchedule?: ScriptDeaSchedule;
  quantity: {
    /** decimal, as text (exact) */
    value: string;
    /** CodeListQualifier: 38 = original quantity, 87 = quantity received, QS = quantity sufficient */
    codeListQualifier: string;
    /** NCI code (QUANTITY_UNIT_NCI) */
    unitCode: string;
  };
  daysSupply?: number;
  /** YYYY-MM-DD */
  writtenDate: string;
  /** YYYY-MM-DD (MedicationDispensed) */
  lastFillDate?: string;
  /** 0 = substitution allowed, 1 = dispense as written */
  substitutions: '0' | '1';
  /** refills authorised (not counting the first fill) */
  numberOfRefills?: number;
  /** Sig/SigText: the directions */
  sig: string;
  note?: string;
}

/** Outcome of a *Response message (Response > Approved | ApprovedWithChanges | Denied | Replace | Validated). */
export interface ScriptResponse<S extends string> {
  status: S;
  note?: string;
  /** Denied: the reason code (e.g. AA patient unknown to the prescriber, AF contact prescriber) */
  reasonCode?: string;
  /** Denied: free text */
  reason?: string;
}

/** RxChangeRequest MessageRequestCode: G generic, T therapeutic, P prior authorization, S script clarification, OS out of stock, D drug use evaluation, U prescriber authorization. */
export const CHANGE_REQUEST_CODES = ['G', 'T', 'P', 'S', 'OS', 'D', 'U'] as const;
export type ChangeRequestCode = (typeof CHANGE_REQUEST_CODES)[number];

export const FILL_STATUSES = ['Dispensed', 'PartiallyDispensed', 'NotDispensed', 'TransferredToAnotherPharmacy'] as const;
export type FillStatus = (typeof FILL_STATUSES)[number];

interface Parties {
  patient: ScriptPatient;
  pharmacy: ScriptPharmacy;
  prescriber: ScriptPrescriber;
}

export interface NewRxMessage extends Parties {
  type: 'NewRx';
  header: ScriptHeader;
  medication: ScriptMedication;
  prohibitRenewalRequest?: boolean;
}
export interface CancelRxMessage extends Parties {
  type: 'CancelRx';
  header: ScriptHeader;
  medication: ScriptMedication;
}
export interface CancelRxResponseMessage {
  type: 'CancelRxResponse';
  header: ScriptHeader;
  response: ScriptResponse<'Approved' | 'Denied'>;
}
export interface RxRenewalRequestMessage extends Parties {
  type: 'RxRenewalRequest';
  header: ScriptHeader;
  /** what was last dispensed */
  medicationDispensed: ScriptMedication;
  /** the original prescription, when the pharmacy has it */
  medicationPrescribed?: ScriptMedication;
}
export interface RxRenewalResponseMessage extends Parties {
  type: 'RxRenewalResponse';
  header: ScriptHeader;
  response: ScriptResponse<'Approved' | 'ApprovedWithChanges' | 'Denied' | 'Replace'>;
  /** the renewal as approved (NumberOfRefills = refills granted) */
  medication: ScriptMedication;
}
export interface RxChangeRequestMessage extends Parties {
  type: 'RxChangeRequest';
  header: ScriptHeader;
  requestCode: ChangeRequestCode;
  medication: ScriptMedication;
  /** the alternatives the pharmacy proposes (none for a prior authorization request) */
  requested: ScriptMedication[];
}
export interface RxChangeResponseMessage extends Parties {
  type: 'RxChangeResponse';
  header: ScriptHeader;
  requestCode: ChangeRequestCode;
  response: ScriptResponse<'Approved' | 'ApprovedWithChanges' | 'Denied' | 'Validated'>;
  medication: ScriptMedication;
}
export interface RxFillMessage extends Parties {
  type: 'RxFill';
  header: ScriptHeader;
  fillStatus: { status: FillStatus; note?: string };
  medicationPrescribed?: ScriptMedication;
  medicationDispensed: ScriptMedication;
}
export interface StatusMessage {
  type: 'Status';
  header: ScriptHeader;
  /** 000 transaction successful, 010 successfully accepted by ultimate receiver */
  code: string;
  descriptionCode?: string;
  description?: string;
}
export interface ErrorMessage {
  type: 'Error';
  header: ScriptHeader;
  /** 600 communication problem, 601 receiver unable to process, 602 receiver system error, 900 transaction rejected */
  code: string;
  descriptionCode?: string;
  description?: string;
}
export interface VerifyMessage {
  type: 'Verify';
  header: ScriptHeader;
  /** VerifyStatus/Code (010 = successfully received and processed) */
  code: string;
  description?: string;
}

// ---------------------------------------------------------------- electronic prior authorization (ePA)

/** A question of a payer's question set (and the prescriber's answer, in a PARequest). */
export interface PAQuestion {
  id: string;
  text: string;
  type: 'FreeText' | 'Numeric' | 'Date' | 'Select' | 'Boolean';
  required: boolean;
  /** Select: the choices offered */
  choices?: { id: string; text: string }[];
  /** the answer (PARequest) */
  answer?: string;
}
export interface PAQuestionSet {
  id: string;
  questions: PAQuestion[];
}
/** Attachment metadata (the document itself travels by the payer's upload channel, named by its control number). */
export interface PAAttachment {
  /** sha256 of the document, hex */
  controlNumber: string;
  fileName: string;
  mimeType: string;
  sizeBytes: number;
  description?: string;
}

interface PAParties {
  patient: ScriptPatient;
  prescriber: ScriptPrescriber;
  medication: ScriptMedication;
}

/** Prescriber -> payer: a prior authorization is needed for this medication. */
export interface PAInitiationRequestMessage extends PAParties {
  type: 'PAInitiationRequest';
  header: ScriptHeader;
  /** the prescriber system's id of the PA (echoed in every PA message) */
  paReferenceId: string;
}
/** Payer -> prescriber: the case is open with a question set, or closed (no PA needed, not covered). */
export interface PAInitiationResponseMessage {
  type: 'PAInitiationResponse';
  header: ScriptHeader;
  paReferenceId: string;
  response: { status: 'Open'; caseId: string; questionSet: PAQuestionSet } | { status: 'Closed'; reasonCode: string; note?: string };
}
/** Prescriber -> payer: the answers (and attachment metadata). */
export interface PARequestMessage extends PAParties {
  type: 'PARequest';
  header: ScriptHeader;
  paReferenceId: string;
  caseId: string;
  questionSet: PAQuestionSet;
  attachments: PAAttachment[];
}
/** Payer -> prescriber: the determination. Pended: more information (another question set). */
export interface PAResponseMessage {
  type: 'PAResponse';
  header: ScriptHeader;
  paReferenceId: string;
  caseId: string;
  response:
    | { status: 'Approved'; effectiveDate: string; expirationDate: string; note?: string }
    | { status: 'Denied'; reasonCode: string; note?: string }
    | { status: 'Pended'; questionSet: PAQuestionSet; note?: string }
    | { status: 'Closed'; reasonCode: string; note?: string };
}
/** Prescriber -> payer: an appeal of a denial. */
export interface PAAppealRequestMessage extends PAParties {
  type: 'PAAppealRequest';
  header: ScriptHeader;
  paReferenceId: string;
  caseId: string;
  reason: string;
  attachments: PAAttachment[];
}
export interface PAAppealResponseMessage {
  type: 'PAAppealResponse';
  header: ScriptHeader;
  paReferenceId: string;
  caseId: string;
  response: { status: 'Approved'; effectiveDate: string; expirationDate: string; note?: string } | { status: 'Denied'; reasonCode: string; note?: string };
}

export type ScriptMessage =
  | PAInitiationRequestMessage
  | PAInitiationResponseMessage
  | PARequestMessage
  | PAResponseMessage
  | PAAppealRequestMessage
  | PAAppealResponseMessage
  | NewRxMessage
  | CancelRxMessage
  | CancelRxResponseMessage
  | RxRenewalRequestMessage
  | RxRenewalResponseMessage
  | RxChangeRequestMessage
  | RxChangeResponseMessage
  | RxFillMessage
  | StatusMessage
  | ErrorMessage
  | VerifyMessage;

export type ScriptMessageOf<T extends ScriptMessageType> = Extract<ScriptMessage, { type: T }>;
