import { listActivities } from '../api';
import { t } from '../i18n';
import type { Activity } from '../protocol';
import { formatCount, h, header, i18n } from '../ui';

export function landing(root: HTMLElement): void {
  const list = h('ul', { class: 'activities', 'aria-labelledby': 'act-h' });
  const heading = h('h2', { id: 'act-h' });
  const status = h('p', { class: 'muted', role: 'status' });
  let data: Activity[] | null = null;
  let error = '';
  const render = () => {
    heading.textContent = t('activities');
    staff.textContent = t('staffNote');
    status.textContent = error ? t('loadFailed', { msg: error }) : data === null ? t('loading') : data.length ? '' : t('noActivities');
    list.replaceChildren(
      ...(data ?? []).map((a) => {
        const state = h('span', { class: `badge state-${a.state}`, text: t(a.state === 'live' ? 'stateLive' : a.state === 'scheduled' ? 'stateScheduled' : 'stateEnded') });
        const kind = h('span', { class: 'muted', text: t(a.kind === 'room' ? 'kindRoom' : 'kindLivestream') });
        const viewers = h('span', { class: 'muted', text: t('viewers', { n: formatCount(a.viewers) }) });
        const id = encodeURIComponent(a.id);
        // Only the public face: the room and the console need the organisers' link with a token,
        // and a button that leads to a token error helps nobody.
        const links = h('nav', { class: 'faces', 'aria-label': a.title }, h('a', { href: `/live/${id}`, class: 'btn primary', text: t('faceWatch'), 'aria-label': `${t('faceWatch')}：${a.title}` }));
        return h('li', { class: 'activity', 'data-id': a.id }, h('h3', { text: a.title }), h('p', { class: 'meta' }, state, ' ', kind, ' · ', viewers), links);
      }),
    );
  };
  const staff = h('p', { class: 'muted staff-note' });
  root.replaceChildren(header(() => t('activities')), h('main', { class: 'landing' }, heading, status, list, staff));
  i18n(render);
  listActivities()
    .then((a) => {
      // Live first, then scheduled, then ended.
      const order = { live: 0, scheduled: 1, ended: 2 } as const;
      data = a.sort((x, y) => order[x.state] - order[y.state] || y.created_ms - x.created_ms);
      render();
    })
    .catch((e: Error) => {
      error = e.message;
      render();
    });
}
