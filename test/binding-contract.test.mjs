// The addon and its TypeScript declaration agree: every name the addon
// exports (functions, classes and their prototype methods, constants and the
// fields of constant objects) is declared in src/native/binding.ts's
// `Binding` interface, and every declared name exists. Either side gaining or
// losing a name fails here. Also: the values TypeScript reads from the addon
// (native/core/frame.h, inbox.h) are the ones the package publishes.
import { existsSync, openSync, readFileSync, readSync, closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_LIMITS, MAX_DATA_BYTES, MAX_REGIONS_PER_MESSAGE, MESSAGE_WINDOW, addonSearchPaths } from '../dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const ts = require('typescript');

/** The addon the loader would pick: the first candidate that exists and is built for this OS. */
function loadAddon() {
  const magic = process.platform === 'win32' ? 'MZ' : '\x7fELF';
  for (const path of addonSearchPaths()) {
    if (!existsSync(path)) continue;
    const fd = openSync(path, 'r');
    const head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    if (head.toString('latin1').startsWith(magic)) return require(path);
  }
  throw new Error(`no addon built for ${process.platform} among ${addonSearchPaths().join(', ')}; run npm run build`);
}

const declaration = ts.createSourceFile('binding.ts', readFileSync(join(root, 'src', 'native', 'binding.ts'), 'utf8'), ts.ScriptTarget.Latest, true);
const interfaces = new Map();
for (const statement of declaration.statements) {
  if (ts.isInterfaceDeclaration(statement)) interfaces.set(statement.name.text, statement);
}

/**
 * Every name an interface declares, as paths: a member typed NativeClass<X>
 * becomes "name.prototype.<X's members>", one typed as another interface of
 * the file becomes "name.<its members>", anything else "name".
 */
function declaredNames(interfaceName, prefix = '') {
  const names = [];
  const node = interfaces.get(interfaceName);
  assert.ok(node, `src/native/binding.ts declares interface ${interfaceName}`);
  for (const member of node.members) {
    const name = `${prefix}${member.name.getText(declaration)}`;
    const type = member.type;
    if (type && ts.isTypeReferenceNode(type)) {
      const referenced = type.typeName.getText(declaration);
      if (referenced === 'NativeClass') {
        names.push(...declaredNames(type.typeArguments[0].getText(declaration), `${name}.prototype.`));
        continue;
      }
      if (referenced === 'Readonly' && ts.isTypeReferenceNode(type.typeArguments[0])) {
        names.push(...declaredNames(type.typeArguments[0].typeName.getText(declaration), `${name}.`));
        continue;
      }
      if (interfaces.has(referenced) && !member.questionToken && ts.isPropertySignature(member)) {
        names.push(...declaredNames(referenced, `${name}.`));
        continue;
      }
    }
    names.push(name);
  }
  return names;
}

/** The same paths, read off the loaded addon. */
function exportedNames(value, prefix = '') {
  const names = [];
  for (const key of Object.keys(value)) {
    const name = `${prefix}${key}`;
    const item = value[key];
    const methods = typeof item === 'function' && item.prototype ? Object.getOwnPropertyNames(item.prototype).filter((m) => m !== 'constructor') : [];
    if (methods.length > 0) names.push(...methods.map((m) => `${name}.prototype.${m}`));
    else if (item !== null && typeof item === 'object') names.push(...exportedNames(item, `${name}.`));
    else names.push(name);
  }
  return names;
}

/** `export const NAME = <number>` or `export const NAME = { ... }` in binding.ts. */
function declaredConstant(name) {
  for (const statement of declaration.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    for (const d of statement.declarationList.declarations) {
      if (d.name.getText(declaration) !== name) continue;
      let init = d.initializer;
      if (ts.isAsExpression(init)) init = init.expression;
      if (ts.isNumericLiteral(init)) return Number(init.text);
      return Object.fromEntries(init.properties.map((p) => [p.name.getText(declaration), Number(p.initializer.text)]));
    }
  }
  throw new Error(`src/native/binding.ts has no constant ${name}`);
}

const addon = loadAddon();
const Binding = suite('binding contract');

Binding('every name the addon exports is declared in src/native/binding.ts, and every declared name exists', () => {
  const declared = declaredNames('Binding').sort();
  const exported = exportedNames(addon).sort();
  const undeclared = exported.filter((n) => !declared.includes(n));
  const missing = declared.filter((n) => !exported.includes(n));
  assert.equal(undeclared, [], `exported by the addon but not declared in Binding: ${undeclared.join(', ')}`);
  assert.equal(missing, [], `declared in Binding but not exported by the addon: ${missing.join(', ')}`);
  // Not vacuous: the classes' methods and the constant objects' fields are in.
  for (const name of ['listen', 'NativeRegion.prototype.mapArrayBuffer', 'NativeConnection.prototype.write', 'protocol.messageWindow', 'protocol.frameTypes.nack', 'defaultLimits.fdReserve']) {
    assert.ok(exported.includes(name), name);
  }
});

Binding('the addon is the ABI version the TypeScript side expects', () => {
  assert.is(addon.abiVersion, declaredConstant('EXPECTED_ABI_VERSION'));
});

Binding('FrameType (literal types for write) has the addon\'s values', () => {
  const literal = declaredConstant('FrameType');
  const lowered = Object.fromEntries(Object.entries(literal).map(([k, v]) => [k.toLowerCase(), v]));
  assert.equal(lowered, { ...addon.protocol.frameTypes });
});

Binding('the published limits are the addon\'s', () => {
  assert.is(MESSAGE_WINDOW, addon.protocol.messageWindow);
  assert.is(MAX_DATA_BYTES, addon.protocol.maxDataBytes);
  assert.is(MAX_REGIONS_PER_MESSAGE, addon.protocol.maxRegionsPerMessage);
  const { acceptNamedRegions, ...limits } = addon.defaultLimits;
  for (const [key, value] of Object.entries(limits)) assert.is(DEFAULT_LIMITS[key], value, key);
  // An option, not a limit: off unless a receiver asks for it (connect/listen { acceptNamedRegions }).
  assert.is(acceptNamedRegions, false);
  assert.not.ok('acceptNamedRegions' in DEFAULT_LIMITS, 'DEFAULT_LIMITS holds limits only');
  // The values docs/PROTOCOL.md and SECURITY.md state.
  assert.equal(
    [MESSAGE_WINDOW, MAX_DATA_BYTES, MAX_REGIONS_PER_MESSAGE, addon.protocol.version, addon.protocol.maxFrameBytes, addon.protocol.maxRegionBytes],
    [256, 128 * 1024, 64, 1, 16 + 16 * 64 + 128 * 1024, 2 ** 47],
  );
  assert.equal({ ...limits }, { maxPendingDataBytes: 4 * 1024 * 1024, maxPendingHandles: 1024, maxPendingRegionBytes: 64 * 1024 ** 3, maxOwedControlFrames: 1024, fdReserve: 256 });
});

Binding.run();
