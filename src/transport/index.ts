// The artifact transports: one interface, GitHub's artifact service and a local directory.
export * from './transport.js';
export { GitHubArtifactTransport, type GitHubRunContext } from './github.js';
export { LocalDirectoryTransport } from './local.js';
