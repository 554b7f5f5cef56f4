// Routes: `/` landing, `/live/{activity}` public watch page, `/room/{activity}` member room,
// `/console/{activity}` moderator console, `/organise` the organiser's console, `/join/{activity}?invite=` an invitation link, `/replay/{activity}` the recording with chapters. The hub serves index.html for all of them.
// Each page is its own chunk, so a phone opening the watch page loads neither the room's media
// code nor the console (docs/performance.md, the phone budget).

import './style.css';
import { currentLang } from './i18n';

document.documentElement.lang = currentLang();
const root = document.getElementById('app')!;
const m = /^\/(live|room|console|replay|join)\/([A-Za-z0-9_-]{1,64})\/?$/.exec(location.pathname);
if (/^\/organise\/?$/.test(location.pathname)) void import('./pages/organiser').then((p) => p.organiser(root));
else if (!m) void import('./pages/landing').then((p) => p.landing(root));
else if (m[1] === 'join') void import('./pages/organiser').then((p) => p.join(root, m[2]));
else if (m[1] === 'live') void import('./pages/watch').then((p) => p.watch(root, m[2]));
else if (m[1] === 'replay') void import('./pages/replay').then((p) => p.replay(root, m[2]));
else if (m[1] === 'room') void import('./pages/room').then((p) => p.room(root, m[2]));
else void import('./pages/console').then((p) => p.moderatorConsole(root, m[2]));
