// The organiser's console (issue 14), `/organise`: sign in, the committee's activities by start,
// a create/edit form checked before it is sent (organiserForm.ts, the hub's limits), lifecycle
// buttons (the actions the hub says the signed-in person may take now), the invitations of an
// activity with copy-link and revoke, and a link into the moderator console. And `/join/{id}`,
// where an invitation link lands: redeemed for the person's token, then on to the room.
//
// Everything goes through the organisers' REST API (docs/api.md); the session token lives in
// sessionStorage (closing the tab signs out).

import { ApiError } from '../api';
import { t, type I18nKey } from '../i18n';
import { checkDraft, emptyDraft, localInput, type DraftInput, type Field } from '../organiserForm';
import { h, header, i18n } from '../ui';

const TOKEN_KEY = 'shangliang.staff';

interface ActivityView {
  id: string;
  title: string;
  topic: string;
  description: string;
  kind: 'livestream' | 'room';
  committee: { id: string; name: string };
  scheduled_start_ms: number;
  planned_end_ms: number;
  state: 'scheduled' | 'open' | 'paused' | 'closed' | 'archived';
  rules: { details_editable: boolean; settings_editable: boolean; invitations_open: boolean };
  access: string;
  actions: string[];
}

interface InvitationView {
  id: string;
  person: string;
  name: string;
  role: 'member' | 'guest';
  status: 'active' | 'revoked' | 'expired';
  uses: number;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  const v = text ? (JSON.parse(text) as unknown) : null;
  if (!resp.ok) {
    const e = (v ?? {}) as { error?: string; message?: string };
    if (resp.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    throw new ApiError(resp.status, e.error ?? `http_${resp.status}`, e.message ?? resp.statusText);
  }
  return v as T;
}

const when = (ms: number) => new Date(ms).toLocaleString(document.documentElement.lang || 'zh-CN', { dateStyle: 'medium', timeStyle: 'short' });

function failure(e: unknown): string {
  return e instanceof ApiError ? t('org_failed', { code: e.code, msg: e.message }) : String(e);
}

export function organiser(root: HTMLElement): void {
  const main = h('main', { class: 'organiser' });
  root.replaceChildren(header(() => t('org_title')), main);
  const show = () => (sessionStorage.getItem(TOKEN_KEY) ? consolePage(main, show) : signIn(main, show));
  show();
}

function signIn(main: HTMLElement, done: () => void): void {
  const user = h('input', { id: 'org-user', name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'org-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('p', { class: 'muted', role: 'status' });
  const userL = h('label', { for: 'org-user' });
  const passL = h('label', { for: 'org-pass' });
  const submit = h('button', { type: 'submit', class: 'btn primary' });
  const heading = h('h2', { id: 'org-signin-h' });
  const form = h('form', { class: 'org-signin', 'aria-labelledby': 'org-signin-h' }, heading, userL, user, passL, pass, submit, status);
  i18n(() => {
    heading.textContent = t('org_signIn');
    userL.textContent = t('org_username');
    passL.textContent = t('org_password');
    submit.textContent = t('org_signIn');
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    status.textContent = t('loading');
    call<{ token: string }>('POST', '/api/admin/sign-in', { username: user.value, password: pass.value })
      .then((r) => {
        sessionStorage.setItem(TOKEN_KEY, r.token);
        done();
      })
      .catch((e) => (status.textContent = failure(e)));
  });
  main.replaceChildren(form);
}

function consolePage(main: HTMLElement, signedOut: () => void): void {
  const listH = h('h2', { id: 'org-list-h' });
  const list = h('ul', { class: 'org-activities', 'aria-labelledby': 'org-list-h' });
  const status = h('p', { class: 'muted', role: 'status', id: 'org-status' });
  const formBox = h('section', { class: 'org-form', 'aria-labelledby': 'org-form-h' });
  const invBox = h('section', { class: 'org-invitations', 'aria-labelledby': 'org-inv-h' });
  const signOut = h('button', { type: 'button', class: 'btn' });
  signOut.addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    signedOut();
  });
  let activities: ActivityView[] = [];
  let editing: ActivityView | null = null;
  let inviting: ActivityView | null = null;

  const refresh = async () => {
    try {
      const r = await call<{ activities: ActivityView[] }>('GET', '/api/admin/activities');
      activities = r.activities;
      status.textContent = activities.length ? '' : t('org_none');
      renderList();
      if (inviting) {
        inviting = activities.find((a) => a.id === inviting!.id) ?? null;
        await renderInvitations();
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return signedOut();
      status.textContent = failure(e);
    }
  };

  const act = async (a: ActivityView, action: string) => {
    status.textContent = t('loading');
    try {
      await call('POST', `/api/admin/activities/${encodeURIComponent(a.id)}/${action}`, {});
      status.textContent = t('org_done', { action: t(`org_action_${action}` as I18nKey), title: a.title });
    } catch (e) {
      status.textContent = failure(e);
    }
    await refresh();
  };

  const openConsole = async (a: ActivityView) => {
    try {
      const r = await call<{ token: string }>('POST', `/api/admin/activities/${encodeURIComponent(a.id)}/console-token`);
      location.assign(`/console/${encodeURIComponent(a.id)}?token=${encodeURIComponent(r.token)}`);
    } catch (e) {
      status.textContent = failure(e);
    }
  };

  const renderList = () => {
    listH.textContent = t('org_activities');
    const sorted = [...activities].sort((x, y) => x.scheduled_start_ms - y.scheduled_start_ms);
    list.replaceChildren(
      ...sorted.map((a) => {
        const buttons = a.actions
          .filter((x) => x !== 'delete')
          .map((x) => {
            const b = h('button', { type: 'button', class: 'btn', 'data-action': x, text: t(`org_action_${x}` as I18nKey), 'aria-label': `${t(`org_action_${x}` as I18nKey)}：${a.title}` });
            b.addEventListener('click', () => void act(a, x));
            return b;
          });
        const edit = h('button', { type: 'button', class: 'btn', 'data-do': 'edit', text: t('org_edit'), 'aria-label': `${t('org_edit')}：${a.title}` });
        edit.addEventListener('click', () => {
          editing = a;
          renderForm();
        });
        const inv = h('button', { type: 'button', class: 'btn', 'data-do': 'invitations', text: t('org_invitations'), 'aria-label': `${t('org_invitations')}：${a.title}` });
        inv.addEventListener('click', () => {
          inviting = a;
          void renderInvitations();
        });
        const cons = h('button', { type: 'button', class: 'btn', 'data-do': 'console', text: t('org_console'), 'aria-label': `${t('org_console')}：${a.title}` });
        cons.addEventListener('click', () => void openConsole(a));
        const watch = h('a', { href: `/live/${encodeURIComponent(a.id)}`, class: 'btn', text: t('faceWatch'), 'aria-label': `${t('faceWatch')}：${a.title}` });
        return h(
          'li',
          { class: 'activity', 'data-id': a.id, 'data-state': a.state },
          h('h3', { text: a.title }),
          h('p', { class: 'meta' }, h('span', { class: `badge state-${a.state}`, text: t(`org_state_${a.state}` as I18nKey) }), ' ', `${when(a.scheduled_start_ms)} — ${when(a.planned_end_ms)}`, ' · ', a.committee.name),
          h('p', { class: 'muted', text: a.topic }),
          h('nav', { class: 'faces', 'aria-label': a.title }, ...buttons, ...(a.rules.details_editable || a.rules.settings_editable ? [edit] : []), inv, cons, watch),
        );
      }),
    );
  };

  const renderForm = () => {
    const d: DraftInput = editing
      ? { ...emptyDraft(Date.now()), title: editing.title, topic: editing.topic, description: editing.description, kind: editing.kind, start: localInput(editing.scheduled_start_ms), end: localInput(editing.planned_end_ms) }
      : emptyDraft(Date.now());
    const fields: Partial<Record<Field, HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>> = {};
    const errs: Partial<Record<Field, HTMLElement>> = {};
    const row = (f: Field, label: I18nKey, input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement) => {
      input.id = `org-f-${f}`;
      input.setAttribute('name', f);
      input.setAttribute('aria-describedby', `org-e-${f}`);
      fields[f] = input;
      errs[f] = h('span', { class: 'field-error', id: `org-e-${f}`, 'aria-live': 'polite' });
      return h('div', { class: 'field' }, h('label', { for: input.id, text: t(label) }), input, errs[f]);
    };
    const select = (value: string, options: [string, I18nKey][]) => {
      const s = h('select', {}, ...options.map(([v, k]) => h('option', { value: v, text: t(k) })));
      s.value = value;
      return s;
    };
    const text = (value: string, type = 'text') => {
      const i = h('input', { type });
      i.value = value;
      return i;
    };
    const desc = h('textarea', { rows: 3 });
    desc.value = d.description;
    const qr = h('input', { type: 'checkbox' });
    qr.checked = d.questionReview;
    const locked = editing !== null && !editing.rules.details_editable;
    const heading = h('h2', { id: 'org-form-h', text: editing ? t('org_editTitle', { title: editing.title }) : t('org_create') });
    const status = h('p', { class: 'muted', role: 'status' });
    const submit = h('button', { type: 'submit', class: 'btn primary', text: editing ? t('org_save') : t('org_create') });
    const form = h(
      'form',
      { novalidate: true },
      row('title', 'org_fTitle', text(d.title)),
      row('topic', 'org_fTopic', text(d.topic)),
      row('description', 'org_fDescription', desc),
      row('kind', 'org_fKind', select(d.kind, [['livestream', 'kindLivestream'], ['room', 'kindRoom']])),
      row('start', 'org_fStart', text(d.start, 'datetime-local')),
      row('end', 'org_fEnd', text(d.end, 'datetime-local')),
      h('fieldset', {}, h('legend', { text: t('org_settings') }),
        row('discussion', 'org_fDiscussion', select(d.discussion, [['chaired', 'org_chaired'], ['open', 'org_open']])),
        row('turnMinutes', 'org_fTurn', text(d.turnMinutes, 'number')),
        row('commentReview', 'org_fCommentReview', select(d.commentReview, [['all', 'org_reviewAll'], ['keywords', 'org_reviewKeywords'], ['off', 'org_reviewOff']])),
        row('slowModeSeconds', 'org_fSlowMode', text(d.slowModeSeconds, 'number')),
        row('commenters', 'org_fCommenters', select(d.commenters, [['public', 'org_cPublic'], ['verified', 'org_cVerified'], ['members_only', 'org_cMembers']])),
        row('questionReview', 'org_fQuestionReview', qr)),
      submit,
      status,
    );
    for (const f of ['title', 'topic', 'description', 'start', 'kind'] as Field[]) if (locked || (editing && f === 'kind')) fields[f]?.setAttribute('disabled', '');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = (f: Field) => (fields[f] as HTMLInputElement).value;
      const input: DraftInput = {
        title: v('title'), topic: v('topic'), description: desc.value, kind: v('kind') as DraftInput['kind'], committee: '',
        start: v('start'), end: v('end'), discussion: v('discussion') as DraftInput['discussion'], turnMinutes: v('turnMinutes'),
        questionReview: qr.checked, commentReview: v('commentReview') as DraftInput['commentReview'], slowModeSeconds: v('slowModeSeconds'),
        commenters: v('commenters') as DraftInput['commenters'],
      };
      const checked = checkDraft(input, editing && !editing.rules.details_editable ? 0 : Date.now());
      for (const f of Object.keys(errs) as Field[]) {
        errs[f]!.textContent = '';
        fields[f]!.removeAttribute('aria-invalid');
      }
      if (!checked.ok) {
        for (const [f, key] of Object.entries(checked.errors) as [Field, I18nKey][]) {
          errs[f]!.textContent = t(key);
          fields[f]!.setAttribute('aria-invalid', 'true');
        }
        status.textContent = t('org_fixFields');
        return;
      }
      const b = checked.body;
      const id = editing ? encodeURIComponent(editing.id) : '';
      const save = editing
        ? (async () => {
            if (editing!.rules.details_editable) await call('PATCH', `/api/admin/activities/${id}`, { title: b.title, topic: b.topic, description: b.description, scheduled_start_ms: b.scheduled_start_ms, planned_end_ms: b.planned_end_ms });
            await call('PATCH', `/api/admin/activities/${id}/settings`, b.settings);
          })()
        : call('POST', '/api/admin/activities', b);
      save
        .then(async () => {
          status.textContent = t('org_saved');
          editing = null;
          await refresh();
          renderForm();
        })
        .catch((e) => (status.textContent = failure(e)));
    });
    const cancel = h('button', { type: 'button', class: 'btn', text: t('org_cancel') });
    cancel.addEventListener('click', () => {
      editing = null;
      renderForm();
    });
    formBox.replaceChildren(heading, form, ...(editing ? [cancel] : []));
  };

