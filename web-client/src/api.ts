// The hub's HTTP API and the viewer-token store.

import type { Activity, ApiErrorBody, ViewerTokenResponse } from './protocol';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function json<T>(resp: Response): Promise<T> {
  if (!resp.ok) {
    let body: Partial<ApiErrorBody> = {};
    try {
      body = (await resp.json()) as ApiErrorBody;
    } catch {
      /* not JSON */
    }
    throw new ApiError(resp.status, body.error ?? `http_${resp.status}`, body.message ?? resp.statusText);
  }
  return (await resp.json()) as T;
}

export async function listActivities(): Promise<Activity[]> {
  return json<Activity[]>(await fetch('/api/activities'));
}

export async function getActivity(id: string): Promise<Activity> {
  return json<Activity>(await fetch(`/api/activities/${encodeURIComponent(id)}`));
}

/**
 * A viewer token for `name`. With `previous` (the current token) the hub re-issues it for the
 * same identity: a rename keeps the subject, so a timeout or ban follows the person.
 */
export async function mintViewerToken(id: string, name: string, previous?: string): Promise<ViewerTokenResponse> {
  return json<ViewerTokenResponse>(
    await fetch(`/api/activities/${encodeURIComponent(id)}/viewer-token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(previous ? { name, token: previous } : { name }),
    }),
  );
}

interface StoredToken {
  token: string;
  name: string;
  /** Expiry, milliseconds since the Unix epoch. */
  exp: number;
}

const key = (activity: string) => `shangliang.viewer.${activity}`;
const NAME_KEY = 'shangliang.nickname';

export function storedNickname(): string {
  const n = localStorage.getItem(NAME_KEY);
  if (n) return n;
  const fresh = `网友${Math.floor(1000 + Math.random() * 9000)}`;
  localStorage.setItem(NAME_KEY, fresh);
  return fresh;
}

/** A viewer token for `activity`: the stored one while it is valid for another minute, else a new one. */
export async function viewerToken(activity: string, fresh: boolean, name = storedNickname()): Promise<StoredToken> {
  let stored: StoredToken | null = null;
  try {
    stored = JSON.parse(localStorage.getItem(key(activity)) ?? 'null') as StoredToken | null;
  } catch {
    /* corrupt entry: mint a new one */
  }
  if (!fresh && stored && stored.exp > Date.now() + 60_000 && stored.name === name) return stored;
  // Renew for the same identity while the stored token still holds (a rename, a token about to
  // expire); a token the hub no longer accepts (another hub, expired) gives way to a fresh one.
  const previous = stored && stored.exp > Date.now() + 5_000 ? stored.token : undefined;
  let r: ViewerTokenResponse;
  try {
    r = await mintViewerToken(activity, name, previous);
  } catch (err) {
    if (!previous || !(err instanceof ApiError) || err.status !== 401) throw err;
    r = await mintViewerToken(activity, name);
  }
  const s: StoredToken = { token: r.token, name: r.name, exp: Date.now() + r.expires_in * 1000 };
  localStorage.setItem(key(activity), JSON.stringify(s));
  localStorage.setItem(NAME_KEY, r.name);
  return s;
}

/** A staff/member token passed as `?token=` (kept for the tab in sessionStorage, removed from the address bar). */
export function urlToken(activity: string): string | null {
  const url = new URL(location.href);
  const k = `shangliang.token.${activity}`;
  const q = url.searchParams.get('token');
  if (q) {
    sessionStorage.setItem(k, q);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
    return q;
  }
  return sessionStorage.getItem(k);
}
