/**
 * Roles and permissions (RBAC): the permission table lives in code, so a
 * change to who may do what is a reviewed diff. The roles are the
 * platform's; each module's manifest declares its own permissions and which
 * roles hold them (`permissions: PermissionVocabulary`), and the app builds
 * one PermissionCatalog from the enabled modules. GraphQL fields require a
 * permission with `authScopes: { permission: '<module>:<action>' }`; a
 * principal holds the union of its roles' permissions (API keys: the key's
 * scoped subset of API_CLIENT's). Anything not granted is denied.
 */

export const ROLES = ['ADMIN', 'PROVIDER', 'NURSE', 'FRONT_DESK', 'BILLING', 'COMPLIANCE', 'PATIENT', 'API_CLIENT', 'PLATFORM_ADMIN'] as const;
export type Role = (typeof ROLES)[number];

/** Roles a user account may hold (API_CLIENT is only for API keys). */
export const USER_ROLES = ROLES.filter((r) => r !== 'API_CLIENT') as Exclude<Role, 'API_CLIENT'>[];

/**
 * Roles whose users always sign in with MFA, whatever the enabled modules
 * (issue 4: prescribers, who sign controlled-substance prescriptions once
 * e-prescribing exists). Otherwise MFA follows the permissions (PermissionSpec.mfa).
 */
export const MFA_ROLES: readonly Role[] = ['PROVIDER'];

/** A permission a manifest (or the platform) declares: what it allows, and whether its holders must sign in with MFA. */
export interface PermissionSpec {
  description: string;
  /** holders of this permission must sign in with MFA (e.g. audit reports, platform administration) */
  mfa?: boolean;
}

/**
 * The permissions one module contributes (its own names only, e.g.
 * `patient:read` for the patients module) and which roles hold them. Roles
 * are the platform's; permissions and grants belong to the module.
 */
export interface PermissionVocabulary {
  permissions: Readonly<Record<string, string | PermissionSpec>>;
  /** role -> permissions of this vocabulary that the role holds; API_CLIENT is the most an API key may be granted */
  roles?: Readonly<Partial<Record<Role, readonly string[]>>>;
}

/** A permission name (declared by a module's manifest or by the platform). */
export type Permission = string;

/** The platform's own permissions: the dead-letter queue admin API of platform/jobs (no module's names). */
export const PLATFORM_PERMISSIONS: PermissionVocabulary = {
  permissions: {
    'jobs:manage': 'List, retry and discard the tenant\u2019s failed background jobs (dead-letter queue)',
    'jobs:platform': 'With jobs:manage, also the failed runs of platform-wide scheduled jobs (platform administrators)',
  },
  roles: { ADMIN: ['jobs:manage'], PLATFORM_ADMIN: ['jobs:manage', 'jobs:platform'] },
};

/**
 * The permission table of one app: the platform's permissions plus those of
 * its enabled modules, and the role -> permissions grants they declare.
 * Anything not granted here is denied. Built once at boot (ModuleDeps.permissions).
 */
export class PermissionCatalog {
  private readonly specs = new Map<string, PermissionSpec & { owner: string }>();
  private readonly byRole = new Map<Role, Set<string>>();
  private readonly cache = new Map<string, ReadonlySet<string>>();

  /** `contributions`: each module's vocabulary, by module name (the platform's is added first). */
  constructor(contributions: readonly { owner: string; vocabulary: PermissionVocabulary | undefined }[]) {
    for (const r of ROLES) this.byRole.set(r, new Set());
    for (const { owner, vocabulary } of [{ owner: 'platform', vocabulary: PLATFORM_PERMISSIONS }, ...contributions]) {
      if (!vocabulary) continue;
      for (const [name, spec] of Object.entries(vocabulary.permissions)) {
        const known = this.specs.get(name);
        if (known) throw new Error(`permission "${name}" is declared by ${known.owner} and ${owner}`);
        this.specs.set(name, { ...(typeof spec === 'string' ? { description: spec } : spec), owner });
      }
      for (const [role, perms] of Object.entries(vocabulary.roles ?? {})) {
        if (!isRole(role)) throw new Error(`${owner} grants permissions to unknown role "${role}"`);
        for (const p of perms ?? []) {
          if (this.specs.get(p)?.owner !== owner) throw new Error(`${owner} grants "${p}" to ${role}, a permission it does not declare`);
          this.byRole.get(role)!.add(p);
        }
      }
    }
  }

  /** Every permission, in declaration order. */
  get all(): Permission[] {
    return [...this.specs.keys()];
  }

  isPermission(value: string): boolean {
    return this.specs.has(value);
  }

  describe(permission: string): string | undefined {
    return this.specs.get(permission)?.description;
  }

  /** The permissions one role holds. */
  ofRole(role: Role): ReadonlySet<string> {
    return this.byRole.get(role)!;
  }

  /** Union of the permissions of the given roles; unknown role names grant nothing. */
  forRoles(roles: readonly string[]): Set<string> {
    const key = roles.join(',');
    let hit = this.cache.get(key);
    if (!hit) {
      const out = new Set<string>();
      for (const r of roles) if (isRole(r)) for (const p of this.byRole.get(r)!) out.add(p);
      hit = out;
      if (this.cache.size < 1000) this.cache.set(key, hit);
    }
    return new Set(hit);
  }

  /** Permissions whose holders must sign in with MFA. */
  get mfaRequired(): Permission[] {
    return [...this.specs].filter(([, s]) => s.mfa).map(([p]) => p);
  }

  /** True when any of the roles requires MFA itself (MFA_ROLES) or holds a permission that requires MFA. */
  rolesRequireMfa(roles: readonly string[]): boolean {
    if (roles.some((r) => (MFA_ROLES as readonly string[]).includes(r))) return true;
    const perms = this.forRoles(roles);
    return this.mfaRequired.some((p) => perms.has(p));
  }
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
