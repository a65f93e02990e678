// The official `openai` npm client against `gemma-chat serve` on loopback.
//
// Environment (set by CTest, tests/CMakeLists.txt):
//   G3_BINARY  the gemma-chat binary
//   G3_MODEL   a model (the golden tiny model: fast, deterministic at temperature 0)
//   G3_MMPROJ  its vision encoder, and G3_IMAGE a PNG (the image test skips without them)
//
// Rule for "the same answer": exact string equality at temperature 0. The
// engine decodes a batch row for row with the same arithmetic as one
// sequence, and a prefix served from the KV cache holds the same values as a
// fresh prefill, so the text must not differ by a single byte.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const BINARY = process.env.G3_BINARY;
const MODEL = process.env.G3_MODEL;
const KEY = 'node-test-key';

if (!BINARY || !MODEL) throw new Error('set G3_BINARY and G3_MODEL');

// Starts `gemma-chat serve` on a free loopback port; resolves when it serves.
function startServer(extra = []) {
  const args = ['serve', '-m', MODEL, '--port', '0', '-t', '1', '-c', '2048', '--api-key', KEY, '--no-db', ...extra];
  const proc = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${log}`)), 20000);
    proc.stderr.on('data', (d) => {
      log += d;
      const port = /listening at http:\/\/127\.0\.0\.1:(\d+)\//.exec(log);
      if (port && log.includes('gemma-chat: serving ')) {
        clearTimeout(timer);
        const base = `http://127.0.0.1:${port[1]}`;
        const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0, timeout: 30000 });
        resolve({ proc, base, client, log: () => log });
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${log}`)));
  });
}

async function stopServer(s) {
  if (!s || s.proc.exitCode !== null) return;
  const exited = new Promise((resolve) => s.proc.on('exit', (code) => resolve(code)));
  s.proc.kill('SIGTERM');
  assert.equal(await exited, 0, 'serve exits 0 on SIGTERM');
}

async function metric(s, name) {
  const text = await (await fetch(`${s.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

async function waitIdle(s, ms) {
  const t0 = Date.now();
  while (Date.now() - t0 <= ms) {
    if ((await metric(s, 'gemma_chat_busy_slots')) === 0) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  return -1;
}

let srv;
let model;
before(async () => {
  srv = await startServer(['--parallel', '4']);
  const list = await srv.client.models.list();
  model = list.data[0].id;
});
after(async () => stopServer(srv));

const greedy = (content, max_tokens, extra = {}) => ({
  model,
  messages: [{ role: 'user', content }],
  max_tokens,
  temperature: 0,
  ...extra,
});

async function streamText(client, params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  const ids = new Set();
  let first = true;
  for await (const chunk of stream) {
    ids.add(chunk.id);
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.choices.length === 0) {
      usage = chunk.usage;
      continue;
    }
    assert.equal(chunk.usage, null, 'usage is null on every chunk but the last');
    const c = chunk.choices[0];
    if (first) assert.equal(c.delta.role, 'assistant', 'the first delta carries the role');
    first = false;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(ids.size, 1, 'the same id on every chunk');
  return { text, finish, usage };
}

test('plain completion: shape and usage', async () => {
  const r = await srv.client.chat.completions.create(greedy('Hello there', 16));
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 16);
  assert.ok(r.usage.prompt_tokens > 5);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 16);
  assert.ok(r.usage.prompt_tokens_details.cached_tokens <= r.usage.prompt_tokens);
});

test('a streamed answer reassembles to the plain answer (temperature 0)', async () => {
  const plain = await srv.client.chat.completions.create(greedy('Tell me a story', 24));
  const s = await streamText(srv.client, greedy('Tell me a story', 24));
  assert.equal(s.text, plain.choices[0].message.content);
  assert.equal(s.finish, 'length');
  assert.equal(s.usage.completion_tokens, 24);
  assert.equal(s.usage.prompt_tokens, plain.usage.prompt_tokens);
  assert.equal(s.usage.total_tokens, s.usage.prompt_tokens + 24);
});

test('finish_reason "stop": end of turn, and a stop string', async () => {
  // Greedy without a repetition penalty, this prompt ends its turn by itself.
  const eot = await srv.client.chat.completions.create(greedy('Why?', 1000, { repetition_penalty: 1 }));
  assert.equal(eot.choices[0].finish_reason, 'stop');
  assert.ok(eot.usage.completion_tokens < 1000);

  const plain = (await srv.client.chat.completions.create(greedy('Hello there', 16))).choices[0].message.content;
  const chars = [...plain];
  const stop = chars[Math.floor(chars.length / 2)];
  const cut = await srv.client.chat.completions.create(greedy('Hello there', 16, { stop: [stop] }));
  assert.equal(cut.choices[0].finish_reason, 'stop');
  assert.equal(cut.choices[0].message.content, plain.slice(0, plain.indexOf(stop)));
  const streamed = await streamText(srv.client, greedy('Hello there', 16, { stop }));
  assert.equal(streamed.finish, 'stop');
  assert.equal(streamed.text, cut.choices[0].message.content);
});

