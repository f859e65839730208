import { describe, expect, it } from 'vitest';
import { isModerationBlock, parseRetryAfter, scrub } from '../src/index.js';

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const h = (init: Record<string, string>) => new Headers(init);

  it('reads seconds, fractional seconds, an HTTP date and retry-after-ms (which wins)', () => {
    expect(parseRetryAfter(h({ 'retry-after': '20' }), now)).toBe(20_000);
    expect(parseRetryAfter(h({ 'retry-after': '0.5' }), now)).toBe(500);
    expect(parseRetryAfter(h({ 'retry-after': 'Thu, 01 Jan 2026 00:01:30 GMT' }), now)).toBe(90_000);
    expect(parseRetryAfter(h({ 'retry-after': '20', 'retry-after-ms': '250.4' }), now)).toBe(251);
  });

  it('gives 0 for a date in the past and undefined for nothing or nonsense', () => {
    expect(parseRetryAfter(h({ 'retry-after': 'Wed, 31 Dec 2025 23:00:00 GMT' }), now)).toBe(0);
    expect(parseRetryAfter(h({}), now)).toBeUndefined();
    expect(parseRetryAfter(h({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(parseRetryAfter(h({ 'retry-after-ms': '-5' }), now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('isModerationBlock', () => {
  it('knows the moderation_blocked code and both safety-system messages, on 400 only', () => {
    expect(isModerationBlock({ status: 400, code: 'moderation_blocked' })).toBe(true);
    expect(isModerationBlock({ status: 400, message: 'Your request was rejected by the safety system. safety_violations=[x].' })).toBe(
      true,
    );
    expect(isModerationBlock({ status: 400, message: 'Your request was rejected as a result of our safety system.' })).toBe(true);
    expect(isModerationBlock({ status: 400, code: 'invalid_value', message: "Invalid 'size'." })).toBe(false);
    expect(isModerationBlock({ status: 500, code: 'moderation_blocked' })).toBe(false);
  });
});

describe('scrub', () => {
  it('removes the key, anything shaped like an OpenAI key, and cuts long text', () => {
    expect(scrub('key abcd1234 here', 'abcd1234')).toBe('key [redacted] here');
    expect(scrub('Incorrect API key provided: sk-proj-****abcd1234.', 'other')).toBe('Incorrect API key provided: [redacted].');
    expect(scrub('x'.repeat(1000), 'k').length).toBeLessThan(400);
  });
});
