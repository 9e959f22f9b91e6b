// Validates custom resources offline against the CRD schemas published as
// @kubernetes-models packages (Flux, cert-manager, external-secrets, Gateway
// API, Prometheus Operator).
//
//   node validate-crds.mjs OBJECTS.json
//
// OBJECTS.json holds a JSON array of objects. Each is checked twice:
//  1. the package's JSON-schema validator (types, required fields, enums,
//     patterns) — what the API server's OpenAPI validation checks;
//  2. a strict pass that type-checks each object as a TypeScript literal of
//     the kind's interface, so a field the CRD does not define fails as well
//     (what `kubectl apply` with server-side strict field validation rejects;
//     the CRD validators alone let unknown fields through).
// Prints one line per problem and exits 1 if there is any; an object whose
// group/version/kind has no schema here is a problem, not a skip.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const PACKAGES = [
  [/\.toolkit\.fluxcd\.io$/, "@kubernetes-models/flux-cd"],
  [/(^|\.)cert-manager\.io$/, "@kubernetes-models/cert-manager"],
  [/(^|\.)external-secrets\.io$/, "@kubernetes-models/external-secrets"],
  [/^gateway\.networking\.k8s\.io$/, "@kubernetes-models/gateway-api"],
  [/^monitoring\.coreos\.com$/, "@kubernetes-models/prometheus-operator"],
];

function modulePath(apiVersion) {
  const [group, version] = apiVersion.split("/");
  if (!version) return null;
  const hit = PACKAGES.find(([re]) => re.test(group));
  return hit ? `${hit[1]}/${group}/${version}` : null;
}

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate-crds.mjs OBJECTS.json");
  process.exit(2);
}
const objects = JSON.parse(fs.readFileSync(file, "utf8"));
const problems = [];
const label = (o) => `${o.kind} ${o.metadata?.namespace ? o.metadata.namespace + "/" : ""}${o.metadata?.name} (${o.apiVersion})`;

const typed = []; // [index, module, kind] for the strict pass
for (const [i, obj] of objects.entries()) {
  const mod = modulePath(obj.apiVersion ?? "");
  if (!mod) {
    problems.push(`${label(obj)}: no CRD schema package for this API group`);
    continue;
  }
  let exports;
  try {
    exports = await import(mod);
  } catch (e) {
    problems.push(`${label(obj)}: version not in ${mod.split("/").slice(0, 2).join("/")} (${e.code ?? e.message})`);
    continue;
  }
  const Model = exports[obj.kind];
  if (typeof Model !== "function") {
    problems.push(`${label(obj)}: kind ${obj.kind} is not served at ${obj.apiVersion}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${label(obj)}: ${e.message}`);
  }
  typed.push([i, mod, obj.kind]);
}

// The strict pass: one literal per object, excess-property checked by tsc.
if (typed.length > 0) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "labscope-crds-"));
  const src = path.join(dir, "objects.ts");
  const lines = [];
  const starts = [];
  for (const [n, [i, mod, kind]] of typed.entries()) {
    lines.push(`import type { I${kind} as T${n} } from ${JSON.stringify(mod)};`);
  }
  let line = lines.length; // 0-based line where the next literal starts
  for (const [n, [i]] of typed.entries()) {
    const literal = `export const o${n}: T${n} = ${JSON.stringify(objects[i], null, 1)};`;
    starts.push([line, i]);
    lines.push(literal);
    line += literal.split("\n").length;
  }
  fs.writeFileSync(src, lines.join("\n") + "\n");
  const program = ts.createProgram([src], {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    typeRoots: [],
    types: [],
    baseUrl: here,
    paths: { "*": [path.join(here, "node_modules", "*")] },
  });
  const diags = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === src || !d.file);
  for (const d of diags) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
    let who = "objects";
    if (d.file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const owner = starts.filter(([l]) => l <= line).pop();
      if (owner) who = label(objects[owner[1]]);
    }
    problems.push(`${who}: ${msg}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

for (const p of problems) console.log(p);
console.error(`validate-crds: ${objects.length} objects, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
