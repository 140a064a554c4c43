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
