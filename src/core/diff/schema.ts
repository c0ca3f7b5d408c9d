// The JSON Schema of `nix-plan diff --json` (published as docs/diff.schema.json) and the strict
// validator that reads a diff document back with it, so the documented schema is the one checked.
// The validator knows the subset of JSON Schema (2020-12) the schema uses: type, properties,
// required, additionalProperties: false, items, enum, const, $ref to $defs, minimum.
import { NixPlanError } from '../errors.js';
import { PLAN_DIFF_SCHEMA, type PlanDiff } from './plan-diff.js';

type Schema = Readonly<Record<string, unknown>>;

const str = { type: 'string' } as const;
const int = { type: 'integer', minimum: 0 } as const;
const bool = { type: 'boolean' } as const;
const strings = { type: 'array', items: str } as const;
const ref = (name: string): Schema => ({ $ref: `#/$defs/${name}` });
const arrayOf = (items: Schema): Schema => ({ type: 'array', items });

/** An object with exactly these members (`optional` ones may be missing). */
function object(required: Record<string, Schema>, optional: Record<string, Schema> = {}): Schema {
  return {
    type: 'object',
    properties: { ...required, ...optional },
    required: Object.keys(required),
    additionalProperties: false,
  };
}

const KINDS = ['upgrade', 'downgrade', 'changed', 'added', 'removed', 'rebuilt'];
const OUTPUT_KINDS = ['fixed', 'deferred', 'floating', 'impure', 'input-addressed'];
const counts = object(Object.fromEntries(KINDS.map((k) => [k, int])));
const derivationCounts = object({ old: int, new: int, added: int, removed: int });

/** The schema of a diff document (JSON Schema 2020-12). */
export const PLAN_DIFF_JSON_SCHEMA: Schema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'nix-plan diff --json',
  ...object(
    {
      schema: { const: PLAN_DIFF_SCHEMA },
      old: ref('side'),
      new: ref('side'),
      realm: object({ old: str, new: str, relocated: bool }),
      identical: bool,
      fields: arrayOf(object({ field: str }, { old: str, new: str })),
      total: ref('closureDiff'),
      roots: arrayOf(ref('rootDiff')),
    },
    { drv: arrayOf(ref('drvDiff')) },
  ),
  $defs: {
    side: object(
      {
        kind: { enum: ['bundle', 'drv', 'profile'] },
        source: str,
        storeDir: str,
        derivations: int,
        systems: strings,
        roots: arrayOf(object({ label: str, drvPath: str })),
      },
      {
        bundle: object(
          {
            digest: str,
            checksum: str,
            formatVersion: int,
            tool: str,
            nixVersion: str,
            include: str,
            signatures: arrayOf(
              object({ key: str, status: { enum: ['verified', 'not-checked', 'untrusted-key'] } }),
            ),
          },
          {
            createdAt: str,
            provenance: { type: 'object', additionalProperties: str },
            relocatedFrom: str,
            promotions: int,
            noCheckSigs: { const: true },
            unproven: int,
          },
        ),
      },
    ),
    packageSide: object({
      versions: strings,
      drvs: strings,
      outputs: strings,
      outputKinds: arrayOf({ enum: OUTPUT_KINDS }),
    }),
    closureDiff: object({
      derivations: derivationCounts,
      counts,
      packages: arrayOf(
        object({ name: str, change: { enum: KINDS }, old: ref('packageSide'), new: ref('packageSide') }),
      ),
    }),
    rootDiff: object(
      { label: str, status: { enum: ['unchanged', 'changed', 'added', 'removed'] } },
      {
        old: str,
        new: str,
        counts,
        derivations: derivationCounts,
        packages: object({ versions: strings, added: strings, removed: strings, rebuilt: strings }),
      },
    ),
    edit: object({ op: { enum: ['same', 'old', 'new'] }, items: strings }),
    textChange: object({ old: str, new: str }),
    output: object({ name: str, kind: { enum: OUTPUT_KINDS }, hashAlgo: str, hash: str }),
    inputRef: object({ path: str, outputs: strings }),
    drvDiff: object(
      {
        old: str,
        new: str,
        outputs: object({
          removed: arrayOf(ref('output')),
          added: arrayOf(ref('output')),
          changed: arrayOf(object({ name: str, old: ref('output'), new: ref('output') })),
        }),
        env: object({
          removed: arrayOf(object({ key: str, value: str })),
          added: arrayOf(object({ key: str, value: str })),
          changed: arrayOf(object({ key: str, old: str, new: str }, { lines: arrayOf(ref('edit')) })),
          pathsOnly: strings,
        }),
        inputSrcs: object({
          removed: strings,
          added: strings,
          changed: arrayOf(object({ name: str, old: str, new: str }, { lines: arrayOf(ref('edit')) })),
        }),
        inputDrvs: object({
          removed: arrayOf(ref('inputRef')),
          added: arrayOf(ref('inputRef')),
          changed: arrayOf(
            object(
              { name: str, old: ref('inputRef'), new: ref('inputRef') },
              { diff: ref('drvDiff'), note: { enum: ['already-compared', 'limit', 'unavailable'] } },
            ),
          ),
        }),
      },
      { system: ref('textChange'), builder: ref('textChange'), args: arrayOf(ref('edit')) },
    ),
  },
};

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isSafeInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** Checks `value` against `schema` (the subset above); throws naming the first member that fails. */
export function validateJson(value: unknown, schema: Schema, root: Schema = schema, at = '$'): void {
  const fail = (detail: string): never => {
    throw new NixPlanError('malformed', `diff document: ${at} ${detail}`);
  };
  const target = schema['$ref'];
  if (typeof target === 'string') {
    const name = target.replace(/^#\/\$defs\//, '');
    const defs = root['$defs'] as Record<string, Schema>;
    const def = defs[name];
    if (def === undefined) fail(`refers to an unknown definition ${name}`);
    validateJson(value, def!, root, at);
    return;
  }
  if ('const' in schema && value !== schema['const']) fail(`must be ${JSON.stringify(schema['const'])}`);
  const choices = schema['enum'];
  if (Array.isArray(choices) && !choices.includes(value)) fail(`must be one of ${choices.join(', ')}`);
  const type = schema['type'];
  if (typeof type === 'string' && typeOf(value) !== type) fail(`must be of type ${type}`);
  const minimum = schema['minimum'];
  if (typeof minimum === 'number' && typeof value === 'number' && value < minimum)
    fail(`must be at least ${minimum}`);
  if (type === 'array') {
    const items = schema['items'] as Schema | undefined;
    if (items !== undefined)
      (value as unknown[]).forEach((x, i) => validateJson(x, items, root, `${at}[${i}]`));
  }
  if (type === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema['properties'] ?? {}) as Record<string, Schema>;
    for (const k of (schema['required'] ?? []) as string[]) if (!(k in obj)) fail(`lacks the member '${k}'`);
    const extra = schema['additionalProperties'];
    for (const [k, v] of Object.entries(obj)) {
      const p = props[k];
      if (p !== undefined) validateJson(v, p, root, `${at}.${k}`);
      else if (extra === false) fail(`has an unknown member '${k}'`);
      else if (typeof extra === 'object' && extra !== null)
        validateJson(v, extra as Schema, root, `${at}.${k}`);
    }
  }
}

/** Reads a diff document (parsed JSON) back, checking it against the schema. */
export function parsePlanDiff(value: unknown): PlanDiff {
  validateJson(value, PLAN_DIFF_JSON_SCHEMA);
  return value as PlanDiff;
}