test('errors come back as the client\'s error classes, naming the field', async () => {
  await assert.rejects(srv.client.chat.completions.create(greedy('hi', 4, { n: 2 })), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'n');
    assert.match(e.message, /only n = 1/);
    return true;
  });
  await assert.rejects(srv.client.chat.completions.create({ ...greedy('hi', 4), model: 'gpt-4o' }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  const wrongKey = new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrongKey.chat.completions.create(greedy('hi', 4)), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError);
    assert.equal(e.status, 401);
    return true;
  });
  const url = 'https://example.com/cat.png';
  const img = { model, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] };
  await assert.rejects(srv.client.chat.completions.create(img), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'messages[0].content[0].image_url.url');
    assert.match(e.message, /fetches nothing/);
    return true;
  });
});

test('multi-turn: the resent history comes from the cache, and the answer equals a cold server\'s', async () => {
  const q1 = 'What do cats eat?';
  const first = await srv.client.chat.completions.create(greedy(q1, 20));
  const history = {
    model,
    temperature: 0,
    max_tokens: 20,
    messages: [
      { role: 'user', content: q1 },
      { role: 'assistant', content: first.choices[0].message.content },
      { role: 'user', content: 'And dogs?' },
    ],
  };
  const second = await srv.client.chat.completions.create(history);
  assert.ok(second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens,
    `cached ${second.usage.prompt_tokens_details.cached_tokens} < first prompt ${first.usage.prompt_tokens}`);
  const cold = await startServer(['--parallel', '1']);
  try {
    const fresh = await cold.client.chat.completions.create(history);
    assert.equal(fresh.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(second.choices[0].message.content, fresh.choices[0].message.content);
  } finally {
    await stopServer(cold);
  }
});

test('batching is exact: 4 concurrent streams equal each answer alone', async () => {
  const prompts = ['Hello', 'Why is the sky blue?', 'Name a fruit', 'Count to five'];
  const alone = [];
  for (const p of prompts) alone.push((await srv.client.chat.completions.create(greedy(p, 200))).choices[0].message.content);
  const together = await Promise.all(prompts.map((p) => streamText(srv.client, greedy(p, 200))));
  assert.deepEqual(together.map((t) => t.text), alone);
});

test('a streaming client that aborts frees its slot within a second', async () => {
  assert.ok((await waitIdle(srv, 5000)) >= 0);
  const cancelled = await metric(srv, 'gemma_chat_engine_requests_total{result="cancelled"}');
  // About 1.5 s of generation: greedy without a repetition penalty loops without ending its turn.
  const stream = await srv.client.chat.completions.create(greedy('Hello', 2000, { repetition_penalty: 1, stream: true }));
  let pieces = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content && ++pieces === 2) break; // leaving the loop aborts the request
  }
  const took = await waitIdle(srv, 1000);
  assert.ok(took >= 0, 'busy_slots back to 0 within a second');
  assert.equal(await metric(srv, 'gemma_chat_engine_requests_total{result="cancelled"}'), cancelled + 1);
});

test('an image part, when the server has a vision encoder', async (t) => {
  const { G3_MMPROJ: mmproj, G3_IMAGE: image } = process.env;
  if (!mmproj || !image) return t.skip('G3_MMPROJ / G3_IMAGE not set');
  const vis = await startServer(['--mmproj', mmproj, '--parallel', '1']);
  try {
    const url = `data:image/png;base64,${readFileSync(image).toString('base64')}`;
    const content = [{ type: 'text', text: 'What is in' }, { type: 'image_url', image_url: { url } }, { type: 'text', text: 'this?' }];
    const withImage = await vis.client.chat.completions.create(greedy(content, 8));
    const textOnly = await vis.client.chat.completions.create(greedy('What is in\nthis?', 8));
    assert.equal(withImage.choices[0].finish_reason, 'length');
    assert.ok(withImage.usage.prompt_tokens > textOnly.usage.prompt_tokens + 8,
      `the image's soft tokens count in the prompt (${withImage.usage.prompt_tokens} vs ${textOnly.usage.prompt_tokens})`);
    const again = await vis.client.chat.completions.create(greedy(content, 8));
    assert.equal(again.choices[0].message.content, withImage.choices[0].message.content);
  } finally {
    await stopServer(vis);
  }
});
