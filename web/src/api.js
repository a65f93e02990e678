// api.js: the server's native API (/api/...) from the page. Every request
// goes through request(): JSON errors ({error: {message, type, code}})
// become ApiError; a 401 asks for the API key once (an in-page dialog),
// keeps it in localStorage and retries with `Authorization: Bearer KEY`.

import { readSSE } from './sse.js';

const KEY_STORAGE = 'gemma-chat.api-key';

export class ApiError extends Error {
  constructor(status, message, type = '', code = '') {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code;
  }
}

function storedKey() {
  try { return localStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
}

function storeKey(key) {
  try { localStorage.setItem(KEY_STORAGE, key); } catch { /* private mode: kept for this page only */ }
}

let sessionKey = storedKey();
let keyPrompt = null; // one dialog at a time, shared by concurrent requests

// Shows the key dialog; resolves to the key, or null when cancelled.
function askForKey(refused) {
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById('key-dialog');
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  const cancel = document.getElementById('key-cancel');
  document.getElementById('key-message').textContent = refused
    ? 'The server refused the API key. Enter the right one (it is kept in this browser).'
    : 'This server needs an API key. It is kept in this browser.';
  input.value = '';
  keyPrompt = new Promise((resolve) => {
    const done = (key) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      keyPrompt = null;
      resolve(key);
    };
    const onSubmit = (e) => { e.preventDefault(); done(input.value.trim() || null); };
    const onCancel = (e) => { e.preventDefault(); done(null); };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    input.focus();
  });
  return keyPrompt;
}

async function errorFrom(res) {
  let message = `${res.status} ${res.statusText}`, type = '', code = '';
  try {
    const body = await res.json();
    if (body && body.error) {
      message = body.error.message || message;
      type = body.error.type || '';
      code = body.error.code || '';
    }
  } catch { /* not JSON: the status line says it */ }
  return new ApiError(res.status, message, type, code);
}

// fetch() with the key; a 401 asks for one (once per refusal) and retries.
async function send(path, init = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(init.headers || {});
    if (sessionKey) headers.set('Authorization', `Bearer ${sessionKey}`);
    let res;
    try {
      res = await fetch(path, { ...init, headers });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'The server cannot be reached. Is gemma-chat serve still running?', 'network');
    }
    if (res.status !== 401 || attempt >= 3) {
      if (!res.ok) throw await errorFrom(res);
      return res;
    }
    const key = await askForKey(Boolean(sessionKey));
    if (!key) throw await errorFrom(res);
    sessionKey = key;
    storeKey(key);
  }
}

function jsonInit(method, body, signal) {
  const init = { method, signal };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  return init;
}

export async function request(method, path, body, signal) {
  const res = await send(path, jsonInit(method, body, signal));
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, signal) => request('GET', path, undefined, signal);
export const post = (path, body, signal) => request('POST', path, body, signal);
export const patch = (path, body) => request('PATCH', path, body);
export const del = (path) => request('DELETE', path);

// A response's bytes (an export, an attachment) as a Blob.
export async function blob(path) {
  return (await send(path)).blob();
}

// An attachment's bytes as a blob: URL (an <img src> could not carry the key).
const blobUrls = new Map();
export async function attachmentUrl(id) {
  if (!blobUrls.has(id)) {
    blobUrls.set(id, send(`/api/attachments/${encodeURIComponent(id)}`)
      .then((res) => res.blob())
      .then((blob) => URL.createObjectURL(blob))
      .catch((e) => { blobUrls.delete(id); throw e; }));
  }
  return blobUrls.get(id);
}

// POSTs with stream: true and reads the SSE answer: onToken(text) for each
// `token` event; resolves to the `done` event's object; an `error` event
// (or a refusal before the stream) rejects with ApiError.
export async function stream(path, body, onToken, signal) {
  const res = await send(path, jsonInit('POST', { ...body, stream: true }, signal));
  const type = res.headers.get('Content-Type') || '';
  if (!type.includes('text/event-stream')) return res.json(); // a server that answered at once
  let result = null;
  for await (const ev of readSSE(res.body)) {
    let data;
    try { data = JSON.parse(ev.data); } catch { continue; }
    if (ev.event === 'token') onToken(data.text || '');
    else if (ev.event === 'done') result = data;
    else if (ev.event === 'error') {
      const e = data.error || {};
      throw new ApiError(e.status || 500, e.message || 'the answer failed', e.type || '', e.code || '');
    }
  }
  if (!result) throw new ApiError(0, 'The answer ended before it was complete (the connection closed).', 'network');
  return result;
}
