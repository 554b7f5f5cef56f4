// Every user-visible string of the app, Chinese first (zh-CN is the default) with English.
// `t(key, {n: 3})` substitutes `{n}`.

export type Lang = 'zh-CN' | 'en';

const zh = {
  appName: '商量 · 网络协商议政',
  langSwitch: 'English',
  langSwitchLabel: '切换到英文界面',
  home: '首页',
  activities: '协商活动',
  loading: '加载中…',
  loadFailed: '加载失败：{msg}',
  noActivities: '暂无活动',
  stateLive: '直播中',
  stateScheduled: '未开始',
  stateEnded: '已结束',
  kindLivestream: '网络直播',
  kindRoom: '视频会商室',
  faceWatch: '观看直播',
  faceRoom: '委员会商室',
  faceConsole: '主持控制台',
  viewers: '{n} 人在看',
  viewersLabel: '在线观看人数',
  // connection
  connConnecting: '正在连接…',
  connLive: '已连接',
  connReconnecting: '连接中断，正在重连（第 {n} 次，{s} 秒后）…',
  connReconnectNow: '立即重连',
  connFailed: '无法连接：{msg}',
  connNeedToken: '缺少或无效的入场凭证（请使用主办方提供的链接）',
  resetNotice: '评论已刷新（部分历史不可用）',
  // comments
  comments: '实时评论',
  commentListLabel: '实时评论列表',
  newComments: '{n} 条新评论 ↓',
  newCommentsLabel: '滚动到最新评论',
  nickname: '昵称',
  nicknameLabel: '你的昵称',
  commentPlaceholder: '说说你的意见建议…',
  commentLabel: '评论内容',
  send: '发送',
  sendLabel: '发送评论',
  sending: '发送中…',
  sent: '已发送',
  sentHeld: '已提交，待主持人审核后显示',
  charCount: '{n}/{max}',
  tokenFailed: '获取观看凭证失败：{msg}',
  changeName: '更换昵称',
  changeNameLabel: '使用新昵称重新获取观看凭证',
  // error codes
  err_rate_limited: '发言太快了，请稍候再试',
  err_text_empty: '评论内容不能为空',
  err_text_too_long: '评论太长（最多 {max} 字）',
  err_text_invalid: '评论包含不允许的字符（如换行或控制字符）',
  err_not_allowed: '你目前不能发言（可能已被禁言或仅限实名用户）',
  err_forbidden: '没有权限执行此操作',
  err_unavailable: '服务器暂时不可用，请稍后重试',
  err_bad_name: '昵称无效（1–32 个字符，不含控制字符）',
  err_no_such_topic: '活动不存在',
  err_not_connected: '尚未连接，请稍候',
  err_generic: '出错了：{msg}',
  // slots
  videoSlot: '直播画面',
  videoPending: '直播画面将在媒体信令接入后显示（WHEP）',
  pinnedSlot: '置顶问题',
  pinnedNone: '暂无置顶问题',
  questionsSlot: '网友提问',
  questionsPending: '提问功能即将开放',
  // room
  roomTitle: '委员会商室',
  videoGrid: '视频画面',
  videoGridPending: '视频会商（SFU 信令接入后启用）',
  floor: '发言席',
  floorPending: '发言队列将在议事功能接入后显示',
  raiseHand: '举手申请发言',
  lowerHand: '放下举手',
  mediaControls: '音视频控制',
  mic: '麦克风',
  camera: '摄像头',
  micOn: '关闭麦克风',
  micOff: '打开麦克风',
  camOn: '关闭摄像头',
  camOff: '打开摄像头',
  you: '你：{name}（{role}）',
  notYetAvailable: '该功能尚未接入服务器',
  // console
  consoleTitle: '主持控制台',
  reviewQueue: '待审评论',
  reviewPending: '审核队列将在议事功能接入后显示',
  questionQueue: '提问队列',
  questionQueuePending: '提问队列将在议事功能接入后显示',
  hide: '隐藏',
  hideLabel: '隐藏第 {seq} 条评论',
  role_moderator: '主持人',
  role_member: '委员',
  role_guest: '嘉宾',
  role_viewer: '网友',
  verified: '已实名',
};

type Key = keyof typeof zh;

