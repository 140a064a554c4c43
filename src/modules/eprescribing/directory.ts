import { and, asc, eq, gt, ilike, or } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, conflict, notFound } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { users } from '../identity/index.js';
import { rxPharmacies, rxPrescribers, type Pharmacy, type Prescriber } from './prescription-tables.js';
import { badInputWith, principalOf, textArg, uuidArg } from './rx-common.js';
import { isValidNpi } from './script/index.js';

/**
 * The clinic's pharmacy directory (the network pharmacies it sends to) and
 * its prescribers (a user's NPI, license and practice address). Both are
 * tenant-owned (RLS) and every query filters by the tenant too.
 */

const STATE = /^[A-Z]{2}$/;
const POSTAL = /^\d{5}(\d{4})?$/;
const PHONE = /^\d{10}$/;

export interface AddressInput {
  addressLine1: unknown;
  addressLine2?: unknown;
  city: unknown;
  state: unknown;
  postalCode: unknown;
  phone: unknown;
  fax?: unknown;
}

function address(input: AddressInput) {
  const state = textArg(input.state, 'state', { max: 2 })!.toUpperCase();
  if (!STATE.test(state)) throw badInputWith('state must be a two-letter state code', 'state', 'INVALID_STATE');
  const postalCode = textArg(input.postalCode, 'postalCode', { max: 10 })!.replace('-', '');
  if (!POSTAL.test(postalCode)) throw badInputWith('postalCode must be a 5 or 9 digit ZIP code', 'postalCode', 'INVALID_POSTAL_CODE');
  const phone = digits(input.phone, 'phone')!;
  const fax = input.fax === undefined || input.fax === null || input.fax === '' ? null : digits(input.fax, 'fax');
  return {
    addressLine1: textArg(input.addressLine1, 'addressLine1', { max: 40 })!,
    addressLine2: textArg(input.addressLine2, 'addressLine2', { max: 40, optional: true }),
    city: textArg(input.city, 'city', { max: 35 })!,
    state,
    postalCode,
    phone,
    fax,
  };
}

function digits(v: unknown, field: string): string {
  const s = typeof v === 'string' ? v.replace(/[\s().+-]/g, '').replace(/^1(?=\d{10}$)/, '') : '';
  if (!PHONE.test(s)) throw badInputWith(`${field} must be a 10-digit US number`, field, 'INVALID_PHONE');
  return s;
}

function npiArg(v: unknown, field = 'npi'): string {
  const s = typeof v === 'string' ? v.trim() : '';
  if (!isValidNpi(s)) throw badInputWith(`${field} must be a 10-digit NPI with a valid check digit`, field, 'INVALID_NPI');
  return s;
}

// ------------------------------------------------------------------ pharmacies

export interface PharmacyInput extends AddressInput {
  ncpdpId: unknown;
  npi?: unknown;
  name: unknown;
  epcsEnabled?: unknown;
  active?: unknown;
}

export async function createPharmacy(scope: RequestScope, input: PharmacyInput): Promise<Pharmacy> {
  const p = principalOf(scope, 'rx:pharmacy:manage');
  const ncpdpId = typeof input.ncpdpId === 'string' ? input.ncpdpId.trim() : '';
  if (!/^\d{7}$/.test(ncpdpId)) throw badInputWith('ncpdpId must be the 7-digit NCPDP provider id', 'ncpdpId', 'INVALID_NCPDP_ID');
  const values = {
    tenantId: p.tenantId,
    ncpdpId,
    npi: input.npi === undefined || input.npi === null || input.npi === '' ? null : npiArg(input.npi),
    name: textArg(input.name, 'name', { max: 70 })!,
    ...address(input),
    epcsEnabled: input.epcsEnabled === undefined || input.epcsEnabled === null ? true : input.epcsEnabled === true,
  };
  const db = await scope.db();
  const [row] = await db.insert(rxPharmacies).values(values).onConflictDoNothing().returning();
  if (!row) throw new AppError(ErrorCode.CONFLICT, 'A pharmacy with this NCPDP id is already in the directory', { reason: 'PHARMACY_EXISTS' });
  return row;
}

export async function updatePharmacy(scope: RequestScope, idArg: unknown, version: unknown, input: Partial<PharmacyInput>): Promise<Pharmacy> {
  const p = principalOf(scope, 'rx:pharmacy:manage');
  const id = uuidArg(idArg, 'id');
  const db = await scope.db();
  const current = await findPharmacy(db, p.tenantId, id);
  if (current.version !== version) throw conflict('The pharmacy was changed by someone else; reload it');
  const merged = { ...current, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) } as PharmacyInput & Pharmacy;
  const [row] = await db
    .update(rxPharmacies)
    .set({
      name: textArg(merged.name, 'name', { max: 70 })!,
      npi: merged.npi === null || merged.npi === '' ? null : npiArg(merged.npi),
      ...address(merged),
      epcsEnabled: merged.epcsEnabled === true,
      active: merged.active !== false,
      version: current.version + 1,
      updatedAt: new Date(),
    })
    .where(and(eq(rxPharmacies.tenantId, p.tenantId), eq(rxPharmacies.id, id), eq(rxPharmacies.version, current.version)))
    .returning();
  if (!row) throw conflict('The pharmacy was changed by someone else; reload it');
  return row;
}

