import { ConfigError } from '../config.js';
import type { ModuleManifest } from './module.js';

/**
 * Resolves FEATURES (`all`, `phase:N`, or a comma list of module names)
 * against the known manifests. Unknown names and missing dependencies stop
 * the boot with a ConfigError naming FEATURES.
 */
export function resolveModules(features: string, known: readonly ModuleManifest[]): ModuleManifest[] {
  const byName = new Map(known.map((m) => [m.name, m]));
  const spec = features.trim();
  let enabled: ModuleManifest[];
  if (spec === 'all') {
    enabled = [...known];
  } else if (/^phase:\d+$/.test(spec)) {
    const n = Number(spec.slice(6));
    enabled = known.filter((m) => m.phase <= n);
  } else {
    const names = spec.split(',').map((s) => s.trim()).filter(Boolean);
    if (names.length === 0 && spec !== '') throw new ConfigError('FEATURES', 'must be all, phase:N or a comma list of module names');
    enabled = [];
    for (const name of names) {
      if (!/^[a-z][a-z0-9-]*$/.test(name) && !byName.has(name)) {
        throw new ConfigError('FEATURES', 'must be all, phase:N or a comma list of module names');
      }
      const m = byName.get(name);
      if (!m) throw new ConfigError('FEATURES', `names an unknown module "${name}" (known: ${[...byName.keys()].join(', ') || 'none'})`);
      if (!enabled.includes(m)) enabled.push(m);
    }
  }
  const names = new Set(enabled.map((m) => m.name));
  for (const m of enabled) {
    for (const dep of m.dependsOn) {
      if (!names.has(dep)) throw new ConfigError('FEATURES', `enables module "${m.name}" without its dependency "${dep}"`);
    }
  }
  // keep the order of `known` (which is dependency order)
  return known.filter((m) => names.has(m.name));
}
