// One HTTP client for the host's tests and the cross-package end-to-end tests.
export { Client, parseSetCookie, type Reply, type SetCookie } from '../../../../tests/support/web-client.js';
