/**
 * The module list app.ts loads, in dependency order. One of the two places
 * where modules are composed (the other is src/db/schema.ts).
 */
import type { ModuleManifest } from '../schema/module.js';
import identity from './identity/index.js';
import access from './access/index.js';
import audit from './audit/index.js';
import patients from './patients/index.js';
import eprescribing from './eprescribing/index.js';
import telehealth from './telehealth/index.js';
import billing from './billing/index.js';

export const modules: readonly ModuleManifest[] = [identity, access, audit, patients, eprescribing, telehealth, billing];
