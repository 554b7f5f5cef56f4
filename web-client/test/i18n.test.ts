import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TABLES } from '../src/i18n';

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('i18n', () => {
  const zh = TABLES['zh-CN'];
  const en = TABLES.en;

  it('every key exists in both languages, with text', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(zh).sort());
    for (const [k, v] of Object.entries(zh)) expect(v.trim(), `zh ${k}`).not.toBe('');
    for (const [k, v] of Object.entries(en)) expect(v.trim(), `en ${k}`).not.toBe('');
  });

  it('both languages use the same placeholders in every string', () => {
    for (const k of Object.keys(zh)) expect(placeholders(en[k]), k).toEqual(placeholders(zh[k]));
  });

  it('every error code of the protocol has a message', () => {
    // The codes as generated from the Rust types (packages/client/src/generated/protocol.ts).
    const src = readFileSync(resolve(process.cwd(), 'packages/client/src/generated/protocol.ts'), 'utf8');
    const union = /export type ErrorCode =([^;]+);/.exec(src)![1];
    const codes = [...union.matchAll(/"(\w+)"/g)].map((m) => m[1]);
    expect(codes.length).toBeGreaterThan(30);
    // `internal` and the auth codes close the connection and are shown through the status line.
    const shownElsewhere = new Set(['bad_frame', 'unknown_type', 'unauthenticated', 'invalid_token', 'token_expired', 'version_unsupported', 'too_many_subscriptions', 'internal']);
    for (const code of codes) if (!shownElsewhere.has(code)) expect(zh[`err_${code}`], code).toBeTruthy();
  });

  it('no user-visible string is developer text', () => {
    for (const [k, v] of Object.entries(zh)) expect(v, k).not.toMatch(/SFU|WHEP|WHIP|信令|接入后/);
    for (const [k, v] of Object.entries(en)) expect(v, k).not.toMatch(/SFU|WHEP|WHIP|signalling/);
  });
});
