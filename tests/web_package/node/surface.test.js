// The declarations name exactly what the modules export: no export, method or hook result
// without a type, and no type for something that is gone. (tsc checks the types' use.)
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import * as React from 'react';
import * as client from 'logs-gateway-client';
import * as bindings from 'logs-gateway-client/react';
import ts from 'typescript';

const require = createRequire(import.meta.url);

const files = ['logs-gateway-client', 'logs-gateway-client/react'].map((specifier) =>
  require.resolve(specifier).replace(/\.js$/, '.d.ts'),
);
const program = ts.createProgram(files, { strict: true, types: [], skipLibCheck: true });
const checker = program.getTypeChecker();

/** The declared exports of `specifier` and the members of the declared `names`. */
function declared(specifier, ...names) {
  const file = require.resolve(specifier).replace(/\.js$/, '.d.ts');
  const module = checker.getSymbolAtLocation(program.getSourceFile(file));
  const exports = checker.getExportsOfModule(module);
  const values = exports.filter((s) => s.flags & ts.SymbolFlags.Value).map((s) => s.name);
  const members = Object.fromEntries(
    names.map((name) => {
      const symbol = exports.find((s) => s.name === name);
      const type = checker.getDeclaredTypeOfSymbol(symbol);
      return [name, checker.getPropertiesOfType(type).map((p) => p.name).sort()];
    }),
  );
  return { values: values.sort(), members };
}

const methods = (proto) =>
  Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor').sort();

test('logs-gateway-client: declared exports and LogsClient members match the module', () => {
  const types = declared('logs-gateway-client', 'LogsClient');
  assert.deepEqual(types.values, Object.keys(client).sort());
  assert.deepEqual(types.members.LogsClient, methods(client.LogsClient.prototype));
});

test('logs-gateway-client/react: declared exports and hook results match the module', () => {
  const types = declared('logs-gateway-client/react', 'LogsReact');
  assert.deepEqual(types.values, Object.keys(bindings).sort());
  assert.deepEqual(types.members.LogsReact, Object.keys(bindings.createLogsReact(React)).sort());
});
