/**
 * The package's public API: `import { DiscoveryClient, HeartbeatAgent } from '@discovery-registry/discovery'`.
 * The entry sits above both: the agent is built on the client, so the client cannot re-export it.
 */
export * from './client/index.js';
export { HeartbeatAgent, type HeartbeatAgentOptions, type AgentLogEntry } from './agent/agent.js';
