/** The client library; the package entry (src/index.ts) re-exports it with the heartbeat agent. */
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
