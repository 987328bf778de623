// Validate glTF / glb / b3dm / i3dm / pnts / cmpt content with the Khronos glTF validator.
// Usage: node tools/validate-gltf.mjs FILE...   Prints one JSON line per file:
// {"file": ..., "errors": n, "warnings": n, "infos": n, "messages": [...first 20 issues]}
// b3dm/i3dm headers are stripped to validate their embedded glb; exit 1 when any file has errors.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import validator from "gltf-validator";

function embeddedGlb(bytes) {
  const magic = bytes.subarray(0, 4).toString("latin1");
  if (magic === "b3dm" || magic === "i3dm") {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const header = magic === "b3dm" ? 28 : 32;
    const ftj = dv.getUint32(12, true), ftb = dv.getUint32(16, true);
    const btj = dv.getUint32(20, true), btb = dv.getUint32(24, true);
    return { glb: bytes.subarray(header + ftj + ftb + btj + btb), container: magic };
  }
  return { glb: bytes, container: null };
}

let failed = false;
for (const file of process.argv.slice(2)) {
  const raw = readFileSync(file);
  const { glb, container } = embeddedGlb(raw);
  const report = await validator.validateBytes(new Uint8Array(glb), {
    uri: basename(file),
    maxIssues: 200,
    externalResourceFunction: () => Promise.reject(new Error("no external resources")),
  });
  const issues = report.issues;
  const messages = issues.messages.slice(0, 20).map((m) => ({
    code: m.code, severity: m.severity, message: m.message, pointer: m.pointer,
  }));
  if (issues.numErrors > 0) failed = true;
  console.log(JSON.stringify({
    file, container, errors: issues.numErrors, warnings: issues.numWarnings,
    infos: issues.numInfos, hints: issues.numHints, messages,
    extensionsUsed: report.info ? report.info.extensionsUsed || [] : [],
  }));
}
process.exit(failed ? 1 : 0);
