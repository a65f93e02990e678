// attachments.js: the files waiting to be sent with the next message:
// which kinds the server takes, the limits checked before anything is
// uploaded (images per message, the request's size), the chips shown
// under the message box, and the files as base64 for the JSON request.

const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'];
const VIDEO_TYPES = { 'video/mp4': 'mp4', 'video/quicktime': 'mov' };
const TEXT_EXT = new Set(['txt', 'md', 'markdown', 'csv', 'tsv', 'json', 'yaml', 'yml', 'toml', 'ini', 'xml', 'html',
  'htm', 'css', 'js', 'mjs', 'cjs', 'ts', 'tsx', 'jsx', 'py', 'rb', 'go', 'rs', 'c', 'h', 'cc', 'cpp', 'hpp', 'cxx',
  'java', 'kt', 'swift', 'cs', 'php', 'sh', 'bash', 'zsh', 'sql', 'r', 'lua', 'pl', 'scala', 'hs', 'ml', 'el', 'clj',
  'tex', 'rst', 'log', 'conf', 'cfg', 'cmake', 'mk', 'dockerfile', 'gradle', 'vue', 'svelte', 'dart', 'zig', 'nim']);
const EXT_TYPES = { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif',
  pdf: 'application/pdf', mp4: 'video/mp4', mov: 'video/quicktime' };

const ext = (name) => { const m = /\.([^./]+)$/.exec(name || ''); return m ? m[1].toLowerCase() : ''; };

// {kind: 'image'|'pdf'|'text'|'video', type} or {error}.
export function classify(file, info) {
  const e = ext(file.name);
  let type = (file.type || EXT_TYPES[e] || '').toLowerCase();
  if (IMAGE_TYPES.includes(type)) return { kind: 'image', type };
  if (type === 'application/pdf') return { kind: 'pdf', type };
  if (VIDEO_TYPES[type]) {
    if (info && info.video) return { kind: 'video', type };
    return { error: `${file.name}: this server cannot read videos (it has no vision projector)` };
  }
  if (type.startsWith('text/') || TEXT_EXT.has(e) || type === 'application/json' || type === 'application/xml'
      || (!type && /^(makefile|dockerfile|readme|license)$/i.test(file.name))) {
    if (!type || !type.startsWith('text/')) type = e === 'json' ? 'application/json' : 'text/plain';
    return { kind: 'text', type };
  }
  return { error: `${file.name}: not an image (JPEG, PNG, WebP, GIF), a PDF, a text or code file${
    info && info.video ? ', or a video (MP4, MOV)' : ''}` };
}

export function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// The JSON request's size with these files in base64 (4 bytes per 3), plus
// the text and some room for the field names.
export function requestSize(text, files) {
  let n = 256 + new TextEncoder().encode(JSON.stringify(text || '')).length;
  for (const f of files) n += Math.ceil(f.file.size / 3) * 4 + 128 + f.file.name.length * 2;
  return n;
}

// Is the message sendable? null, or the reason in words.
export function checkLimits(text, files, maxImages, maxBody) {
  const images = files.filter((f) => f.kind === 'image').length;
  if (maxImages >= 0 && images > maxImages) {
    return `This message has ${images} images; the conversation allows ${maxImages} per message `
      + '(Settings → Max images). Remove some, or raise the limit.';
  }
  const size = requestSize(text, files);
  if (maxBody && size > maxBody) {
    return `The attachments are too large: the request would be ${formatSize(size)}, and the server takes at most `
      + `${formatSize(maxBody)} (gemma-chat serve --max-body).`;
  }
  return null;
}

function base64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error || new Error(`cannot read ${file.name}`));
    r.readAsDataURL(file);
  });
}

export async function toRequest(files) {
  return Promise.all(files.map(async (f) => ({ name: f.file.name, type: f.type, data: await base64(f.file) })));
}

// The chips under the message box; onRemove(index) when one's × is pressed.
export function renderChips(el, files, onRemove) {
  el.replaceChildren();
  files.forEach((f, i) => {
    const chip = document.createElement('div');
    chip.className = `chip ${f.kind}`;
    if (f.kind === 'image') {
      if (!f.preview) f.preview = URL.createObjectURL(f.file);
      const img = document.createElement('img');
      img.src = f.preview;
      img.alt = '';
      chip.append(img);
    } else {
      const badge = document.createElement('span');
      badge.className = 'chip-kind';
      badge.textContent = f.kind === 'pdf' ? 'PDF' : f.kind === 'video' ? 'VIDEO' : 'TEXT';
      chip.append(badge);
    }
    const label = document.createElement('span');
    label.className = 'chip-name';
    label.textContent = `${f.file.name} · ${formatSize(f.file.size)}`;
    const x = document.createElement('button');
    x.type = 'button';
    x.className = 'chip-remove';
    x.setAttribute('aria-label', `Remove ${f.file.name}`);
    x.textContent = '×';
    x.addEventListener('click', () => onRemove(i));
    chip.append(label, x);
    el.append(chip);
  });
  el.hidden = files.length === 0;
}

export function release(files) {
  for (const f of files) if (f.preview) URL.revokeObjectURL(f.preview);
}
