/**
 * The oldest Node.js major discovery supports; package.json's `engines` says the same (a test
 * checks). Older ones still run it: the AWS SDK's releases from January 2027 on need 22, so an
 * older Node.js would get no more SDK fixes, which is why it is unsupported rather than refused.
 */
export const SUPPORTED_NODE_MAJOR = 22;

/** The one start-up line for a Node.js older than that, or undefined when it is supported. */
export function unsupportedNodeMessage(version: string = process.version): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  if (major >= SUPPORTED_NODE_MAJOR) return undefined;
  return `Node.js ${version} is not supported: discovery needs Node.js ${SUPPORTED_NODE_MAJOR} or later (22 and 24 are tested); running anyway`;
}

/**
 * The AWS SDK prints its own nine-line warning on every start on a Node.js it will stop supporting
 * (`NodeVersionSupportWarning`, from `emitWarningIfUnsupportedVersion` when a client is built).
 * The line above says the same once, in the log; the SDK's documented switch turns its copy off
 * unless the operator set it themselves.
 */
export function silenceAwsSdkNodeWarning(env: NodeJS.ProcessEnv = process.env): void {
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}
