/**
 * Marking PHI once, in the schema (a Pothos plugin).
 *
 *   builder.objectType(PatientRef, {
 *     phiResource: { patientId: (p) => p.id, resourceType: 'Patient' },
 *     fields: (t) => ({
 *       name: t.exposeString('name', { phi: 'demographics' }),
 *       ssn: t.exposeString('ssn', { phi: 'ssn', authScopes: { permission: 'patient:ssn:reveal' } }),
 *     }),
 *   });
 *   builder.mutationField('updatePatient', (t) => t.field({ ..., audit: { action: 'update', resourceType: 'Patient', patientId: (args) => args.id } }));
 *
 * Every resolution of a `phi` field adds (patient, resource, field, action,
 * outcome) to the request's audit trail; the root field's `audit` marker
 * names the action (PHI fields below it inherit it; default `read`) and
 * records writes, exports, reveals and break-glass themselves. A field that
 * is refused (FORBIDDEN / UNAUTHENTICATED) is recorded as denied. Nothing
 * here writes to the database: the audit Apollo plugin writes the trail
 * before the response is sent. Resolvers never call audit code.
 */
import SchemaBuilder, {
  BasePlugin,
  PothosSchemaError,
  type FieldNullability,
  type InputFieldMap,
  type InputShapeFromFields,
  type PothosOutputFieldConfig,
  type PothosOutputFieldType,
  type SchemaTypes,
  type ShapeFromTypeParam,
  type TypeParam,
} from '@pothos/core';
import type { GraphQLFieldResolver, GraphQLResolveInfo } from 'graphql';
import { auditRequestOf, type AuditRequest } from './request.js';
import { PHI_ACTIONS, type AuditDetail, type PhiAction, type PhiCategory, type PurposeOfUse } from './types.js';

type Ids = string | readonly string[] | null | undefined;

/** How to find the patient (and resource) behind an object; set once on the type. */
export interface PhiResourceOptions<Parent> {
  patientId: (parent: Parent) => Ids;
  /** defaults to the GraphQL type name */
  resourceType?: string;
  /** defaults to parent.id */
  resourceId?: (parent: Parent) => string | null | undefined;
}

/** A PHI field: its category, and (unless the type has `phiResource`) how to find the patient. */
export type PhiFieldOption<Parent> =
  | PhiCategory
  | {
      category: PhiCategory;
      patientId?: (parent: Parent) => Ids;
      resourceType?: string;
      resourceId?: (parent: Parent) => string | null | undefined;
    };

/** Marks a Query/Mutation field's action on PHI (and what it is about). */
export interface AuditFieldOption<Args, Result> {
  action: PhiAction;
  resourceType: string;
  /** `audit` for reads of the audit log itself (reports, exports) */
  eventType?: 'phi' | 'audit';
  patientId?: (args: Args, result: Result | undefined) => Ids;
  resourceId?: (args: Args, result: Result | undefined) => string | null | undefined;
  /** the field's own value is PHI of this category (e.g. revealSsn returns the SSN) */
  category?: PhiCategory;
  /** names (not values) of the inputs the operation changes or filters by; default: keys of args.input, else of args */
  fields?: (args: Args) => readonly string[];
  /** purpose of use named by an argument (overrides the header and the role default) */
  purposeOfUse?: (args: Args) => PurposeOfUse | null | undefined;
  /** record successful calls too (default: every action but `read`, and reads of a field with a `category`) */
  logSuccess?: boolean;
  /** ids and codes only */
  detail?: (args: Args, result: Result | undefined) => AuditDetail;
}

/** Builder options of the plugin. */
export interface PhiAuditOptions {
  /**
   * The PHI categories fields may be marked with: the enabled modules' manifest `phiCategories` (by category, the
   * modules declaring it). A marker naming any other category stops the schema build.
   */
  categories: ReadonlyMap<string, readonly string[]>;
}

