/**
 * The module instances of one app (or worker, or CLI): what each module's
 * `init(deps)` returned, by module name. Nothing is kept per process: two
 * apps in one process (tests) built from the same manifests each have their
 * own instances. A module reaches its own instance from its request scope
 * (`scope.module<T>(name)`), job context (`ctx.scope.module`), socket handler
 * context or, at boot, `deps.instances`.
 */
export interface ModuleInstance {
  /** closes what the instance opened (timers, caches, pending writes); called once, modules in reverse order */
  close?(): Promise<void> | void;
}

export class ModuleInstances {
  private readonly byName = new Map<string, ModuleInstance>();
  private readonly capabilities = new Map<string, Map<string, unknown>>();

  /** What module `owner` provides under `key` (its manifest's `provides`, registered at boot). */
  provide(key: string, owner: string, value: unknown): void {
    let m = this.capabilities.get(key);
    if (!m) this.capabilities.set(key, (m = new Map()));
    if (m.has(owner)) throw new Error(`module "${owner}" provides "${key}" twice`);
    m.set(owner, value);
  }

  /** Every enabled module's value for `key`, in module order; empty when none provides it. */
  provided<T>(key: string): T[] {
    return [...(this.capabilities.get(key)?.values() ?? [])] as T[];
  }

  set(name: string, instance: ModuleInstance): void {
    if (this.byName.has(name)) throw new Error(`module "${name}" has two instances`);
    this.byName.set(name, instance);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The instance of an enabled, initialised module (throws otherwise: a programming error, not a request error). */
  get<T extends ModuleInstance = ModuleInstance>(name: string): T {
    const instance = this.byName.get(name);
    if (!instance) throw new Error(`module "${name}" has no instance here (not enabled, or used before init)`);
    return instance as T;
  }
}
