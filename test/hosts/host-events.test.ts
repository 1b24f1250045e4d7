import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { HostEvents, type ChangeOrigin } from '../../src/hosts/host-events.js';

/** A publisher whose log lines are kept, and a record of what each kind of subscriber heard. */
function publisher() {
  const logged: Array<{ msg: string; service?: string }> = [];
  const events = new HostEvents(pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line)) }));
  const heard: string[] = [];
  events.onServiceChanged((service, origin: ChangeOrigin) => heard.push(`changed ${service} ${origin}`));
  events.onLocalChange((service) => heard.push(`local ${service}`));
  events.onResync(() => heard.push('resync'));
  return { events, heard, logged };
}

describe('HostEvents', () => {
  test('a local change reaches every change subscriber, then the local-change subscribers (the feed)', () => {
    const { events, heard } = publisher();
    events.onServiceChanged((service) => heard.push(`second ${service}`));
    events.publishLocalChange('users');
    assert.deepEqual(heard, ['changed users local', 'second users', 'local users']);
  });

  test('a remote change reaches change subscribers but is not published again as local', () => {
    const { events, heard } = publisher();
    events.publishRemoteChanges(['users', 'orders']);
    assert.deepEqual(heard, ['changed users remote', 'changed orders remote']);
  });

  test('a change seen on a read is told as such, and not as local', () => {
    const { events, heard } = publisher();
    events.publishChangeSeenOnRead('users');
    assert.deepEqual(heard, ['changed users read']);
  });

  test('a resync reaches only the resync subscribers', () => {
    const { events, heard } = publisher();
    events.publishResync();
    assert.deepEqual(heard, ['resync']);
  });

  test('a subscriber that throws is logged and the others are still told', () => {
    const { events, heard, logged } = publisher();
    events.onServiceChanged(() => {
      throw new Error('broken subscriber');
    });
    events.onServiceChanged((service) => heard.push(`after ${service}`));
    events.onLocalChange(() => {
      throw new Error('broken feed');
    });
    events.onResync(() => {
      throw new Error('broken view');
    });
    events.publishLocalChange('users');
    events.publishResync();
    assert.deepEqual(heard, ['changed users local', 'after users', 'local users', 'resync']);
    assert.deepEqual(
      logged.map((line) => line.msg),
      ['service change listener failed', 'local change listener failed', 're-sync listener failed'],
    );
  });

  test('an unsubscribed listener hears nothing more', () => {
    const events = new HostEvents(pino({ level: 'silent' }));
    const heard: string[] = [];
    const stopChanges = events.onServiceChanged((service) => heard.push(service));
    const stopLocal = events.onLocalChange((service) => heard.push(`local ${service}`));
    const stopResync = events.onResync(() => heard.push('resync'));
    stopChanges();
    stopLocal();
    stopResync();
    events.publishLocalChange('users');
    events.publishRemoteChanges(['orders']);
    events.publishResync();
    assert.deepEqual(heard, []);
  });
});
