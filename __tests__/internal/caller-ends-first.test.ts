import { callerEndsFirst } from '../../lib/attempt';

/** A request as the SDKs send it: a Headers object, X-Stainless-Timeout when they announce one. */
const sent = (announced?: string): RequestInit => ({ headers: new Headers(announced === undefined ? {} : { 'x-stainless-timeout': announced }) });
const signal = new AbortController().signal;

describe("whether the caller's signal ends an attempt before the guard's own timeout would", () => {
  test.each([
    // [announced seconds, the clients' timeout, the guard's timeoutMs, caller ends first]
    [undefined, undefined, 600_000, false], // nothing known: the attempt keeps its own timeout
    [undefined, 600_000, 600_000, true], // OpenAI's default client: its 10 minutes end it first
    [undefined, 600_001, 600_000, false],
    ['600', 600_000, 600_000, true], // Anthropic's default, announced: the client's own value
    ['600', undefined, 600_000, false], // announced without the client: up to 600.999 s
    ['3600', 600_000, 600_000, false], // a long non-streaming call's own longer timeout
    ['0', 150, 400, true],
    ['1', 1_500, 1_200, false], // rounded down to 1 s, but the client's 1.5 s is longer
    ['1', undefined, 1_200, false],
    ['1', undefined, 2_000, true],
    ['', 600_000, 600_000, true], // an empty announcement: the client's timeout
    ['soon', undefined, 600_000, false],
  ])('announced %p, clients %p, timeoutMs %p → %p', (announced, clients, timeoutMs, expected) => {
    expect(callerEndsFirst(sent(announced), signal, timeoutMs, clients)).toBe(expected);
  });

  test('a signal that is not Node\'s own (a polyfill) never stands in for the attempt\'s own', () => {
    const foreign = { aborted: false, reason: undefined, addEventListener() {}, removeEventListener() {} } as unknown as AbortSignal;
    expect(callerEndsFirst(sent('1'), foreign, 600_000, 1_000)).toBe(false);
  });

  test('headers given as a plain object are not read: the clients\' timeout decides', () => {
    expect(callerEndsFirst({ headers: { 'x-stainless-timeout': '3600' } }, signal, 600_000, 600_000)).toBe(true);
    expect(callerEndsFirst({ headers: { 'x-stainless-timeout': '1' } }, signal, 600_000, undefined)).toBe(false);
  });
});
