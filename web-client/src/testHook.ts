// The browser tests read a page's internals (connection, comment list, stores) through
// `window.__shangliang`. Production pages do not expose them: only a page whose test asked for
// it before the page's script ran (`window.__SHANGLIANG_TEST__ = true`, set by the tests'
// harness with Playwright's addInitScript) or the Vite dev server gets the hook.

interface TestWindow {
  __SHANGLIANG_TEST__?: boolean;
  __shangliang?: unknown;
}

/** Whether this page runs under a test that asked for the hook (or in development). */
export function testHookWanted(): boolean {
  return import.meta.env.DEV || (window as unknown as TestWindow).__SHANGLIANG_TEST__ === true;
}

/** Exposes `hook` as `window.__shangliang` to the browser tests; does nothing otherwise. */
export function exposeForTests(hook: unknown): void {
  if (testHookWanted()) (window as unknown as TestWindow).__shangliang = hook;
}
