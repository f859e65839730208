export { readZip } from '../../../../tests/support/web-client.js';
