import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { modules } from '../src/modules/index.js';

const SRC = path.resolve('src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports of a file, resolved to paths under src/. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2]!);
  return specs.filter((s) => s.startsWith('.')).map((s) => path.resolve(path.dirname(file), s));
}

const rel = (p: string) => path.relative(SRC, p).split(path.sep).join('/');
const moduleOf = (p: string) => /^modules\/([^/]+)\//.exec(rel(p))?.[1];

/**
 * The dependency rule of DESIGN.md: platform never imports a module (or
 * schema); schema imports only platform; a module imports another module only
 * through its index.ts and only if it lists it in dependsOn. Composition only
 * in src/modules/index.ts and src/db/schema.ts.
 */
function violations(): string[] {
  const out: string[] = [];
  const deps = new Map(modules.map((m) => [m.name, new Set(m.dependsOn)]));
  for (const file of files(SRC)) {
    const from = rel(file);
    for (const target of imports(file)) {
      const to = rel(target);
      if (from.startsWith('platform/') && (to.startsWith('modules/') || to.startsWith('schema/'))) out.push(`${from} -> ${to}`);
      if (from.startsWith('schema/') && (to.startsWith('modules/') || to === 'app.js')) out.push(`${from} -> ${to}`);
      const a = moduleOf(file);
      const b = moduleOf(target);
      if (a && b && a !== b) {
        if (!/^modules\/[^/]+\/index\.js$/.test(to)) out.push(`${from} -> ${to} (not through index.ts)`);
        else if (!deps.get(a)?.has(b)) out.push(`${from} -> ${to} (${b} not in ${a}.dependsOn)`);
      }
      // operational CLIs (npm run tenant:create, patients:import, ...) may use a module's public index.ts
      const cliUsingIndex = from.startsWith('cli/') && /^modules\/[^/]+\/index\.js$/.test(to);
      if (to.startsWith('modules/') && to !== 'modules/index.js' && !a && !cliUsingIndex && !['modules/index.ts', 'db/schema.ts'].includes(from)) {
        out.push(`${from} -> ${to} (modules are composed only in modules/index.ts and db/schema.ts; CLIs only through index.ts)`);
      }
    }
  }
  return out;
}

describe('dependency rule', () => {
  it('holds for every import under src/', () => {
    expect(violations()).toEqual([]);
  });

  it('the import reader finds imports (so the rule cannot pass vacuously)', () => {
    expect(imports(path.join(SRC, 'app.ts')).map(rel)).toContain('modules/index.js');
    expect(files(SRC).length).toBeGreaterThan(10);
  });

  it('module manifests form no cycle', () => {
    const names = modules.map((m) => m.name);
    modules.forEach((m, i) => m.dependsOn.forEach((d) => expect(names.indexOf(d)).toBeLessThan(i)));
  });
});
