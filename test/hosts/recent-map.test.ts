import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RecentMap } from '../../src/hosts/recent-map.js';

describe('RecentMap', () => {
  test('never holds more than two generations, whatever is inserted', () => {
    const map = new RecentMap<string, number>(100);
    for (let index = 0; index < 10_000; index++) {
      map.set(`name-${index}`, index);
      assert.ok(map.size <= 200);
    }
    assert.equal(map.get('name-9999'), 9999);
    assert.equal(map.get('name-0'), undefined, 'the oldest are forgotten');
  });

  test('an entry used once per generation is never forgotten; set, delete and clear act on both generations', () => {
    const map = new RecentMap<string, string>(10);
    map.set('kept', 'v1');
    for (let index = 0; index < 1000; index++) {
      map.set(`stranger-${index}`, 'x');
      if (index % 9 === 0) assert.equal(map.get('kept'), 'v1');
    }
    assert.equal(map.get('kept'), 'v1');
    map.set('kept', 'v2');
    assert.equal(map.get('kept'), 'v2');
    for (let index = 0; index < 10; index++) map.set(`later-${index}`, 'x');
    // 'kept' now sits in the previous generation: replacing or deleting it there works too.
    map.set('kept', 'v3');
    assert.equal(map.get('kept'), 'v3');
    for (let index = 0; index < 10; index++) map.set(`again-${index}`, 'x');
    assert.equal(map.delete('kept'), true);
    assert.equal(map.get('kept'), undefined);
    assert.equal(map.delete('kept'), false);
    map.clear();
    assert.equal(map.size, 0);
  });
});
