// markdown.js: message text to safe HTML. marked parses the Markdown; raw
// HTML in the text is shown as text, never interpreted (a user who types
// <img ...> sees what they typed); DOMPurify then cleans what marked made,
// links are kept only with safe schemes and open in a new tab without
// access to this page; code blocks are highlighted by highlight.js and get
// a copy button. Everything is bundled: nothing is fetched at run time.

import { Marked } from 'marked';
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/common';

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

const SAFE_SCHEMES = /^(https?:|mailto:)/i;

// Relative links (#x, /x) have no scheme; anything with one must be safe.
export function safeHref(href) {
  const h = String(href || '').trim();
  // Control characters and spaces inside a scheme can hide "javascript:".
  const plain = h.replace(/[\u0000-\u0020\u007f-\u009f]/g, '');
  if (/^[a-z][a-z0-9+.-]*:/i.test(plain)) return SAFE_SCHEMES.test(plain) ? h : null;
  if (plain.startsWith('//')) return null; // scheme-relative: another origin
  return h;
}

const marked = new Marked({ gfm: true, breaks: true });
marked.use({
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    link({ href, title, tokens }) {
      const inner = this.parser.parseInline(tokens);
      const safe = safeHref(href);
      if (!safe) return `<span class="unsafe-link" title="link removed: unsafe address">${inner}</span>`;
      const t = title ? ` title="${escapeHtml(title)}"` : '';
      return `<a href="${escapeHtml(safe)}"${t} target="_blank" rel="noopener noreferrer">${inner}</a>`;
    },
    image({ href, text }) {
      // Remote images would leak that the page was read (and the CSP
      // blocks them anyway): show the address as a link instead.
      const safe = safeHref(href);
      const label = escapeHtml(text || href || 'image');
      return safe ? `<a href="${escapeHtml(safe)}" target="_blank" rel="noopener noreferrer">[image: ${label}]</a>`
        : `[image: ${label}]`;
    },
    code({ text, lang }) {
      const language = (lang || '').trim().split(/\s+/)[0].toLowerCase();
      let html;
      if (language && hljs.getLanguage(language)) {
        try { html = hljs.highlight(text, { language, ignoreIllegals: true }).value; } catch { html = null; }
      }
      const label = language ? `<span class="code-lang">${escapeHtml(language)}</span>` : '';
      return `<div class="code-block">${label}<pre><code class="hljs${language ? ` language-${escapeHtml(language)}` : ''}">${
        html ?? escapeHtml(text)}</code></pre></div>`;
    },
  },
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'img', 'video', 'audio', 'iframe'],
  FORBID_ATTR: ['style', 'srcset'],
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
};

// A second line of defence after the renderer: whatever DOMPurify keeps, a
// link keeps only a safe href, and always opens apart from this page.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    const safe = node.hasAttribute('href') ? safeHref(node.getAttribute('href')) : null;
    if (safe) node.setAttribute('href', safe); else node.removeAttribute('href');
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

export function renderMarkdown(text) {
  const html = marked.parse(String(text ?? ''), { async: false });
  return DOMPurify.sanitize(html, PURIFY);
}

// Fills el with the rendered text and adds a copy button to each code block.
export function setMarkdown(el, text, copy) {
  el.innerHTML = renderMarkdown(text);
  for (const block of el.querySelectorAll('.code-block')) {
    const code = block.querySelector('code');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'btn tiny copy-code';
    btn.textContent = 'Copy';
    btn.setAttribute('aria-label', 'Copy code');
    btn.addEventListener('click', () => copy(code.textContent, btn));
    block.prepend(btn);
  }
}
