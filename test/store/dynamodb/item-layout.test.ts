import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  pynamodbCheckIn,
  pythonJsonDumps,
  pythonJsonLoads,
  storedCheckInAsServed,
  storedCheckInSpellings,
} from '../../../src/store/dynamodb/item-layout.js';

/**
 * The original's item layout at the byte level. Expected texts are what Python 3 and pynamodb
 * 3.2.1 produce (`json.dumps(value)`; `strftime('%Y-%m-%dT%H:%M:%S.%f%z')` of a UTC datetime).
 */
describe("the original's item layout", () => {
  test('tags are written as Python json.dumps writes them: ", " and ": ", non-ASCII escaped', () => {
    // python3 -c 'import json; print(json.dumps({"az": "é", "n": [1, {"a": None}], "s": "a\"b\n\U0001F600"}))'
    assert.equal(
      pythonJsonDumps({ az: 'é', n: [1, { a: null }], s: 'a"b\n\u{1F600}' }),
      '{"az": "\\u00e9", "n": [1, {"a": null}], "s": "a\\"b\\n\\ud83d\\ude00"}',
    );
    assert.equal(
      pythonJsonDumps({ az: 'us-east-1a', canary: false, load_balancing_weight: 30 }),
      '{"az": "us-east-1a", "canary": false, "load_balancing_weight": 30}',
    );
  });

  test('tags are read as json.loads(strict=False) reads them: raw control characters inside strings too', () => {
    assert.deepEqual(pythonJsonLoads('{"a": "x\ny", "b":\t1}'), { a: 'x\ny', b: 1 });
    assert.throws(() => pythonJsonLoads('{"a": }'));
  });

  test("the check-in is written in pynamodb's exact format and read back in the v1 form", () => {
    assert.equal(pynamodbCheckIn('2026-12-07 14:57:45.274456'), '2026-12-07T14:57:45.274456+0000');
    assert.equal(storedCheckInAsServed('2026-12-07T14:57:45.274456+0000'), '2026-12-07 14:57:45.274456');
  });

  test("the forms pynamodb 3's dateutil fallback reads are read as the same UTC instant", () => {
    assert.equal(storedCheckInAsServed('2026-12-07T14:57:45.274456+00:00'), '2026-12-07 14:57:45.274456');
    assert.equal(storedCheckInAsServed('2026-12-07T14:57:45.274456Z'), '2026-12-07 14:57:45.274456');
    assert.equal(storedCheckInAsServed('2026-12-07T14:57:45Z'), '2026-12-07 14:57:45.000000');
    assert.equal(storedCheckInAsServed('2026-12-07 14:57:45.5'), '2026-12-07 14:57:45.500000');
    assert.equal(storedCheckInAsServed('2026-12-07T00:57:45.274456+02:00'), '2026-12-06 22:57:45.274456');
    assert.equal(storedCheckInAsServed('2026-12-07T23:57:45.274456-0130'), '2026-12-08 01:27:45.274456');
    assert.equal(storedCheckInAsServed('yesterday'), 'yesterday', 'left for the record check to refuse');
  });

  test('an expired host is deleted on condition of its check-in in each spelling a writer stores', () => {
    assert.deepEqual(storedCheckInSpellings('2026-12-07 14:57:45.274456'), [
      '2026-12-07 14:57:45.274456',
      '2026-12-07T14:57:45.274456+0000',
      '2026-12-07T14:57:45.274456+00:00',
      '2026-12-07T14:57:45.274456Z',
    ]);
  });
});
