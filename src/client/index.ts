/** The package's public API: `import { DiscoveryClient } from '@discovery-registry/discovery'`. */
export {
  DEFAULT_TIMEOUT_MS,
  DiscoveryClient,
  DiscoveryError,
  type CallOptions,
  type DiscoveryClientOptions,
  type DiscoveryErrorKind,
  type Host,
  type HostTags,
  type Registration,
  type RepoHostList,
  type ServiceHostList,
} from './discovery-client.js';
export { HeartbeatAgent, type HeartbeatAgentOptions, type AgentLogEntry } from '../agent/agent.js';
