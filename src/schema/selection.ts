import { Kind, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/**
 * The field names a request selects at `path` below the field being resolved
 * (e.g. `['edges', 'node']` of a connection), through inline and named
 * fragments. Fields under @include/@skip count as selected (a superset: a
 * resolver that fetches by it fetches too much, never too little). Lets a
 * list resolver leave out columns no selected field reads.
 */
export function selectedFields(info: GraphQLResolveInfo, path: readonly string[]): Set<string> {
  let sets: SelectionSetNode[] = info.fieldNodes.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
  for (const step of path) {
    const next: SelectionSetNode[] = [];
    for (const set of sets) collect(info, set, (name, sub) => name === step && sub && next.push(sub));
    sets = next;
  }
  const names = new Set<string>();
  for (const set of sets) collect(info, set, (name) => names.add(name));
  return names;
}

function collect(info: GraphQLResolveInfo, set: SelectionSetNode, visit: (name: string, sub: SelectionSetNode | undefined) => unknown, seen = new Set<string>()): void {
  for (const s of set.selections) {
    if (s.kind === Kind.FIELD) visit(s.name.value, s.selectionSet);
    else if (s.kind === Kind.INLINE_FRAGMENT) collect(info, s.selectionSet, visit, seen);
    else if (!seen.has(s.name.value)) {
      seen.add(s.name.value);
      const fragment = info.fragments[s.name.value];
      if (fragment) collect(info, fragment.selectionSet, visit, seen);
    }
  }
}
