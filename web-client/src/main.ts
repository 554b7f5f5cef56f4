// Routes: `/` landing, `/live/{activity}` public watch page, `/room/{activity}` member room,
// `/console/{activity}` moderator console. The hub serves index.html for all of them.

import './style.css';
import { currentLang } from './i18n';
import { moderatorConsole } from './pages/console';
import { landing } from './pages/landing';
import { room } from './pages/room';
import { watch } from './pages/watch';

document.documentElement.lang = currentLang();
const root = document.getElementById('app')!;
const m = /^\/(live|room|console)\/([A-Za-z0-9_-]{1,64})\/?$/.exec(location.pathname);
if (!m) landing(root);
else if (m[1] === 'live') watch(root, m[2]);
else if (m[1] === 'room') room(root, m[2]);
else moderatorConsole(root, m[2]);
