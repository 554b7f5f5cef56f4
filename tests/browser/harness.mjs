// Scaffolding shared by the browser test scripts: the Chromium check, a time-stamped log, a run
// bounded in time, one persistent browser context per run that is always cleaned up, and the
// PASS/FAIL protocol the Rust side reads (exit 0, or exit 1 with a `FAIL:` line).

import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Asks every page of `context` for the test hook `window.__shangliang` (production pages do
 * not expose it otherwise: web-client/src/testHook.ts). */
export async function withTestHook(context) {
  await context.addInitScript(() => {
    window.__SHANGLIANG_TEST__ = true;
  });
  return context;
}

/** Starts a run that fails by itself after `totalMs`; screenshots go to `shotDir`. */
export function startRun({ shotDir, totalMs }) {
  if (!existsSync(CHROMIUM)) {
    console.error(`FAIL: no Chromium at ${CHROMIUM}; install it with: apt-get install -y chromium`);
    process.exit(1);
  }
  mkdirSync(shotDir, { recursive: true });
  const t0 = Date.now();
  const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
  let context;
  let userDir;
  const cleanup = async () => {
    try {
      await context?.close();
    } catch {}
    if (userDir) rmSync(userDir, { recursive: true, force: true });
  };
  const fail = async (msg) => {
    console.error(`FAIL: ${msg}`);
    await cleanup();
    process.exit(1);
  };
  const killer = setTimeout(() => fail(`test did not finish within ${totalMs / 1000} s`), totalMs);
  const check = (cond, msg) => {
    if (!cond) throw new Error(msg);
  };
  /** Launches the run's persistent context in a fresh profile; `options` are Playwright's. */
  const launch = async (options) => {
    userDir = mkdtempSync(path.join(os.tmpdir(), 'shangliang-chromium-'));
    context = await chromium.launchPersistentContext(userDir, { executablePath: CHROMIUM, ...options });
    return withTestHook(context);
  };
  /** Runs `main`, then exits 0 with PASS, or 1 with the error. */
  const run = async (main) => {
    try {
      await main();
      clearTimeout(killer);
      await cleanup();
      log('PASS');
      process.exit(0);
    } catch (e) {
      await fail(e?.stack ?? String(e));
    }
  };
  return { log, fail, check, launch, run };
}
