export { collectEvents, type SseEvent } from '../../../../tests/support/web-client.js';
