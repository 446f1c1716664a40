#!/usr/bin/env node
// Validate AsyncAPI documents with the official parser (@asyncapi/parser, pinned in
// package.json). The parser checks the document against the JSON Schema of its AsyncAPI
// version (@asyncapi/specs) and runs the spec's semantic rules (operation messages belong to
// their channel, channel parameters are declared, references resolve, ...).
//
//   node scripts/validate_asyncapi.mjs [--json] FILE [FILE ...]
//
// Prints one line per diagnostic (severity, rule, JSON path, message) and a summary per file;
// with --json, prints one JSON object instead: {"files": [{"file", "diagnostics": [...]}]}.
// Exit status: 0 when no file has an error (warnings and infos are reported, not fatal),
// 1 when some file has errors, 2 for bad usage or an unreadable file.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

async function validate(parser, file) {
  const source = path.resolve(file);
  const text = await readFile(source, 'utf8');
  const { document, diagnostics } = await parser.parse(text, { source });
  return {
    file,
    parsed: document !== undefined,
    diagnostics: diagnostics.map((d) => ({
      severity: SEVERITY[d.severity] ?? String(d.severity),
      code: String(d.code),
      path: d.path.map(String),
      message: d.message,
    })),
  };
}

async function main(argv) {
  const asJson = argv.includes('--json');
  const files = argv.filter((a) => a !== '--json');
  if (files.length === 0) {
    console.error('usage: node scripts/validate_asyncapi.mjs [--json] FILE [FILE ...]');
    return 2;
  }
  const parser = new Parser();
  const results = [];
  for (const file of files) {
    try {
      results.push(await validate(parser, file));
    } catch (err) {
      console.error(`${file}: cannot validate: ${err.message}`);
      return 2;
    }
  }
  let failed = false;
  for (const result of results) {
    const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
    if (errors > 0 || !result.parsed) failed = true;
    if (asJson) continue;
    for (const d of result.diagnostics) {
      console.log(`${result.file}: ${d.severity} ${d.code} at /${d.path.join('/')}: ${d.message}`);
    }
    const count = (s) => result.diagnostics.filter((d) => d.severity === s).length;
    console.log(
      `${result.file}: ${errors} error(s), ${count('warning')} warning(s), ` +
        `${count('info')} info(s), ${count('hint')} hint(s)`,
    );
  }
  if (asJson) console.log(JSON.stringify({ files: results }, null, 2));
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