const en: Record<Key, string> = {
  appName: 'Shangliang · Online consultation',
  langSwitch: '中文',
  langSwitchLabel: 'Switch to Chinese',
  home: 'Home',
  activities: 'Consultations',
  loading: 'Loading…',
  loadFailed: 'Could not load: {msg}',
  noActivities: 'No activities yet',
  stateLive: 'Live',
  stateScheduled: 'Scheduled',
  stateEnded: 'Ended',
  kindLivestream: 'Livestream',
  kindRoom: 'Video room',
  faceWatch: 'Watch',
  faceRoom: 'Member room',
  faceConsole: 'Moderator console',
  viewers: '{n} watching',
  viewersLabel: 'Viewers online',
  connConnecting: 'Connecting…',
  connLive: 'Connected',
  connReconnecting: 'Connection lost, reconnecting (attempt {n}, in {s} s)…',
  connReconnectNow: 'Reconnect now',
  connFailed: 'Cannot connect: {msg}',
  connNeedToken: 'Missing or invalid access token (use the link from the organisers)',
  resetNotice: 'Comments refreshed (some history is unavailable)',
  comments: 'Live comments',
  commentListLabel: 'Live comment list',
  newComments: '{n} new comments ↓',
  newCommentsLabel: 'Scroll to the newest comments',
  nickname: 'Nickname',
  nicknameLabel: 'Your nickname',
  commentPlaceholder: 'Share your opinion…',
  commentLabel: 'Comment',
  send: 'Send',
  sendLabel: 'Send comment',
  sending: 'Sending…',
  sent: 'Sent',
  sentHeld: 'Submitted; it will show after a moderator approves it',
  charCount: '{n}/{max}',
  tokenFailed: 'Could not get a viewer token: {msg}',
  changeName: 'Change nickname',
  changeNameLabel: 'Get a new viewer token with a new nickname',
  err_rate_limited: 'You are posting too fast; wait a moment',
  err_text_empty: 'The comment is empty',
  err_text_too_long: 'The comment is too long (at most {max} characters)',
  err_text_invalid: 'The comment has characters that are not allowed (line breaks, control characters)',
  err_not_allowed: 'You may not post now (muted, or verified users only)',
  err_forbidden: 'Not allowed',
  err_unavailable: 'The server is unavailable; try again later',
  err_bad_name: 'Invalid nickname (1–32 characters, no control characters)',
  err_no_such_topic: 'No such activity',
  err_not_connected: 'Not connected yet; wait a moment',
  err_generic: 'Error: {msg}',
  videoSlot: 'Live video',
  videoPending: 'The video appears once media signalling (WHEP) is connected',
  pinnedSlot: 'Pinned question',
  pinnedNone: 'No pinned question',
  questionsSlot: 'Questions',
  questionsPending: 'Questions open soon',
  roomTitle: 'Member room',
  videoGrid: 'Video',
  videoGridPending: 'Video consultation (enabled once SFU signalling is connected)',
  floor: 'The floor',
  floorPending: 'The speaking queue appears once moderation is connected',
  raiseHand: 'Raise hand to speak',
  lowerHand: 'Lower hand',
  mediaControls: 'Audio and video controls',
  mic: 'Microphone',
  camera: 'Camera',
  micOn: 'Mute microphone',
  micOff: 'Unmute microphone',
  camOn: 'Turn camera off',
  camOff: 'Turn camera on',
  you: 'You: {name} ({role})',
  notYetAvailable: 'Not yet available on the server',
  consoleTitle: 'Moderator console',
  reviewQueue: 'Review queue',
  reviewPending: 'The review queue appears once moderation is connected',
  questionQueue: 'Question queue',
  questionQueuePending: 'The question queue appears once moderation is connected',
  hide: 'Hide',
  hideLabel: 'Hide comment {seq}',
  role_moderator: 'Moderator',
  role_member: 'Member',
  role_guest: 'Guest',
  role_viewer: 'Viewer',
  verified: 'verified',
};

const tables: Record<Lang, Record<Key, string>> = { 'zh-CN': zh, en };

const LANG_KEY = 'shangliang.lang';

function initialLang(): Lang {
  const q = new URLSearchParams(location.search).get('lang');
  if (q === 'en' || q === 'zh-CN') return q;
  const saved = localStorage.getItem(LANG_KEY);
  return saved === 'en' ? 'en' : 'zh-CN';
}

let lang: Lang = initialLang();
const listeners = new Set<() => void>();

export function currentLang(): Lang {
  return lang;
}

export function setLang(l: Lang): void {
  lang = l;
  localStorage.setItem(LANG_KEY, l);
  document.documentElement.lang = l;
  for (const f of listeners) f();
}

/** Called after every language switch (pages re-render their static text). */
export function onLangChange(f: () => void): void {
  listeners.add(f);
}

export function t(key: Key, vars?: Record<string, string | number>): string {
  let s = tables[lang][key] ?? zh[key];
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

export function hasKey(key: string): key is Key {
  return key in zh;
}

export type I18nKey = Key;
