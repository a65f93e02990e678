#!/usr/bin/env bash
# Load on `gemma-chat serve` over loopback: C concurrent streaming clients x
# N requests each, for each --parallel value; prints the aggregate generated
# tokens per second, time to first token (p50, p99) and the error count.
# Bounded: C x N requests of at most --max-tokens tokens, each with a
# timeout; the server is started and stopped here, on 127.0.0.1 only.
#
#   bash bench/serve_load.sh [-m MODEL] [-b BINARY] [-c CLIENTS] [-n REQUESTS]
#                            [--max-tokens N] [--parallel "1 4 8"] [-t THREADS] [--ctx N]
#
# Defaults: the 270M at models/gemma-3-270m-q4_k_m.gguf, build/gemma-chat,
# 16 clients x 5 requests, 64 tokens, --parallel 1, 4 and 8. Don't run it
# while others build: it uses every core (-t).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="$root/models/gemma-3-270m-q4_k_m.gguf"
binary="$root/build/gemma-chat"
clients=16 requests=5 max_tokens=64 parallel="1 4 8" threads="" ctx=2048
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model="$2"; shift 2 ;;
    -b) binary="$2"; shift 2 ;;
    -c) clients="$2"; shift 2 ;;
    -n) requests="$2"; shift 2 ;;
    --max-tokens) max_tokens="$2"; shift 2 ;;
    --parallel) parallel="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    --ctx) ctx="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "serve_load.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "serve_load.sh: no binary at $binary (bash scripts/build.sh, or -b)" >&2; exit 2; }
[ -f "$model" ] || { echo "serve_load.sh: no model at $model (bash scripts/get-model.sh, or -m)" >&2; exit 2; }

log="$(mktemp)"
pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -f "$log"; }
trap cleanup EXIT

echo "model $(basename "$model"), $clients clients x $requests requests, $max_tokens tokens each, context $ctx"
for p in $parallel; do
  args=(serve -m "$model" --host 127.0.0.1 --port 0 --parallel "$p" -c "$ctx" --max-queue $((clients * 2)))
  [ -n "$threads" ] && args+=(-t "$threads")
  "$binary" "${args[@]}" 2> "$log" &
  pid=$!
  port=""
  for _ in $(seq 1 600); do # 60 s to load
    if grep -q "gemma-chat: serving " "$log"; then
      port="$(grep -o 'listening at http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$')"
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "serve_load.sh: the server did not start:" >&2; cat "$log" >&2; exit 1; }
  python3 - "$port" "$clients" "$requests" "$max_tokens" "$p" <<'EOF'
import http.client, json, sys, threading, time

port, clients, requests, max_tokens, parallel = (int(a) for a in sys.argv[1:6])
prompts = ["Write a short poem about the sea.", "What is the capital of France?", "Explain photosynthesis simply.",
           "Give me three tips for learning to code.", "Tell me a fun fact about space.", "What is a prime number?",
           "Describe a cat in one paragraph.", "Why do leaves change colour in autumn?"]
ttfts, tokens, errors, lock = [], [0], [0], threading.Lock()

def one(prompt):
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                       "stream": True, "stream_options": {"include_usage": True}})
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
        first, usage = None, None
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content") and first is None:
                first = time.monotonic() - t0
            if chunk.get("usage"):
                usage = chunk["usage"]
        if usage is None:
            raise RuntimeError("no usage chunk")
        with lock:
            if first is not None:
                ttfts.append(first)
            tokens[0] += usage["completion_tokens"]
    except Exception as e:
        with lock:
            errors[0] += 1
        print(f"  error: {e}", file=sys.stderr)
    finally:
        conn.close()

def client(i):
    for k in range(requests):
        one(prompts[(i + k) % len(prompts)])

t0 = time.monotonic()
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
wall = time.monotonic() - t0

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")

print(f"--parallel {parallel}: {clients * requests} requests, {errors[0]} errors, {tokens[0]} tokens in {wall:.1f} s: "
      f"{tokens[0] / wall:.1f} tok/s aggregate; time to first token p50 {pct(ttfts, 0.5):.0f} ms, "
      f"p99 {pct(ttfts, 0.99):.0f} ms")
EOF
  kill "$pid"; wait "$pid" || true; pid=""
done
