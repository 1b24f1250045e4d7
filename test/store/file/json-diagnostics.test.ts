import assert from 'node:assert/strict';
import { describe as suite, test } from 'node:test';
import {
  describe,
  foundAt,
  hasBom,
  lineOf,
  locateJsonError,
  parseJson,
} from '../../../src/store/file/json-diagnostics.js';

suite('locateJsonError', () => {
  test('valid JSON has no error', () => {
    assert.equal(locateJsonError('{"a": [1, "two", true, null, -3.5e2]}'), undefined);
  });

  test('a text cut short is named where it ends, with what would have closed it', () => {
    assert.deepEqual(locateJsonError('{"a": 1'), { index: 7, expected: "',' or '}'" });
  });

  test('each kind of mistake is named at its first byte', () => {
    assert.deepEqual(locateJsonError('[1, 2,]'), { index: 6, expected: 'a JSON value' });
    assert.deepEqual(locateJsonError('{"a" 1}'), { index: 5, expected: "':' after the property name" });
    assert.deepEqual(locateJsonError('{a: 1}'), { index: 1, expected: 'a property name in double quotes' });
    assert.deepEqual(locateJsonError('"ab\\x"'), { index: 3, expected: 'an escape sequence' });
    assert.deepEqual(locateJsonError('"a\u0001"'), { index: 2, expected: 'a character allowed in a string' });
    assert.deepEqual(locateJsonError('[1] 2'), { index: 4, expected: 'nothing more after the JSON value' });
    assert.deepEqual(locateJsonError(''), { index: 0, expected: 'a JSON value' });
  });

  test('nesting deeper than a thousand levels stops instead of overflowing the stack', () => {
    assert.deepEqual(locateJsonError('['.repeat(1002) + ']'.repeat(1002)), {
      index: 1001,
      expected: 'less deeply nested data',
    });
  });
});

suite('parseJson', () => {
  test('gives the value of valid JSON, and for anything else where it stops being JSON and what was expected', () => {
    assert.deepEqual(parseJson('{"a": [1]}'), { value: { a: [1] } });
    assert.deepEqual(parseJson('{"a": 1'), { index: 7, expected: "',' or '}'" });
  });
});

suite('what a message says was found', () => {
  test('describe names the kind, and short values in full', () => {
    assert.equal(describe(null), 'null');
    assert.equal(describe(undefined), 'nothing');
    assert.equal(describe([1, 2]), 'an array of 2');
    assert.equal(describe({ a: 1 }), 'an object');
    assert.equal(describe(42), 'number 42');
    assert.equal(describe('x'.repeat(50)), `string "${'x'.repeat(39)}…`);
  });

  test('foundAt quotes what stands there, calls a run of NULs by name, and says when the text ended', () => {
    assert.equal(foundAt('abcdefghijklmnopqrstu', 1, 'the end'), '"bcdefghijklmnopq"');
    assert.equal(foundAt('abc\0\0', 3, 'the end'), 'NUL bytes');
    assert.equal(foundAt('abc', 3, 'the end'), 'the end');
  });

  test('lineOf counts lines from 1', () => {
    assert.equal(lineOf('a\nb\nc', 0), 1);
    assert.equal(lineOf('a\nb\nc', 2), 2);
    assert.equal(lineOf('a\nb\nc', 4), 3);
  });

  test('hasBom sees the whole UTF-8 byte-order mark only', () => {
    assert.equal(hasBom(Buffer.from('\ufeff[]')), true);
    assert.equal(hasBom(Buffer.from('[]')), false);
    assert.equal(hasBom(Buffer.from([0xef, 0xbb])), false);
  });
});
