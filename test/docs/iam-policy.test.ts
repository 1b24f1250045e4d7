import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * docs/three-replicas.md gives operators the IAM policy their pods run with. A call the code
 * makes and the policy leaves out is an AccessDeniedException in production (on the change log's
 * records, say, which only a shared table writes), and nothing else in the suite would notice:
 * dynalite does not check permissions. So the actions are read from the code that calls DynamoDB
 * and compared with the policy the document prints.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC = path.join(ROOT, 'docs', 'three-replicas.md');

/** The folders whose code sends DynamoDB commands. */
const CALLERS = [path.join(ROOT, 'src', 'store', 'dynamodb')];

/** The document client's commands are named without DynamoDB's `Item` suffix. */
const DOCUMENT_CLIENT_ACTION: Record<string, string> = {
  Get: 'GetItem',
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  BatchWrite: 'BatchWriteItem',
  BatchGet: 'BatchGetItem',
  TransactWrite: 'TransactWriteItems',
  TransactGet: 'TransactGetItems',
};

/** Only `DYNAMODB_CREATE_TABLES_IN_APP=true` calls these, and the document adds them to the policy for it in its own sentence. */
const TABLE_SET_UP = ['CreateTable', 'DescribeTimeToLive', 'UpdateTimeToLive'];

async function actionsTheCodeCalls(): Promise<Set<string>> {
  const actions = new Set<string>();
  for (const folder of CALLERS) {
    for (const file of await readdir(folder)) {
      if (!file.endsWith('.ts')) continue;
      const source = await readFile(path.join(folder, file), 'utf8');
      for (const match of source.matchAll(/\bnew (\w+)Command\(/g)) {
        const name = match[1] as string;
        actions.add(DOCUMENT_CLIENT_ACTION[name] ?? name);
      }
    }
  }
  return actions;
}

async function documentedPolicy(): Promise<{ actions: Set<string>; resources: string[]; text: string }> {
  const text = await readFile(DOC, 'utf8');
  const json = /cat > discovery-policy\.json <<EOF\n([\s\S]*?)\nEOF\n/.exec(text)?.[1];
  assert.ok(json, 'docs/three-replicas.md writes discovery-policy.json with a heredoc');
  const policy = JSON.parse(json) as { Statement: { Action: string[]; Resource: string[] }[] };
  const statements = policy.Statement;
  return {
    actions: new Set(
      statements.flatMap((statement) => statement.Action.map((action) => action.replace(/^dynamodb:/, ''))),
    ),
    resources: statements.flatMap((statement) => statement.Resource),
    text,
  };
}

test('the IAM policy in docs/three-replicas.md allows every DynamoDB call the registry makes', async () => {
  const called = await actionsTheCodeCalls();
  assert.ok(called.has('UpdateItem') && called.has('Query'), `found the store's calls: ${[...called].join(', ')}`);
  const { actions, resources, text } = await documentedPolicy();
  const missing = [...called].filter((action) => !actions.has(action) && !TABLE_SET_UP.includes(action)).sort();
  assert.deepEqual(missing, [], `the policy lacks ${missing.join(', ')}: pods would get AccessDeniedException`);
  const unused = [...actions].filter((action) => !called.has(action)).sort();
  assert.deepEqual(unused, [], `the policy allows ${unused.join(', ')}, which the registry never calls`);
  for (const action of TABLE_SET_UP.filter((name) => called.has(name)))
    assert.match(text, new RegExp(`\`dynamodb:${action}\``), `the table set-up sentence names dynamodb:${action}`);
  assert.ok(
    resources.some((resource) => resource.endsWith('/index/service_repo_name-index')),
    'the policy covers the repo index that GET /v1/repo queries',
  );
});