declare global {
  export namespace PothosSchemaTypes {
    interface Plugins<Types extends SchemaTypes> {
      phiAudit: PhiAuditPlugin<Types>;
    }
    interface SchemaBuilderOptions<Types extends SchemaTypes> {
      /** the declared PHI categories (none given: no field may be marked phi) */
      phiAudit?: PhiAuditOptions;
    }
    interface ObjectTypeOptions<Types extends SchemaTypes, Shape> {
      /** how to find the patient behind an object of this type (for its `phi` fields) */
      phiResource?: PhiResourceOptions<Shape>;
    }
    interface ObjectFieldOptions<
      Types extends SchemaTypes,
      ParentShape,
      Type extends TypeParam<Types>,
      Nullable extends FieldNullability<Type>,
      Args extends InputFieldMap,
      ResolveReturnShape,
    > {
      /** this field carries PHI: every resolution is audited */
      phi?: PhiFieldOption<ParentShape>;
    }
    interface InterfaceFieldOptions<
      Types extends SchemaTypes,
      ParentShape,
      Type extends TypeParam<Types>,
      Nullable extends FieldNullability<Type>,
      Args extends InputFieldMap,
      ResolveReturnShape,
    > {
      phi?: PhiFieldOption<ParentShape>;
    }
    interface QueryFieldOptions<
      Types extends SchemaTypes,
      Type extends TypeParam<Types>,
      Nullable extends FieldNullability<Type>,
      Args extends InputFieldMap,
      ResolveReturnShape,
    > {
      /** the field's action on PHI (audited automatically) */
      audit?: AuditFieldOption<InputShapeFromFields<Args>, ShapeFromTypeParam<Types, Type, Nullable>>;
    }
    interface MutationFieldOptions<
      Types extends SchemaTypes,
      Type extends TypeParam<Types>,
      Nullable extends FieldNullability<Type>,
      Args extends InputFieldMap,
      ResolveReturnShape,
    > {
      audit?: AuditFieldOption<InputShapeFromFields<Args>, ShapeFromTypeParam<Types, Type, Nullable>>;
    }
  }
}

const DENIAL_CODES = new Set(['FORBIDDEN', 'UNAUTHENTICATED', 'FEATURE_NOT_ENTITLED']);

/** The error code when `e` is an authorization refusal, else undefined. */
export function denialCode(e: unknown): string | undefined {
  let err = e as { extensions?: { code?: unknown }; originalError?: unknown; name?: string } | undefined;
  for (let i = 0; err && i < 3; i++) {
    const code = err.extensions?.code;
    if (typeof code === 'string' && DENIAL_CODES.has(code)) return code;
    if (err.name === 'ForbiddenError') return 'FORBIDDEN';
    err = err.originalError as typeof err;
  }
  return undefined;
}

function toIds(v: Ids): string[] {
  if (v === null || v === undefined) return [];
  return typeof v === 'string' ? [v] : [...v];
}

function rootKey(info: GraphQLResolveInfo): string {
  let p = info.path;
  while (p.prev) p = p.prev;
  return String(p.key);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return !!v && typeof (v as { then?: unknown }).then === 'function';
}

const NON_FIELD_ARGS = new Set(['id', 'ids', 'patientId', 'patientIds', 'purposeOfUse', 'first', 'after', 'last', 'before']);

function defaultInputFields(args: Record<string, unknown>, resourceType: string): string[] {
  const input = args.input;
  const source = input && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : args;
  return Object.keys(source)
    .filter((k) => !NON_FIELD_ARGS.has(k) && source[k] !== undefined)
    .map((k) => `${resourceType}.${k}`);
}

/** Best-effort patient ids from conventional argument names (for denials of unmarked root fields). */
function conventionalPatientIds(args: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of ['patientId', 'patientIds']) {
    const v = args[k];
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) out.push(...v.filter((x): x is string => typeof x === 'string'));
  }
  return out;
}

type AnyResolver = GraphQLFieldResolver<unknown, object, Record<string, unknown>>;

