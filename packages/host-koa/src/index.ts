/**
 * `@avatargen/host-koa`: the Avatar Data Generator website, its JSON API under /api/v1 and the
 * `avatargen` command.
 */
export { createApp, type HostApp, type HostOptions, SESSION_COOKIE } from './app.js';
export { main as runCli } from './cli.js';
export { HttpError, statusFor } from './errors.js';
export { createHostApp, listen, resolveSecretKey, type Backend, type RunningServer, startBackend } from './host.js';
export { openApiDocument } from './openapi.js';
export {
  type Assembly,
  assemblePlugins,
  CONFIG_FILE_NAMES,
  defaultPlugins,
  findConfigFile,
  readConfigFile,
  resolvePluginEntries,
} from './plugins.js';
export { describePlugins, formatPlugins, type PluginReport, type PluginsReport } from './plugin-report.js';
export { readSite, type Site } from './site.js';
export { type AttemptStore, contentSecurityPolicy, DEFAULT_THROTTLE, LoginThrottle, safeNext, type ThrottleLimits } from './security.js';
export { progressSummary, SseHub } from './sse.js';
export { ThumbnailCache } from './thumbs.js';
