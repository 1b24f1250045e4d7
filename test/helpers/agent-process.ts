import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './registry.js';

export const AGENT_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/agent/cli.js');

export interface AgentProcess {
  readonly child: ChildProcess;
  /** Everything written to stderr so far (the agent's JSON log lines). */
  readonly stderr: () => string;
  /** The stderr lines parsed as JSON. */
  readonly logLines: () => Array<Record<string, unknown>>;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /** Sends the signal and resolves with the exit code; SIGKILLs and fails after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Runs `node dist/src/agent/cli.js ...args` as a real process, with only PATH and `env` in its environment. */
export function spawnAgent(args: readonly string[], env: Record<string, string> = {}): AgentProcess {
  const child = spawn(process.execPath, [AGENT_CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.resume();
  const exited = (once(child, 'exit') as Promise<[number | null]>).then(([code]) => code);
  return {
    child,
    stderr: () => stderr,
    logLines: () =>
      stderr
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      if (child.signalCode === 'SIGKILL')
        throw new Error(`agent did not exit within ${timeoutMs} ms of ${signal}:\n${stderr}`);
      return code;
    },
  };
}

/** Resolves with the code once the agent exits on its own; kills it and fails after `timeoutMs`. */
export async function exitCode(agent: AgentProcess, timeoutMs = 10_000): Promise<number | null> {
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), timeoutMs);
  const code = await agent.exited;
  clearTimeout(timer);
  if (agent.child.signalCode === 'SIGKILL')
    throw new Error(`agent did not exit within ${timeoutMs} ms:\n${agent.stderr()}`);
  return code;
}

/** Waits until the agent has logged a line whose `msg` matches. */
export function waitForLog(
  agent: AgentProcess,
  msg: RegExp,
  count = 1,
  timeoutMs = 10_000,
): Promise<Array<Record<string, unknown>>> {
  return waitFor(
    () => `${count} agent log line(s) matching ${msg}; stderr so far:\n${agent.stderr()}`,
    () => {
      const lines = agent.logLines().filter((line) => typeof line.msg === 'string' && msg.test(line.msg));
      return lines.length >= count ? lines : undefined;
    },
    timeoutMs,
  );
}
