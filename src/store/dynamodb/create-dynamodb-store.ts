import type { Config } from '../../config.js';
import { ConfigError } from '../../config.js';
import type { Log } from '../../hosts/host-service.js';
import type { HostStore } from '../host-store.js';

export async function createDynamoDbStore(_config: Config, _log: Log): Promise<HostStore> {
  throw new ConfigError('BACKEND_STORAGE=DynamoDB is not available in this build yet: use InMemory or InFile');
}
