/** Writes schema.graphql for every module (FEATURES=all): the SDL frontend teams code against. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { modules } from '../modules/index.js';
import { buildSchema, printSchemaSDL } from '../schema/index.js';

export const SCHEMA_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../schema.graphql');

export function currentSDL(): string {
  return printSchemaSDL(buildSchema(modules));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(SCHEMA_FILE, currentSDL());
  process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`);
}
