#!/usr/bin/env node
// Print the id the official parser (@asyncapi/parser) gives every schema of AsyncAPI
// documents: the id Modelina names its models after and the html/react renderers show
// (`<anonymous-schema-N>` when the document gives none).
//
//   node scripts/schema_ids.mjs FILE [FILE ...]
//
// Prints one JSON object: {"files": [{"file", "parsed", "schemas": [{"id", "title", "pointer"}]}]}.
// Exit status: 0, or 2 for bad usage or an unreadable file.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { Parser } = require('@asyncapi/parser');

async function ids(parser, file) {
  const source = path.resolve(file);
  const text = await readFile(source, 'utf8');
  const { document } = await parser.parse(text, { source });
  if (document === undefined) return { file, parsed: false, schemas: [] };
  const schemas = document.allSchemas().all().map((s) => ({ id: s.id() ?? null, title: s.title() ?? null, pointer: s.meta().pointer ?? null }));
  return { file, parsed: true, schemas };
}

async function main(files) {
  if (files.length === 0) {
    console.error('usage: node scripts/schema_ids.mjs FILE [FILE ...]');
    return 2;
  }
  const parser = new Parser();
  const results = [];
  for (const file of files) {
    try {
      results.push(await ids(parser, file));
    } catch (err) {
      console.error(`${file}: cannot read: ${err.message}`);
      return 2;
    }
  }
  console.log(JSON.stringify({ files: results }, null, 2));
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
