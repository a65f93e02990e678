// conversations.js: the list of saved conversations (newest first, from
// GET /api/conversations), searched by title, with rename (in place) and
// delete (a second press confirms: no confirm() box).

import * as api from './api.js';

const PAGE = 50;
// Drawn, not an emoji: a system without an emoji font shows a box for 🗑.
const TRASH = '<svg class="ico" viewBox="0 0 24 24" aria-hidden="true"><path d="M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6"/></svg>';

// The store's times are Unix milliseconds; seconds are accepted too (a
// value below 1e11 ms would be before 1973).
export function toDate(t) {
  return new Date(t < 1e11 ? t * 1000 : t);
}

// Titles are the first line of the first message, often with Markdown
// emphasis or code marks in it: shown without them.
export function plainTitle(title) {
  return String(title || '').replace(/\*\*|__|`/g, '').replace(/^#+\s*/, '').trim() || 'Untitled';
}

function when(t) {
  if (!t) return '';
  const d = toDate(t);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleDateString([], { month: 'short', day: 'numeric', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric' });
}

export class ConversationList {
  constructor({ listEl, searchEl, moreEl, onOpen, onDeleted, onRenamed, onError }) {
    Object.assign(this, { listEl, searchEl, moreEl, onOpen, onDeleted, onRenamed, onError });
    this.items = [];
    this.nextBefore = null;
    this.activeId = null;
    this.query = '';
    let timer = 0;
    searchEl.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { this.query = searchEl.value.trim(); this.refresh(); }, 200);
    });
    moreEl.addEventListener('click', () => this.load(true));
  }

  refresh() { return this.load(false); }

  async load(more) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (this.query) params.set('q', this.query);
    if (more && this.nextBefore) params.set('before', String(this.nextBefore));
    let page;
    try {
      page = await api.get(`/api/conversations?${params}`);
    } catch (e) {
      this.onError(e);
      return;
    }
    const got = page.conversations || [];
    this.items = more ? [...this.items, ...got] : got;
    this.nextBefore = page.next_before || null;
    this.render();
  }

  setActive(id) {
    this.activeId = id;
    for (const li of this.listEl.children) li.classList.toggle('active', li.dataset.id === String(id));
  }

  render() {
    this.listEl.replaceChildren();
    if (!this.items.length) {
      const li = document.createElement('li');
      li.className = 'conv-none';
      li.textContent = this.query ? 'No conversation has that in its title.' : 'No conversations yet.';
      this.listEl.append(li);
    }
    for (const c of this.items) this.listEl.append(this.itemView(c));
    this.moreEl.hidden = !this.nextBefore;
    this.setActive(this.activeId);
  }

  itemView(c) {
    const li = document.createElement('li');
    li.className = 'conv-item';
    li.dataset.id = String(c.id);
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'conv-open';
    const title = document.createElement('span');
    title.className = 'conv-name';
    title.textContent = plainTitle(c.title);
    const meta = document.createElement('span');
    meta.className = 'conv-when';
    meta.textContent = when(c.updated_at);
    open.append(title, meta);
    open.addEventListener('click', () => this.onOpen(c.id));
    const rename = this.iconButton('✎', `Rename “${plainTitle(c.title)}”`, 'rename');
    rename.addEventListener('click', () => this.startRename(li, c));
    const del = this.iconButton('', `Delete “${plainTitle(c.title)}”`, 'delete');
    del.innerHTML = TRASH;
    del.addEventListener('click', () => this.confirmDelete(del, c));
    li.append(open, rename, del);
    return li;
  }

  iconButton(text, label, cls) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `btn icon small ${cls}`;
    b.textContent = text;
    b.title = label;
    b.setAttribute('aria-label', label);
    return b;
  }

  startRename(li, c) {
    const input = document.createElement('input');
    input.className = 'conv-rename';
    input.value = c.title || '';
    input.setAttribute('aria-label', 'New title (Enter saves, Esc cancels)');
    li.replaceChildren(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== c.title) {
        try {
          await api.patch(`/api/conversations/${c.id}`, { title });
          c.title = title;
          this.onRenamed(c.id, title);
        } catch (e) { this.onError(e); }
      }
      this.render();
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); finish(true); }
      else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); finish(false); }
    });
    input.addEventListener('blur', () => finish(true));
  }

  async confirmDelete(btn, c) {
    if (!btn.classList.contains('confirm')) {
      btn.classList.add('confirm');
      btn.textContent = 'Delete?';
      setTimeout(() => { if (btn.isConnected) { btn.classList.remove('confirm'); btn.innerHTML = TRASH; } }, 3000);
      return;
    }
    try {
      await api.del(`/api/conversations/${c.id}`);
    } catch (e) {
      this.onError(e);
      return;
    }
    this.items = this.items.filter((x) => x.id !== c.id);
    this.render();
    this.onDeleted(c.id);
  }
}
