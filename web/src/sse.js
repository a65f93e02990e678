// sse.js: Server-Sent Events read from a fetch() body. EventSource cannot
// POST (nor send an Authorization header), so the page reads the stream
// itself: events are separated by a blank line; "event:" names one, "data:"
// lines (joined by newlines) carry it, lines starting with ":" are comments.

export async function* readSSE(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = findEventEnd(buf))) {
        const block = buf.slice(0, end.index);
        buf = buf.slice(end.index + end.length);
        const ev = parseBlock(block);
        if (ev) yield ev;
      }
    }
    const ev = parseBlock(buf); // a last event without its blank line
    if (ev) yield ev;
  } finally {
    reader.releaseLock();
  }
}

// The end of the first event in buf: a blank line in any of the three
// line-ending styles the format allows.
function findEventEnd(buf) {
  const m = /\r\n\r\n|\n\n|\r\r/.exec(buf);
  return m ? { index: m.index, length: m[0].length } : null;
}

function parseBlock(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return null;
  return { event, data: data.join('\n') };
}