  /** Links made in this tab (the hub shows a link only once, when it is issued). */
  const links = new Map<string, string>();
  const renderInvitations = async () => {
    const a = inviting;
    if (!a) return invBox.replaceChildren();
    const heading = h('h2', { id: 'org-inv-h', text: t('org_invitationsOf', { title: a.title }) });
    const status = h('p', { class: 'muted', role: 'status' });
    const rows = h('ul', { class: 'org-invitation-list' });
    try {
      const r = await call<{ invitations: InvitationView[] }>('GET', `/api/admin/activities/${encodeURIComponent(a.id)}/invitations`);
      rows.replaceChildren(
        ...r.invitations.map((i) => {
          const li = h('li', { 'data-person': i.person, 'data-status': i.status }, `${i.name}（${t(i.role === 'member' ? 'org_member' : 'org_guest')}） · ${t(`org_inv_${i.status}` as I18nKey)} · ${t('org_uses', { n: i.uses })} `);
          const link = links.get(i.id);
          if (link && i.status === 'active') {
            const field = h('input', { readonly: true, value: link, 'aria-label': t('org_linkOf', { name: i.name }), class: 'org-link' });
            const copy = h('button', { type: 'button', class: 'btn', 'data-do': 'copy', text: t('org_copy'), 'aria-label': `${t('org_copy')}：${i.name}` });
            copy.addEventListener('click', () => {
              field.select();
              void navigator.clipboard?.writeText(link).then(() => (status.textContent = t('org_copied', { name: i.name })), () => (status.textContent = link));
            });
            li.append(field, copy);
          }
          if (i.status === 'active') {
            const revoke = h('button', { type: 'button', class: 'btn', 'data-do': 'revoke', text: t('org_revoke'), 'aria-label': `${t('org_revoke')}：${i.name}` });
            revoke.addEventListener('click', () => {
              call('POST', `/api/admin/activities/${encodeURIComponent(a.id)}/invitations/${encodeURIComponent(i.id)}/revoke`, {})
                .then(() => renderInvitations())
                .catch((e) => (status.textContent = failure(e)));
            });
            li.append(' ', revoke);
          }
          return li;
        }),
      );
    } catch (e) {
      status.textContent = failure(e);
    }
    const name = h('input', { id: 'org-inv-name', required: true });
    const person = h('input', { id: 'org-inv-person' });
    const role = h('select', { id: 'org-inv-role' }, h('option', { value: 'member', text: t('org_member') }), h('option', { value: 'guest', text: t('org_guest') }));
    const org = h('input', { id: 'org-inv-org' });
    const add = h('button', { type: 'submit', class: 'btn primary', text: t('org_invite') });
    const form = h(
      'form',
      { class: 'org-invite' },
      h('label', { for: 'org-inv-name', text: t('org_invName') }), name,
      h('label', { for: 'org-inv-role', text: t('org_invRole') }), role,
      h('label', { for: 'org-inv-person', text: t('org_invPerson') }), person,
      h('label', { for: 'org-inv-org', text: t('org_invOrg') }), org,
      add,
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!name.value.trim()) {
        status.textContent = t('org_errRequired');
        return;
      }
      const member = role.value === 'member';
      const body = {
        name: name.value.trim(),
        role: role.value,
        ...(person.value.trim() ? { person: person.value.trim() } : {}),
        ...(org.value.trim() ? (member ? { committee: org.value.trim() } : { affiliation: org.value.trim() }) : {}),
      };
      call<{ invitation: InvitationView; link: string }>('POST', `/api/admin/activities/${encodeURIComponent(a.id)}/invitations`, body)
        .then((r) => {
          links.set(r.invitation.id, new URL(r.link, location.origin).href);
          return renderInvitations();
        })
        .catch((e) => (status.textContent = failure(e)));
    });
    invBox.replaceChildren(heading, rows, ...(a.rules.invitations_open ? [form] : []), status);
  };

  i18n(() => {
    signOut.textContent = t('org_signOut');
    renderList();
    renderForm();
    void renderInvitations();
  });
  main.replaceChildren(h('div', { class: 'org-bar' }, signOut), status, listH, list, formBox, invBox);
  void refresh();
}

/** `/join/{activity}?invite=…`: the invitation link. Redeemed for the person's token, then on to the room. */
export function join(root: HTMLElement, activity: string): void {
  const status = h('p', { role: 'status', class: 'muted' });
  root.replaceChildren(header(() => t('org_joinTitle')), h('main', { class: 'join' }, status));
  const invite = new URL(location.href).searchParams.get('invite');
  if (!invite) {
    status.textContent = t('connNeedToken');
    return;
  }
  status.textContent = t('loading');
  call<{ token: string; activity: string }>('POST', '/api/invitations/redeem', { token: invite })
    .then((r) => location.replace(`/room/${encodeURIComponent(r.activity)}?token=${encodeURIComponent(r.token)}`))
    .catch((e) => (status.textContent = e instanceof ApiError ? t('org_joinRefused', { code: e.code }) : String(e)));
  void activity;
}
