/**
 * PHI categories are the modules' vocabulary: a field may be marked only with a category an enabled module
 * declares (manifest `phiCategories`); the platform declares none of its own.
 */
import { describe, expect, it } from 'vitest';
import { PLATFORM_PHI_CATEGORIES } from '../../src/platform/audit/index.js';
import { buildSchema, phiCategoryCatalog, type ModuleManifest } from '../../src/schema/index.js';
import { createPatientsModule } from '../../src/modules/patients/index.js';

interface Chart {
  id: string;
  patientId: string;
  diagnosis: string;
  invoice: string;
}

/** A module with one PHI-marked object type; `declared` is its manifest's phiCategories. */
function chartModule(name: string, declared: Record<string, string> | undefined, marks: { diagnosis: string; invoice: string }): ModuleManifest {
  return {
    name,
    phase: 0,
    description: 'test-only: a chart with PHI-marked fields',
    dependsOn: [],
    permissions: { permissions: { [`${name}:read`]: 'Read charts' }, roles: {} },
    phiCategories: declared,
    schema: (builder) => {
      const Chart = builder.objectRef<Chart>(`${name[0]!.toUpperCase()}${name.slice(1)}Chart`).implement({
        phiResource: { patientId: (c) => c.patientId },
        fields: (t) => ({
          id: t.exposeID('id'),
          diagnosis: t.exposeString('diagnosis', { phi: marks.diagnosis }),
          invoice: t.exposeString('invoice', { phi: marks.invoice }),
        }),
      });
      builder.queryField(`${name}Chart`, (t) => t.field({ type: Chart, nullable: true, authScopes: { permission: `${name}:read` }, resolve: () => null }));
    },
  };
}

describe('PHI categories declared by modules', () => {
  it('a module marking its fields with categories it declares builds', () => {
    const m = chartModule('charts', { diagnoses: 'Diagnoses', invoices: 'Invoices' }, { diagnosis: 'diagnoses', invoice: 'invoices' });
    const schema = buildSchema([m]);
    expect(schema.getType('ChartsChart')).toBeDefined();
  });

  it('a field marked with a category no enabled module declares stops the build, naming the field and the category', () => {
    const m = chartModule('charts', { diagnoses: 'Diagnoses' }, { diagnosis: 'diagnoses', invoice: 'invoices' });
    expect(() => buildSchema([m])).toThrow(/ChartsChart\.invoice is marked with PHI category "invoices", which no enabled module declares.*phiCategories.*declared: diagnoses/);
    // no declaration at all
    expect(() => buildSchema([chartModule('charts', undefined, { diagnosis: 'diagnoses', invoice: 'diagnoses' })])).toThrow(/PHI category "diagnoses"/);
  });

  it("a category another enabled module declares may be used; a disabled module's may not", () => {
    const owner = chartModule('billing', { invoices: 'Invoices', diagnoses: 'Diagnoses' }, { diagnosis: 'diagnoses', invoice: 'invoices' });
    const user = chartModule('claims', { claims: 'Claims' }, { diagnosis: 'claims', invoice: 'invoices' });
    expect(() => buildSchema([owner, user])).not.toThrow();
    expect(() => buildSchema([user])).toThrow(/ClaimsChart\.invoice is marked with PHI category "invoices"/);
  });

  it("the platform names no module's categories; patients declares its own", () => {
    expect(Object.keys(PLATFORM_PHI_CATEGORIES)).toEqual([]);
    const catalog = phiCategoryCatalog([createPatientsModule()]);
    expect([...catalog.keys()].sort()).toEqual(['billing', 'contact', 'demographics', 'identity', 'ssn']);
    expect(catalog.get('ssn')).toEqual(['patients']);
  });
});
