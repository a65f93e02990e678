// The page's SSE reader (web/src/sse.js) on its own, in node: events split
// across chunks anywhere (inside a UTF-8 sequence too), the three line
// endings, comments, multi-line data, a last event without its blank line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSSE } from '../../web/src/sse.js';

function streamOf(chunks) {
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(typeof ch === 'string' ? new TextEncoder().encode(ch) : ch);
      c.close();
    },
  });
}

async function collect(chunks) {
  const out = [];
  for await (const ev of readSSE(streamOf(chunks))) out.push(ev);
  return out;
}

const TEXT = ': ping\n\nevent: token\ndata: {"text":"Grüß"}\n\nevent: token\r\ndata: {"text":" dich"}\r\n\r\n'
  + 'data: a\ndata: b\n\nevent: done\ndata: {"ok":true}';
const WANT = [
  { event: 'token', data: '{"text":"Grüß"}' },
  { event: 'token', data: '{"text":" dich"}' },
  { event: 'message', data: 'a\nb' },
  { event: 'done', data: '{"ok":true}' },
];

test('whole, and split at every byte', async () => {
  assert.deepEqual(await collect([TEXT]), WANT);
  const bytes = new TextEncoder().encode(TEXT);
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(await collect([bytes.slice(0, cut), bytes.slice(cut)]), WANT, `cut at ${cut}`);
  }
  assert.deepEqual(await collect([...bytes].map((b) => new Uint8Array([b]))), WANT, 'one byte at a time');
});

test('CR line endings, a field without a colon, no space after the colon', async () => {
  assert.deepEqual(await collect(['event:x\rdata:1\r\rdata\r\r']), [{ event: 'x', data: '1' }, { event: 'message', data: '' }]);
});

test('nothing but comments yields nothing', async () => {
  assert.deepEqual(await collect([': a\n\n: b\n\n']), []);
});
