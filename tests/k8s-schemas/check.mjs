// Checks Prometheus Operator resources against @kubernetes-models/prometheus-operator, the
// Operator's API published on npm, in its two forms:
//  - its JSON Schema validators (types, required fields, enums, patterns, minimums);
//  - its TypeScript types, whose excess-property check refuses unknown fields (as the API server
//    does with kubectl's strict field validation), which the validators let through.
// Input: a JSON array of resources on stdin. Output: one line per problem; exit status 1 if any.
// Used by tests/integration/test_kubernetes.py; scripts/test installs the packages (npm ci here).
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const resources = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
const source = [];
for (const [i, resource] of resources.entries()) {
  const where = `${resource.kind}/${resource.metadata?.name}`;
  const [group, version] = resource.apiVersion.split("/");
  const module = `@kubernetes-models/prometheus-operator/${group}/${version}/${resource.kind}`;
  const { [resource.kind]: Model } = await import(module);
  try {
    new Model(resource).validate();
  } catch (error) {
    problems.push(`${where}: ${error.message}`);
  }
  source.push(`import type { I${resource.kind} as T${i} } from "${module}";`);
  source.push(`export const r${i}: T${i} = ${JSON.stringify(resource)};`);
}

// The typed module is compiled in memory, as if it lay next to this script (to find node_modules).
const file = path.join(path.dirname(fileURLToPath(import.meta.url)), "resources.ts");
const options = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
};
const host = ts.createCompilerHost(options);
const { getSourceFile, fileExists, readFile } = host;
const text = source.join("\n");
host.getSourceFile = (name, ...rest) =>
  name === file ? ts.createSourceFile(name, text, ts.ScriptTarget.ES2022) : getSourceFile(name, ...rest);
host.fileExists = (name) => name === file || fileExists(name);
host.readFile = (name) => (name === file ? text : readFile(name));
for (const diagnostic of ts.getPreEmitDiagnostics(ts.createProgram([file], options, host))) {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
  if (diagnostic.file?.fileName === file) {
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const resource = resources[Math.floor(line / 2)];
    problems.push(`${resource.kind}/${resource.metadata?.name}: ${message}`);
  } else {
    problems.push(message);
  }
}
for (const problem of problems) console.log(problem);
process.exit(problems.length ? 1 : 0);