export async function findPharmacy(db: Db, tenantId: string, id: string): Promise<Pharmacy> {
  const [row] = await db.select().from(rxPharmacies).where(and(eq(rxPharmacies.tenantId, tenantId), eq(rxPharmacies.id, id)));
  if (!row) throw notFound('Pharmacy');
  return row;
}

export async function getPharmacy(scope: RequestScope, idArg: unknown): Promise<Pharmacy> {
  const p = principalOf(scope, 'rx:pharmacy:read');
  return findPharmacy(await scope.db(), p.tenantId, uuidArg(idArg, 'id'));
}

/** Active pharmacies by name or NCPDP id prefix, in name order (keyset on name, id). */
export async function listPharmacies(scope: RequestScope, input: { search?: unknown; first?: unknown; includeInactive?: unknown }): Promise<Pharmacy[]> {
  const p = principalOf(scope, 'rx:pharmacy:read');
  const first = typeof input.first === 'number' && Number.isInteger(input.first) && input.first > 0 && input.first <= 200 ? input.first : 50;
  const search = textArg(input.search, 'search', { max: 70, optional: true });
  const db = await scope.db();
  const conds = [eq(rxPharmacies.tenantId, p.tenantId)];
  if (input.includeInactive !== true) conds.push(eq(rxPharmacies.active, true));
  if (search) {
    const like = `${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    conds.push(or(ilike(rxPharmacies.name, like), ilike(rxPharmacies.ncpdpId, like), ilike(rxPharmacies.city, like))!);
  }
  return db
    .select()
    .from(rxPharmacies)
    .where(and(...conds))
    .orderBy(asc(rxPharmacies.name), asc(rxPharmacies.id))
    .limit(first);
}

// ------------------------------------------------------------------ prescribers

export interface PrescriberInput extends AddressInput {
  userId: unknown;
  npi: unknown;
  stateLicenseNumber?: unknown;
  firstName: unknown;
  lastName: unknown;
  suffix?: unknown;
}

/** Registers (or updates) a user's prescribing identity; the user must be an active PROVIDER of the tenant. */
export async function registerPrescriber(scope: RequestScope, input: PrescriberInput): Promise<Prescriber> {
  const p = principalOf(scope, 'rx:prescriber:manage');
  const userId = uuidArg(input.userId, 'userId');
  const db = await scope.db();
  const [user] = await db.select({ id: users.id, roles: users.roles, status: users.status }).from(users).where(and(eq(users.tenantId, p.tenantId), eq(users.id, userId)));
  if (!user) throw notFound('User');
  if (!(user.roles as string[]).includes('PROVIDER') || user.status !== 'active') throw badInputWith('A prescriber must be an active user with the PROVIDER role', 'userId', 'NOT_A_PROVIDER');
  const values = {
    npi: npiArg(input.npi),
    stateLicenseNumber: textArg(input.stateLicenseNumber, 'stateLicenseNumber', { max: 35, optional: true }),
    firstName: textArg(input.firstName, 'firstName', { max: 35 })!,
    lastName: textArg(input.lastName, 'lastName', { max: 35 })!,
    suffix: textArg(input.suffix, 'suffix', { max: 10, optional: true }),
    ...address(input),
  };
  const [row] = await db
    .insert(rxPrescribers)
    .values({ tenantId: p.tenantId, userId, ...values })
    .onConflictDoUpdate({ target: [rxPrescribers.tenantId, rxPrescribers.userId], set: { ...values, active: true, updatedAt: new Date() } })
    .returning();
  return row!;
}

export async function findPrescriber(db: Db, tenantId: string, id: string): Promise<Prescriber> {
  const [row] = await db.select().from(rxPrescribers).where(and(eq(rxPrescribers.tenantId, tenantId), eq(rxPrescribers.id, id)));
  if (!row) throw notFound('Prescriber');
  return row;
}

export async function prescriberOfUser(db: Db, tenantId: string, userId: string): Promise<Prescriber | undefined> {
  const [row] = await db.select().from(rxPrescribers).where(and(eq(rxPrescribers.tenantId, tenantId), eq(rxPrescribers.userId, userId), eq(rxPrescribers.active, true)));
  return row;
}

export async function getPrescriber(scope: RequestScope, idArg: unknown): Promise<Prescriber> {
  const p = principalOf(scope, 'rx:pharmacy:read');
  return findPrescriber(await scope.db(), p.tenantId, uuidArg(idArg, 'id'));
}

export async function listPrescribers(scope: RequestScope, input: { after?: unknown; first?: unknown }): Promise<Prescriber[]> {
  const p = principalOf(scope, 'rx:pharmacy:read');
  const first = typeof input.first === 'number' && Number.isInteger(input.first) && input.first > 0 && input.first <= 200 ? input.first : 50;
  const db = await scope.db();
  const conds = [eq(rxPrescribers.tenantId, p.tenantId)];
  if (input.after !== undefined && input.after !== null) conds.push(gt(rxPrescribers.id, uuidArg(input.after, 'after')));
  return db
    .select()
    .from(rxPrescribers)
    .where(and(...conds))
    .orderBy(asc(rxPrescribers.id))
    .limit(first);
}