export class PhiAuditPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapResolve(resolver: GraphQLFieldResolver<unknown, Types['Context'], object>, fieldConfig: PothosOutputFieldConfig<Types>) {
    const options = fieldConfig.pothosOptions as { phi?: PhiFieldOption<unknown>; audit?: AuditFieldOption<Record<string, unknown>, unknown> };
    const parent = this.buildCache.getTypeConfig(fieldConfig.parentType);
    const isRoot = parent.kind === 'Query' || parent.kind === 'Mutation' || parent.kind === 'Subscription';
    const coordinate = `${fieldConfig.parentType}.${fieldConfig.name}`;
    if (isRoot) {
      if (options.phi) throw new PothosSchemaError(`${coordinate}: use \`audit\` (not \`phi\`) on root fields`);
      if (options.audit) return this.wrapRoot(resolver as AnyResolver, options.audit, coordinate) as typeof resolver;
      const resourceType = this.phiResourceTypeOf(fieldConfig.type);
      return resourceType ? (this.wrapDenials(resolver as AnyResolver, resourceType) as typeof resolver) : resolver;
    }
    if (options.audit) throw new PothosSchemaError(`${coordinate}: \`audit\` belongs on Query/Mutation fields; mark object fields with \`phi\``);
    if (!options.phi) return resolver;
    return this.wrapPhi(resolver as AnyResolver, options.phi, parent.pothosOptions as { phiResource?: PhiResourceOptions<unknown> }, fieldConfig.parentType, coordinate) as typeof resolver;
  }

  /** A PHI marker must name a category an enabled module declares (manifest `phiCategories`). */
  private assertCategory(coordinate: string, category: unknown): void {
    const declared = (this.builder.options as { phiAudit?: PhiAuditOptions }).phiAudit?.categories ?? new Map<string, readonly string[]>();
    if (typeof category === 'string' && declared.has(category)) return;
    const known = [...declared.keys()].sort();
    throw new PothosSchemaError(
      `${coordinate} is marked with PHI category ${JSON.stringify(category)}, which no enabled module declares: ` +
        `add it to the phiCategories of the module's manifest (declared: ${known.length ? known.join(', ') : 'none'})`,
    );
  }

  /** The resource type of a root field's (list of) object type marked with phiResource. */
  private phiResourceTypeOf(type: PothosOutputFieldType<Types>): string | undefined {
    const named = type.kind === 'List' ? type.type : type;
    if (named.kind !== 'Object' && named.kind !== 'Interface') return undefined;
    try {
      const config = this.buildCache.getTypeConfig(named.ref);
      const res = (config.pothosOptions as { phiResource?: PhiResourceOptions<unknown> }).phiResource;
      return res ? (res.resourceType ?? config.name) : undefined;
    } catch {
      return undefined;
    }
  }

  private wrapPhi(
    resolver: AnyResolver,
    phi: PhiFieldOption<unknown>,
    typeOptions: { phiResource?: PhiResourceOptions<unknown> },
    typeName: string,
    coordinate: string,
  ): AnyResolver {
    const field = typeof phi === 'string' ? { category: phi } : phi;
    this.assertCategory(coordinate, field.category);
    const resource = typeOptions.phiResource;
    const patientIdOf = field.patientId ?? resource?.patientId;
    if (!patientIdOf) {
      throw new PothosSchemaError(`${coordinate} is marked phi but neither the field nor type ${typeName} (phiResource) says how to find the patient`);
    }
    const resourceType = field.resourceType ?? resource?.resourceType ?? typeName;
    const resourceIdOf =
      field.resourceId ??
      resource?.resourceId ??
      ((p: unknown) => {
        const id = (p as { id?: unknown } | null)?.id;
        return typeof id === 'string' || typeof id === 'number' ? String(id) : null;
      });
    const categories = [field.category];
    const fields = [coordinate];

    // per resolution (a list of 100 patients resolves each PHI field 100 times): no closure is made per call
    const recordAccess = (audit: AuditRequest, parentValue: unknown, info: GraphQLResolveInfo, outcome: 'allowed' | 'denied', detail?: AuditDetail) => {
      const marker = audit.rootActions.get(rootKey(info));
      audit.record({
        patientIds: toIds(patientIdOf(parentValue)),
        resourceType,
        resourceId: resourceIdOf(parentValue) ?? null,
        fields,
        categories,
        action: marker?.action ?? 'read',
        outcome,
        purposeOfUse: marker?.purposeOfUse,
        detail,
      });
    };
    const onError = (audit: AuditRequest, parentValue: unknown, info: GraphQLResolveInfo, e: unknown) => {
      const code = denialCode(e);
      if (code) recordAccess(audit, parentValue, info, 'denied', { reason: code });
      throw e;
    };

    return (parentValue, args, ctx, info) => {
      const audit = auditRequestOf(ctx); // no trail: fail closed before resolving PHI
      let result: unknown;
      try {
        result = resolver(parentValue, args, ctx, info);
      } catch (e) {
        return onError(audit, parentValue, info, e);
      }
      if (isThenable(result)) {
        return Promise.resolve(result).then(
          (v) => {
            recordAccess(audit, parentValue, info, 'allowed');
            return v;
          },
          (e) => onError(audit, parentValue, info, e),
        );
      }
      recordAccess(audit, parentValue, info, 'allowed');
      return result;
    };
  }

  private wrapRoot(resolver: AnyResolver, marker: AuditFieldOption<Record<string, unknown>, unknown>, coordinate: string): AnyResolver {
    if (!(PHI_ACTIONS as readonly string[]).includes(marker.action)) throw new PothosSchemaError(`${coordinate}: unknown audit action "${marker.action}"`);
    if (marker.category !== undefined) this.assertCategory(coordinate, marker.category);
    const logSuccess = marker.logSuccess ?? (marker.action !== 'read' || !!marker.category);
    return (root, args, ctx, info) => {
      const audit = auditRequestOf(ctx);
      const purposeOfUse = marker.purposeOfUse?.(args) ?? undefined;
      audit.rootActions.set(rootKey(info), { action: marker.action, purposeOfUse });
      const record = (outcome: 'allowed' | 'denied', result: unknown, detail?: AuditDetail) => {
        const inputs = marker.fields ? marker.fields(args).map((f) => (f.includes('.') ? f : `${marker.resourceType}.${f}`)) : defaultInputFields(args, marker.resourceType);
        audit.record({
          eventType: marker.eventType ?? 'phi',
          patientIds: toIds(marker.patientId?.(args, result)),
          resourceType: marker.resourceType,
          resourceId: marker.resourceId?.(args, result) ?? null,
          fields: marker.category ? [coordinate, ...inputs] : inputs,
          categories: marker.category ? [marker.category] : [],
          action: marker.action,
          outcome,
          purposeOfUse,
          detail: { ...marker.detail?.(args, result), ...detail },
        });
      };
      const onError = (e: unknown) => {
        const code = denialCode(e);
        if (code) record('denied', undefined, { reason: code });
        throw e;
      };
      let result: unknown;
      try {
        result = resolver(root, args, ctx, info);
      } catch (e) {
        return onError(e);
      }
      if (isThenable(result)) {
        return Promise.resolve(result).then((v) => {
          if (logSuccess) record('allowed', v);
          return v;
        }, onError);
      }
      if (logSuccess) record('allowed', result);
      return result;
    };
  }

  /** Unmarked root field returning a PHI resource: record refusals (patient from conventional argument names). */
  private wrapDenials(resolver: AnyResolver, resourceType: string): AnyResolver {
    return (root, args, ctx, info) => {
      const onError = (e: unknown) => {
        const code = denialCode(e);
        if (code) {
          auditRequestOf(ctx).record({
            patientIds: conventionalPatientIds(args),
            resourceType,
            resourceId: null,
            fields: [],
            action: 'read',
            outcome: 'denied',
            detail: { reason: code, field: `${info.parentType.name}.${info.fieldName}` },
          });
        }
        throw e;
      };
      let result: unknown;
      try {
        result = resolver(root, args, ctx, info);
      } catch (e) {
        return onError(e);
      }
      return isThenable(result) ? Promise.resolve(result).then(undefined, onError) : result;
    };
  }
}

const pluginName = 'phiAudit';
SchemaBuilder.registerPlugin(pluginName, PhiAuditPlugin);
export default pluginName;
