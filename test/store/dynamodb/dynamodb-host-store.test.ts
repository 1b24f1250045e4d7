import { hostStoreContract } from '../../contract/host-store.contract.js';
import { openStore, startDynalite } from '../../helpers/dynamodb.js';
import type { EmbeddedDynamoDb } from '../../../src/store/dynamodb/embedded-dynalite.js';

let server: EmbeddedDynamoDb | undefined;

hostStoreContract('DynamoDB (dynalite)', {
  async setup() {
    server = await startDynalite();
  },
  async teardown() {
    await server?.close();
  },
  async open() {
    if (!server) throw new Error('dynalite is not running');
    return openStore(server.endpoint);
  },
  async reopen(previous) {
    if (!server) throw new Error('dynalite is not running');
    const { tableName, dispose } = previous as Awaited<ReturnType<typeof openStore>>;
    await previous.store.close();
    const reopened = await openStore(server.endpoint, { tableName });
    return { ...reopened, dispose };
  },
});

// The same contract on a table created as the original's pynamodb model creates it, written in its layout.
let originalServer: EmbeddedDynamoDb | undefined;

hostStoreContract("DynamoDB (dynalite), the original's table and item layout", {
  async setup() {
    originalServer = await startDynalite();
  },
  async teardown() {
    await originalServer?.close();
  },
  async open() {
    if (!originalServer) throw new Error('dynalite is not running');
    return openStore(originalServer.endpoint, { layout: 'original' });
  },
  async reopen(previous) {
    if (!originalServer) throw new Error('dynalite is not running');
    const { tableName, dispose } = previous as Awaited<ReturnType<typeof openStore>>;
    await previous.store.close();
    const reopened = await openStore(originalServer.endpoint, { tableName, layout: 'original' });
    return { ...reopened, dispose };
  },
});
