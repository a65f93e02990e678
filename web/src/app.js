// app.js: the chat page. One conversation is open at a time (its id in the
// address: #c=ID, so a reload reopens it); the server's store holds
// everything, and after each answer the page reads the conversation back
// from it, so what is shown is what was saved.

import './style.css';
import * as api from './api.js';
import { setMarkdown } from './markdown.js';
import { classify, checkLimits, toRequest, renderChips, release, formatSize } from './attachments.js';
import { SettingsPanel } from './settings.js';
import { ConversationList, plainTitle } from './conversations.js';

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const S = {
  info: null,
  conv: null,          // the open conversation as GET /api/conversations/{id} gives it; null: a new one
  pending: [],         // {file, kind, type, preview?}: attachments for the next message
  busy: false,         // an answer is being generated
  controller: null,    // aborts the answer's fetch
  stopTimer: 0,
  stopRequested: false,
};

const ui = {};

// ---- small helpers ----------------------------------------------------------

async function copyText(text, btn) {
  try {
    if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
    else {
      // Plain http on another host is not a secure context: the old way.
      const ta = el('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.className = 'offscreen';
      document.body.append(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
    }
    if (btn) flash(btn, 'Copied');
  } catch {
    if (btn) flash(btn, 'Copy failed');
  }
}

function flash(btn, text) {
  const old = btn.dataset.label || btn.textContent;
  btn.dataset.label = old;
  btn.textContent = text;
  setTimeout(() => { btn.textContent = old; }, 1200);
}

function showNotice(text) {
  ui.notice.textContent = text || '';
  ui.notice.hidden = !text;
}

function nearBottom() {
  const t = ui.transcript;
  return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
}

function scrollToBottom(force) {
  if (force || nearBottom()) ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function describeError(e) {
  if (e instanceof api.ApiError) {
    if (e.status === 409) return `${e.message} (an answer is still being written in this conversation: wait, or press Stop)`;
    return e.message;
  }
  return e && e.message ? e.message : String(e);
}

// ---- the transcript -----------------------------------------------------------

function attachmentView(a) {
  const isImage = /^image\//.test(a.type || '');
  const box = el('button', isImage ? 'att att-image' : 'att att-file');
  box.type = 'button';
  box.title = `${a.name} (${formatSize(a.size || 0)}) — open`;
  if (isImage) {
    const img = el('img');
    img.alt = a.name;
    if (a.preview) img.src = a.preview;
    else if (a.id !== undefined) api.attachmentUrl(a.id).then((u) => { img.src = u; }).catch(() => { img.alt = `${a.name} (not loaded)`; });
    box.append(img);
  } else {
    box.append(el('span', 'chip-kind', /pdf/.test(a.type) ? 'PDF' : /^video\//.test(a.type) ? 'VIDEO' : 'TEXT'),
      el('span', 'chip-name', `${a.name} · ${formatSize(a.size || 0)}`));
  }
  if (a.id !== undefined) {
    box.addEventListener('click', async () => {
      try {
        const url = await api.attachmentUrl(a.id);
        const link = el('a');
        link.href = url;
        if (isImage) link.target = '_blank'; else link.download = a.name;
        link.rel = 'noopener';
        link.click();
      } catch (e) { showError(e); }
    });
  }
  return box;
}

function messageView(m, { last, lastUser }) {
  const art = el('article', `msg ${m.role === 'user' ? 'user' : 'assistant'}`);
  if (m.id !== undefined) art.dataset.id = m.id;
  art.append(el('div', 'msg-role', m.role === 'user' ? 'You' : 'Gemma'));
  if (m.attachments && m.attachments.length) {
    const atts = el('div', 'msg-attachments');
    for (const a of m.attachments) atts.append(attachmentView(a));
    art.append(atts);
  }
  const body = el('div', 'msg-body markdown');
  setMarkdown(body, m.content || '', copyText);
  art.append(body);
  if (m.role === 'assistant') {
    const meta = el('div', 'msg-meta');
    if (m.stopped) meta.append(el('span', 'badge stopped', 'stopped'));
    else if (m.finish_reason === 'max_tokens' || m.finish_reason === 'length') {
      meta.append(el('span', 'badge', 'cut at the token limit'));
    }
    const tps = tokensPerSecond(m);
    if (tps) meta.append(el('span', 'meta-text', `${m.usage.completion_tokens} tokens · ${tps.toFixed(1)} tok/s`));
    if (meta.childNodes.length) art.append(meta);
  }
  const actions = el('div', 'msg-actions');
  const copy = el('button', 'btn tiny', 'Copy');
  copy.type = 'button';
  copy.addEventListener('click', () => copyText(m.content || '', copy));
  actions.append(copy);
  if (m.role === 'assistant' && last) {
    const regen = el('button', 'btn tiny', 'Regenerate');
    regen.type = 'button';
    regen.dataset.action = 'regenerate';
    regen.addEventListener('click', () => regenerate());
    actions.append(regen);
  }
  if (m.role === 'user' && lastUser) {
    const edit = el('button', 'btn tiny', 'Edit');
    edit.type = 'button';
    edit.dataset.action = 'edit';
    edit.addEventListener('click', () => startEdit(art, m));
    actions.append(edit);
  }
  art.append(actions);
  return art;
}

function tokensPerSecond(m) {
  if (!m.usage || !m.timings) return 0;
  if (m.timings.tokens_per_s) return m.timings.tokens_per_s;
  return m.timings.generate_s > 0 ? m.usage.completion_tokens / m.timings.generate_s : 0;
}

function renderTranscript() {
  const msgs = (S.conv && S.conv.messages) || [];
  ui.transcript.replaceChildren();
  if (!msgs.length) {
    ui.transcript.append(ui.empty);
    return;
  }
  let lastUser = -1;
  msgs.forEach((m, i) => { if (m.role === 'user') lastUser = i; });
  msgs.forEach((m, i) => {
    ui.transcript.append(messageView(m, { last: i === msgs.length - 1, lastUser: i === lastUser }));
  });
  scrollToBottom(true);
}

function appendError(e) {
  const box = el('div', 'msg error');
  box.setAttribute('role', 'alert');
  box.append(el('strong', '', 'Error: '), el('span', '', describeError(e)));
  ui.empty.remove();
  ui.transcript.append(box);
  scrollToBottom(true);
}
const showError = appendError;

// An answer being written: returns {onToken, body, art}.
function streamingView() {
  ui.empty.remove();
  const art = el('article', 'msg assistant streaming');
  art.append(el('div', 'msg-role', 'Gemma'));
  const body = el('div', 'msg-body markdown');
  body.append(el('span', 'typing', '…'));
  art.append(body);
  ui.transcript.append(art);
  scrollToBottom(true);
  let text = '';
  let timer = 0;
  let last = 0;
  const render = () => {
    timer = 0;
    last = performance.now();
    const stick = nearBottom();
    setMarkdown(body, text, copyText);
    if (stick) scrollToBottom(true);
  };
  // The first text shows at once; then Markdown is rendered at most every
  // 40 ms: a fast model sends tokens quicker than re-rendering the whole
  // answer for each would keep up with. A timer, not requestAnimationFrame:
  // in a background tab that would hold everything back to the end.
  const onToken = (t) => {
    text += t;
    if (timer) return;
    const wait = 40 - (performance.now() - last);
    if (wait <= 0) render();
    else timer = setTimeout(render, wait);
  };
  return { art, body, onToken, text: () => text };
}

// ---- status ---------------------------------------------------------------------

function setStatus({ tps, used, nCtx, dropped }) {
  const parts = [];
  if (S.info && S.info.model) parts.push(S.info.model);
  if (tps) parts.push(`${tps.toFixed(1)} tok/s`);
  if (used && nCtx) parts.push(`context ${used} / ${nCtx} (${Math.round((100 * used) / nCtx)}%)`);
  else if (nCtx) parts.push(`context size ${nCtx}`);
  ui.status.replaceChildren(...parts.map((p, i) => el('span', i === 0 ? 'status-model' : 'status-item', p)));
  if (dropped) {
    ui.status.append(el('span', 'status-warn',
      `${dropped} earlier turn${dropped === 1 ? '' : 's'} left out to fit the context`));
  }
}

function statusFromConversation() {
  const nCtx = S.info ? S.info.n_ctx : 0;
  const msgs = (S.conv && S.conv.messages) || [];
  const last = [...msgs].reverse().find((m) => m.role === 'assistant' && m.usage);
  if (!last) return setStatus({ nCtx });
  setStatus({
    tps: tokensPerSecond(last),
    used: (last.usage.prompt_tokens || 0) + (last.usage.completion_tokens || 0),
    nCtx,
    dropped: last.dropped_turns || 0,
  });
}

function statusFromResult(r) {
  const u = r.usage || {};
  const t = r.timings || {};
  setStatus({
    tps: t.tokens_per_s || (t.generate_s > 0 ? (u.completion_tokens || 0) / t.generate_s : 0),
    used: (u.prompt_tokens || 0) + (u.completion_tokens || 0),
    nCtx: r.n_ctx || (S.info ? S.info.n_ctx : 0),
    dropped: r.dropped_turns || 0,
  });
}

// ---- conversations ----------------------------------------------------------------

function setTitle() {
  const title = S.conv ? plainTitle(S.conv.title) : 'New chat';
  ui.exportBtn.hidden = !S.conv;
  ui.title.textContent = title;
  document.title = S.conv ? `${title} · gemma-chat` : 'gemma-chat';
}

function setHash(id) {
  const want = id ? `#c=${id}` : '';
  if (location.hash !== want) history.replaceState(null, '', want || location.pathname);
}

async function openConversation(id) {
  if (S.busy) return;
  try {
    S.conv = await api.get(`/api/conversations/${encodeURIComponent(id)}`);
  } catch (e) {
    S.conv = null;
    setHash(null);
    renderAll();
    appendError(e.status === 404 ? new Error(`Conversation ${id} no longer exists.`) : e);
    return;
  }
  setHash(S.conv.id);
  settings.load(S.conv);
  renderAll();
  closeDrawers();
  ui.input.focus();
}

function newConversation() {
  if (S.busy) return;
  S.conv = null;
  setHash(null);
  settings.reset();
  renderAll();
  closeDrawers();
  ui.input.focus();
}

function renderAll() {
  setTitle();
  renderTranscript();
  statusFromConversation();
  list.setActive(S.conv ? S.conv.id : null);
}

async function reloadConversation() {
  if (!S.conv) return;
  try {
    S.conv = await api.get(`/api/conversations/${S.conv.id}`);
  } catch (e) {
    appendError(e);
    return;
  }
  renderAll();
}

// Settings changes go onto the open conversation; a new one gets them when
// it is created with the first message.
let patchQueue = Promise.resolve();
function onSettingsChange(change) {
  if (!S.conv) return;
  const id = S.conv.id;
  patchQueue = patchQueue.then(async () => {
    try {
      const c = await api.patch(`/api/conversations/${id}`, change);
      if (S.conv && S.conv.id === id && c) {
        if (c.system !== undefined) S.conv.system = c.system;
        if (c.preset !== undefined) S.conv.preset = c.preset;
        if (c.settings) S.conv.settings = c.settings;
      }
    } catch (e) {
      appendError(e);
    }
  });
}

// The conversation as Markdown (the server's export), saved as a file.
async function exportConversation() {
  if (!S.conv) return;
  try {
    const data = await api.blob(`/api/conversations/${S.conv.id}/export?format=md`);
    const link = el('a');
    link.href = URL.createObjectURL(data);
    link.download = `${(S.conv.title || 'conversation').replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_').slice(0, 80)}.md`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (e) {
    appendError(e);
  }
}

// ---- sending ---------------------------------------------------------------------------

function setBusy(busy) {
  S.busy = busy;
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  document.body.classList.toggle('busy', busy);
  for (const b of ui.transcript.querySelectorAll('[data-action]')) b.disabled = busy;
}

// Runs one answer: post() starts it (with the AbortSignal and onToken) and
// resolves to the done object. Returns it, or null on failure (shown).
async function runAnswer(post) {
  setBusy(true);
  S.stopRequested = false;
  S.controller = new AbortController();
  const view = streamingView();
  let result = null;
  let failure = null;
  try {
    result = await post(S.controller.signal, view.onToken);
  } catch (e) {
    failure = e;
  } finally {
    clearTimeout(S.stopTimer);
    S.controller = null;
    setBusy(false);
  }
  await reloadConversation();
  await list.refresh();
  if (failure && !(failure.name === 'AbortError' && S.stopRequested)) appendError(failure);
  else if (failure) appendError(new Error('Stopped; the server did not confirm, so the partial answer may not be saved.'));
  if (result) statusFromResult(result);
  // A counter the browser tests wait on: one more answer is over (done, stopped or failed).
  document.body.dataset.answers = String(Number(document.body.dataset.answers || 0) + 1);
  return failure ? null : result;
}

async function sendMessage() {
  if (S.busy) return;
  const text = ui.input.value;
  const files = S.pending;
  if (!text.trim() && !files.length) return;
  const problem = checkLimits(text, files, settings.maxImages(), S.info ? S.info.max_body : 0);
  if (problem) {
    showNotice(problem);
    return;
  }
  showNotice('');
  let attachments;
  try {
    attachments = await toRequest(files);
  } catch (e) {
    showNotice(`Cannot read the attachment: ${describeError(e)}`);
    return;
  }
  if (!S.conv) {
    try {
      const created = await api.post('/api/conversations', settings.value());
      S.conv = { messages: [], ...created };
      setHash(S.conv.id);
    } catch (e) {
      appendError(e);
      return;
    }
  }
  // Shown at once; replaced by the saved message when the answer is done.
  ui.empty.remove();
  const local = { role: 'user', content: text,
    attachments: files.map((f) => ({ name: f.file.name, type: f.type, size: f.file.size, preview: f.preview })) };
  ui.transcript.append(messageView(local, {}));
  ui.input.value = '';
  autoGrow();
  S.pending = [];
  renderChips(ui.chips, S.pending, removePending);
  const id = S.conv.id;
  const body = { content: text };
  if (attachments.length) body.attachments = attachments;
  const result = await runAnswer((signal, onToken) =>
    api.stream(`/api/conversations/${id}/messages`, body, onToken, signal));
  if (!result && !ui.input.value && !(S.conv.messages || []).some((m) => m.role === 'user' && m.content === text)) {
    // Refused before it was saved: the text comes back to the box to try again.
    ui.input.value = text;
    S.pending = files;
    renderChips(ui.chips, S.pending, removePending);
    autoGrow();
  } else {
    release(files);
  }
}

function regenerate() {
  if (S.busy || !S.conv) return;
  const id = S.conv.id;
  const msgs = S.conv.messages || [];
  if (msgs.length && msgs[msgs.length - 1].role === 'assistant') {
    ui.transcript.querySelector('article.msg.assistant:last-of-type')?.remove();
  }
  return runAnswer((signal, onToken) => api.stream(`/api/conversations/${id}/regenerate`, {}, onToken, signal));
}

function startEdit(art, m) {
  if (S.busy) return;
  const body = art.querySelector('.msg-body');
  const actions = art.querySelector('.msg-actions');
  const box = el('div', 'edit-box');
  const ta = el('textarea', 'input edit-input');
  ta.value = m.content || '';
  ta.setAttribute('aria-label', 'Edit the message');
  const save = el('button', 'btn primary tiny', 'Send edited');
  save.type = 'button';
  const cancel = el('button', 'btn tiny', 'Cancel');
  cancel.type = 'button';
  const row = el('div', 'msg-actions');
  row.append(save, cancel);
  box.append(ta, row);
  body.hidden = true;
  actions.hidden = true;
  art.append(box);
  ta.focus();
  const close = () => { box.remove(); body.hidden = false; actions.hidden = false; };
  cancel.addEventListener('click', close);
  const submit = () => {
    const text = ta.value;
    if (!text.trim() && !(m.attachments || []).length) return;
    const id = S.conv.id;
    // Everything after the edited message goes; the edit is shown in its place.
    let node = art.nextSibling;
    while (node) { const next = node.nextSibling; node.remove(); node = next; }
    close();
    setMarkdown(body, text, copyText);
    runAnswer((signal, onToken) =>
      api.stream(`/api/conversations/${id}/edit`, { content: text, keep_attachments: true }, onToken, signal));
  };
  save.addEventListener('click', submit);
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
  });
}

// Stop asks the server to end the answer (it saves the part written so far,
// marked stopped, and ends the stream with `done`); if the server does not
// answer, the connection is dropped, which cancels it too.
async function stopAnswer() {
  if (!S.busy || !S.conv || S.stopRequested) return;
  S.stopRequested = true;
  const controller = S.controller;
  const abort = () => { if (controller) controller.abort(); };
  S.stopTimer = setTimeout(abort, 5000);
  try {
    await api.post(`/api/conversations/${S.conv.id}/stop`, {});
  } catch {
    abort();
  }
}

// ---- attachments -------------------------------------------------------------------

function removePending(i) {
  release(S.pending.splice(i, 1));
  renderChips(ui.chips, S.pending, removePending);
  showNotice('');
}

function addFiles(fileList) {
  const refused = [];
  for (const file of fileList) {
    const c = classify(file, S.info);
    if (c.error) refused.push(c.error);
    else S.pending.push({ file, kind: c.kind, type: c.type });
  }
  renderChips(ui.chips, S.pending, removePending);
  const problem = checkLimits(ui.input.value, S.pending, settings.maxImages(), S.info ? S.info.max_body : 0);
  showNotice([...refused, problem].filter(Boolean).join(' '));
}

// ---- layout: drawers, the message box --------------------------------------------------

function closeDrawers() {
  ui.sidebar.classList.remove('open');
  ui.toggleSidebar.setAttribute('aria-expanded', 'false');
  if (window.matchMedia('(max-width: 760px)').matches) setSettingsOpen(false);
  ui.scrim.hidden = true;
}

function setSettingsOpen(open) {
  ui.settings.hidden = !open;
  ui.toggleSettings.setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('settings-open', open);
  try { localStorage.setItem('gemma-chat.settings-open', open ? '1' : ''); } catch { /* not kept */ }
  const narrow = window.matchMedia('(max-width: 760px)').matches;
  ui.scrim.hidden = !(narrow && (open || ui.sidebar.classList.contains('open')));
}

function autoGrow() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 220)}px`;
}

function wire() {
  ui.form.addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendMessage();
    }
  });
  ui.input.addEventListener('input', autoGrow);
  ui.input.addEventListener('paste', (e) => {
    const files = e.clipboardData ? [...e.clipboardData.files] : [];
    if (files.length) {
      e.preventDefault();
      addFiles(files);
    }
  });
  ui.stop.addEventListener('click', stopAnswer);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || ui.keyDialog.open) return;
    if (S.busy) {
      e.preventDefault();
      stopAnswer();
    } else if (ui.sidebar.classList.contains('open') || (!ui.settings.hidden && ui.scrim.hidden === false)) {
      closeDrawers();
    }
  });
  ui.attach.addEventListener('click', () => ui.fileInput.click());
  ui.fileInput.addEventListener('change', () => {
    addFiles([...ui.fileInput.files]);
    ui.fileInput.value = '';
  });
  // Drag and drop anywhere on the page; the overlay says it is understood.
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    depth++;
    ui.dropOverlay.hidden = false;
  });
  document.addEventListener('dragleave', () => {
    if (--depth <= 0) { depth = 0; ui.dropOverlay.hidden = true; }
  });
  document.addEventListener('dragover', (e) => { if (hasFiles(e)) e.preventDefault(); });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    ui.dropOverlay.hidden = true;
    addFiles([...e.dataTransfer.files]);
  });
  $('new-chat').addEventListener('click', newConversation);
  ui.exportBtn.addEventListener('click', exportConversation);
  ui.toggleSidebar.addEventListener('click', () => {
    const open = !ui.sidebar.classList.contains('open');
    ui.sidebar.classList.toggle('open', open);
    ui.toggleSidebar.setAttribute('aria-expanded', String(open));
    ui.scrim.hidden = !open;
    if (open) $('search').focus();
  });
  ui.toggleSettings.addEventListener('click', () => setSettingsOpen(ui.settings.hidden));
  $('close-settings').addEventListener('click', () => setSettingsOpen(false));
  ui.scrim.addEventListener('click', closeDrawers);
  window.addEventListener('hashchange', () => {
    const id = idFromHash();
    if (id && (!S.conv || String(S.conv.id) !== id)) openConversation(id);
  });
}

function idFromHash() {
  const m = /^#c=([A-Za-z0-9_-]+)$/.exec(location.hash);
  return m ? m[1] : null;
}

// ---- start -------------------------------------------------------------------------------

let settings;
let list;

async function start() {
  for (const [k, id] of Object.entries({
    transcript: 'transcript', empty: 'empty', notice: 'notice', chips: 'chips', form: 'composer-form',
    input: 'input', send: 'send', stop: 'stop', attach: 'attach', fileInput: 'file-input', status: 'status',
    title: 'conv-title', modelName: 'model-name', sidebar: 'sidebar', scrim: 'scrim', settings: 'settings',
    toggleSidebar: 'toggle-sidebar', toggleSettings: 'toggle-settings', dropOverlay: 'drop-overlay',
    keyDialog: 'key-dialog', exportBtn: 'export',
  })) ui[k] = $(id);

  settings = new SettingsPanel({
    presetSelect: $('preset'), systemInput: $('system'), slidersEl: $('sliders'), onChange: onSettingsChange,
  });
  list = new ConversationList({
    listEl: $('conv-list'), searchEl: $('search'), moreEl: $('more-convs'),
    onOpen: (id) => openConversation(id),
    onDeleted: (id) => { if (S.conv && S.conv.id === id) newConversation(); },
    onRenamed: (id, title) => { if (S.conv && S.conv.id === id) { S.conv.title = title; setTitle(); } },
    onError: appendError,
  });
  wire();

  let wideOpen = '';
  try { wideOpen = localStorage.getItem('gemma-chat.settings-open') || ''; } catch { /* none */ }
  setSettingsOpen(Boolean(wideOpen) && !window.matchMedia('(max-width: 760px)').matches);

  try {
    const [info, catalog] = await Promise.all([api.get('/api/info'), api.get('/api/presets')]);
    S.info = info;
    ui.modelName.textContent = info.model || '';
    if (info.video) ui.fileInput.accept = 'image/*,application/pdf,text/*,video/mp4,video/quicktime,.md,.py,.c,.h,.js,.ts,.json';
    else ui.fileInput.accept = 'image/jpeg,image/png,image/webp,image/gif,application/pdf,text/*,.md,.py,.c,.h,.js,.ts,.json,.csv';
    settings.init(catalog);
  } catch (e) {
    appendError(e);
    return;
  }
  await list.refresh();
  const id = idFromHash();
  if (id) await openConversation(id);
  else renderAll();
  document.body.classList.add('ready');
  ui.input.focus();
}

document.addEventListener('DOMContentLoaded', start);
