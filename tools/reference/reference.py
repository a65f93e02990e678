#!/usr/bin/env python3
"""reference.py: an independent Gemma 3 text forward pass in float64.

Written from the model's published definition (the Gemma 3 technical report
and the conventions real GGUF files follow, as listed in DESIGN.md), not from
the engine's C code, so that the engine can be held to it on real weights.

What it does: reads a gemma3 GGUF with the `gguf` package (GGUFReader;
gguf.quants.dequantize for every tensor type), turns every weight into float64
and runs the whole model in float64 numpy: exact tanh GELU, exact RoPE angles,
exact softmax. Every hyperparameter comes from the file's gemma3.* keys, so the
same code runs the 270M, the 1B..27B and the tiny golden models.

Limits: text only (no vision); a KV cache that keeps every position (the
sliding window is a mask, not a ring); slow on purpose where clarity wins.

Usage (CLI):
  reference.py -m MODEL --tokens-file T.json --out DIR/NAME
               [--rows all | --rows stride:64,last:32] [--generate 32]
               [--chunk N] [--mutate NAME]
writes DIR/NAME.f32 (float32 LE logits, [len(rows)][n_vocab]) and
DIR/NAME.json ({"rows": [...], "greedy": [...], "margins": [...], ...}).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import gguf
from gguf import quants

# Each mutation changes exactly one Gemma 3 detail, so a test can show that
# the comparison with the engine notices that detail.
MUTATIONS = {
    "no-embed-scale": "token embeddings are not multiplied by sqrt(n_embd)",
    "one-rope-base": "local layers use rope.freq_base (global base) instead of 10000",
    "full-window": "local layers attend to every earlier position (no sliding window)",
    "window-plus-one": "local layers see keys p-W..p (W+1 keys: the classic off-by-one)",
    "rope-interleaved": "RoPE rotates pairs (2i, 2i+1) (GPT-J style) instead of (i, i+d/2) (NEOX)",
    "norm-plus-one": "every norm weight gets +1 again (as if the GGUF stored w like HF does)",
    "no-qk-norm": "the per-head RMSNorm of q and k is left out",
    "gelu-erf": "the FFN uses the erf GELU instead of the tanh approximation",
}


# ---- config -----------------------------------------------------------------

def _field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def read_config(reader):
    """All hyperparameters from the file's gemma3.* keys (DESIGN.md facts)."""
    arch = _field(reader, "general.architecture")
    if arch != "gemma3":
        raise ValueError(f"general.architecture is {arch!r}, expected 'gemma3'")
    a = "gemma3."
    c = {
        "n_layer": int(_field(reader, a + "block_count")),
        "n_embd": int(_field(reader, a + "embedding_length")),
        "n_ff": int(_field(reader, a + "feed_forward_length")),
        "n_head": int(_field(reader, a + "attention.head_count")),
        "n_head_kv": int(_field(reader, a + "attention.head_count_kv")),
        "eps": float(_field(reader, a + "attention.layer_norm_rms_epsilon")),
        "rope_base": float(_field(reader, a + "rope.freq_base", 10000.0)),
        # local layers: their own base if the file says so, else 10000
        "rope_base_local": float(_field(reader, a + "rope.freq_base_swa", 10000.0)),
        "window": _field(reader, a + "attention.sliding_window"),
        "final_softcap": _field(reader, a + "final_logit_softcapping"),
        "attn_softcap": _field(reader, a + "attn_logit_softcapping"),
    }
    c["head_dim"] = int(_field(reader, a + "attention.key_length", c["n_embd"] // c["n_head"]))
    c["head_dim_v"] = int(_field(reader, a + "attention.value_length", c["head_dim"]))

    # Linear RoPE scaling (4B/12B/27B: factor 8), global layers only.
    scaling = _field(reader, a + "rope.scaling.type")
    factor = _field(reader, a + "rope.scaling.factor")
    c["rope_scale"] = 1.0
    if factor:
        if scaling not in (None, "linear", "none"):
            raise ValueError(f"rope.scaling.type {scaling!r} is not supported by the reference")
        if scaling != "none":
            c["rope_scale"] = 1.0 / float(factor)

    # Which layers are local (sliding window): 5 of every 6 unless the file
    # gives a period (uint) or a per-layer list (bools).
    L = c["n_layer"]
    if c["window"] is None:
        local = [False] * L
    else:
        c["window"] = int(c["window"])
        pattern = _field(reader, a + "attention.sliding_window_pattern", 6)
        if isinstance(pattern, list):
            local = [bool(v) for v in pattern][:L]
        else:
            p = int(pattern)
            local = [p == 0 or (i % p) < p - 1 for i in range(L)]
    c["local"] = local

    # Attention scale: 1/sqrt(head_dim), except the 27B (62 layers), whose
    # query_pre_attn_scalar is n_embd / n_head; no GGUF key carries it.
    if L == 62:
        c["attn_scale"] = 1.0 / math.sqrt(c["n_embd"] / c["n_head"])
    else:
        c["attn_scale"] = 1.0 / math.sqrt(c["head_dim"])
    # sqrt(n_embd) as a float32 value, as llama.cpp and the golden data use it
    c["embd_scale"] = float(np.sqrt(np.float32(c["n_embd"]), dtype=np.float32))
    return c


# ---- weights ----------------------------------------------------------------

def load_weights(reader):
    """name -> float64 array, numpy order (out, in) for matrices."""
    w = {}
    for t in reader.tensors:
        w[t.name] = quants.dequantize(t.data, t.tensor_type).astype(np.float64)
    return w


class Model:
    def __init__(self, path, mutate=None):
        reader = gguf.GGUFReader(path)
        self.cfg = read_config(reader)
        self.w = load_weights(reader)
        self.embd = self.w["token_embd.weight"]               # (n_vocab, n_embd)
        # tied output unless the file has its own output matrix
        self.out = self.w.get("output.weight", self.embd)     # (n_vocab, n_embd)
        self.n_vocab = self.out.shape[0]
        self.set_mutation(mutate)

    def set_mutation(self, mutate):
        """None, or one of MUTATIONS; weights stay as loaded either way."""
        if mutate is not None and mutate not in MUTATIONS:
            raise ValueError(f"unknown mutation {mutate!r}; known: {', '.join(MUTATIONS)}")
        self.mutate = mutate

    def tensor(self, name):
        w = self.w[name]
        if self.mutate == "norm-plus-one" and name.endswith("norm.weight"):
            return w + 1.0
        return w

    def layer(self, i, name):
        return self.tensor(f"blk.{i}.{name}.weight")


# ---- operations -------------------------------------------------------------

def rms_norm(x, w, eps):
    # GGUF norm weights already hold (1 + w): used as stored
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))))


def _erf(x):
    # numpy has no erf; math.erf per value is slow (seconds on a long prompt)
    # but only the gelu-erf mutation calls it
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def rope(x, pos, base, scale, interleaved=False):
    """x (T, n_heads, d) rotated by position. NEOX: dim i pairs with i + d/2."""
    d = x.shape[-1]
    inv = base ** (-np.arange(0, d // 2, dtype=np.float64) * 2.0 / d)   # (d/2,)
    ang = (pos.astype(np.float64) * scale)[:, None] * inv[None, :]       # (T, d/2)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]          # (T, 1, d/2)
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x2 * cos + x1 * sin
        return out
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def softmax_rows(s):
    s = s - np.max(s, axis=-1, keepdims=True)
    e = np.exp(s)
    return e / np.sum(e, axis=-1, keepdims=True)


# ---- forward ----------------------------------------------------------------

class Cache:
    """Keys/values of every position seen so far, per layer (after RoPE)."""

    def __init__(self, n_layer):
        self.k = [None] * n_layer    # (S, n_head_kv, head_dim)
        self.v = [None] * n_layer    # (S, n_head_kv, head_dim_v)
        self.n = 0


def attention(m, il, q, k_all, v_all, pos, block=256):
    """q (T, n_head, hd) at positions pos; k_all/v_all (S, n_kv, hd) at 0..S-1.
    Queries go in blocks of `block`; each block multiplies only the keys its
    mask can let through (the mask itself is exact, the key range only skips
    work: on a long prompt most keys of a local layer are outside the window)."""
    c = m.cfg
    T = q.shape[0]
    local = c["local"][il] and m.mutate != "full-window"
    W = c["window"] + (1 if m.mutate == "window-plus-one" else 0) if local else None
    group = c["n_head"] // c["n_head_kv"]
    out = np.empty((T, c["n_head"], v_all.shape[-1]))
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        p = pos[t0:t1]                                                   # (B,)
        k0 = max(0, int(p.min()) - W + 1) if local else 0
        kpos = np.arange(k0, int(p.max()) + 1)                           # (S',)
        allowed = kpos[None, :] <= p[:, None]                            # causal (B, S')
        if local:
            allowed &= (p[:, None] - kpos[None, :]) < W                  # keys p-W+1..p
        for h in range(c["n_head"]):
            g = h // group
            s = (q[t0:t1, h, :] * c["attn_scale"]) @ k_all[kpos, g, :].T  # (B, S')
            if c["attn_softcap"]:
                s = c["attn_softcap"] * np.tanh(s / c["attn_softcap"])
            s = np.where(allowed, s, -np.inf)
            out[t0:t1, h, :] = softmax_rows(s) @ v_all[kpos, g, :]       # (B, hd_v)
    return out


def forward(m, batch):
    """batch: list of (tokens, cache, rows), one entry per sequence. Runs each
    sequence's tokens at its positions cache.n.. and appends them to its cache;
    the matrix products take the rows of all sequences at once (one pass over
    the weights), attention stays inside each sequence. Returns, per sequence,
    float64 logits (len(rows), n_vocab) for the given row indices into its
    tokens (only those rows pay for the vocabulary product)."""
    c = m.cfg
    spans, s = [], 0                        # rows s0..s1 of x belong to sequence i
    for tokens, cache, _ in batch:
        spans.append((s, s + len(tokens)))
        s += len(tokens)
    pos = np.concatenate([np.arange(cache.n, cache.n + len(t)) for t, cache, _ in batch])   # (N,)
    N = len(pos)
    x = m.embd[np.concatenate([np.asarray(t, dtype=np.int64) for t, _, _ in batch])]     # (N, n_embd)
    if m.mutate != "no-embed-scale":
        x = x * c["embd_scale"]
    eps = c["eps"]
    for il in range(c["n_layer"]):
        # attention block
        h = rms_norm(x, m.layer(il, "attn_norm"), eps)                   # (N, n_embd)
        q = (h @ m.layer(il, "attn_q").T).reshape(N, c["n_head"], c["head_dim"])
        k = (h @ m.layer(il, "attn_k").T).reshape(N, c["n_head_kv"], c["head_dim"])
        v = (h @ m.layer(il, "attn_v").T).reshape(N, c["n_head_kv"], c["head_dim_v"])
        if m.mutate != "no-qk-norm":
            q = rms_norm(q, m.layer(il, "attn_q_norm"), eps)             # per head
            k = rms_norm(k, m.layer(il, "attn_k_norm"), eps)
        if c["local"][il] and m.mutate != "one-rope-base":
            base, scale = c["rope_base_local"], 1.0                      # no scaling on local layers
        else:
            base, scale = c["rope_base"], c["rope_scale"]
        inter = m.mutate == "rope-interleaved"
        q = rope(q, pos, base, scale, inter)
        k = rope(k, pos, base, scale, inter)
        o = np.empty((N, c["n_head"], c["head_dim_v"]))                  # (N, n_head, hd_v)
        for (s0, s1), (_, cache, _) in zip(spans, batch):
            cache.k[il] = k[s0:s1] if cache.k[il] is None else np.concatenate([cache.k[il], k[s0:s1]])
            cache.v[il] = v[s0:s1] if cache.v[il] is None else np.concatenate([cache.v[il], v[s0:s1]])
            o[s0:s1] = attention(m, il, q[s0:s1], cache.k[il], cache.v[il], pos[s0:s1])
        a = o.reshape(N, -1) @ m.layer(il, "attn_output").T              # (N, n_embd)
        x = x + rms_norm(a, m.layer(il, "post_attention_norm"), eps)
        # feed-forward block: GeGLU
        h = rms_norm(x, m.layer(il, "ffn_norm"), eps)
        gate = h @ m.layer(il, "ffn_gate").T                             # (N, n_ff)
        up = h @ m.layer(il, "ffn_up").T                                 # (N, n_ff)
        act = gelu_erf(gate) if m.mutate == "gelu-erf" else gelu_tanh(gate)
        f = (act * up) @ m.layer(il, "ffn_down").T                       # (N, n_embd)
        x = x + rms_norm(f, m.layer(il, "post_ffw_norm"), eps)
    for tokens, cache, _ in batch:
        cache.n += len(tokens)
    sel = np.concatenate([s0 + np.asarray(r, dtype=np.int64) for (s0, _), (_, _, r) in zip(spans, batch)])
    xr = rms_norm(x[sel], m.tensor("output_norm.weight"), eps)
    logits = xr @ m.out.T                                                # (rows, n_vocab)
    if c["final_softcap"]:
        logits = c["final_softcap"] * np.tanh(logits / c["final_softcap"])
    return np.split(logits, np.cumsum([len(r) for _, _, r in batch])[:-1])


def run_many(m, prompts, n_generate, chunk=0):
    """prompts: list of (tokens, rows). For each: the logits of `rows` (float64,
    the last row always included) and the greedy continuation (argmax, lowest
    id on ties), each chosen token fed back one at a time through the cache.
    All sequences advance together so each step reads the weights once.
    Returns a list of (rows, logits (len(rows), n_vocab), greedy ids,
    top1 - top2 margins), one per prompt."""
    seqs = []
    for tokens, rows in prompts:
        rows = sorted(set(rows) | {len(tokens) - 1})
        seqs.append({"tokens": list(tokens), "rows": rows, "cache": Cache(m.cfg["n_layer"]), "parts": []})
    longest = max(len(q["tokens"]) for q in seqs)
    chunk = chunk or longest
    for s in range(0, longest, chunk):                # prompt phase, chunk by chunk
        live = [q for q in seqs if s < len(q["tokens"])]
        batch = []
        for q in live:
            e = min(len(q["tokens"]), s + chunk)
            batch.append((q["tokens"][s:e], q["cache"], [r - s for r in q["rows"] if s <= r < e]))
        for q, lg in zip(live, forward(m, batch)):
            q["parts"].append(lg)
    for q in seqs:
        q["logits"] = np.concatenate(q["parts"])
        q["last"], q["greedy"], q["margins"] = q["logits"][-1], [], []
    for g in range(n_generate):                       # greedy phase, all sequences in step
        for q in seqs:
            t = int(np.argmax(q["last"]))
            top2 = np.partition(q["last"], -2)[-2:]
            q["greedy"].append(t)
            q["margins"].append(float(top2[1] - top2[0]))
        if g + 1 < n_generate:
            out = forward(m, [([q["greedy"][-1]], q["cache"], [0]) for q in seqs])
            for q, lg in zip(seqs, out):
                q["last"] = lg[0]
    return [(q["rows"], q["logits"], q["greedy"], q["margins"]) for q in seqs]


def run(m, tokens, rows, n_generate, chunk=0):
    """One prompt: see run_many."""
    return run_many(m, [(tokens, rows)], n_generate, chunk)[0]


def parse_rows(spec, n):
    """'all' or 'stride:S,last:L' (rows 0, S, 2S, ... plus the last L)."""
    if spec == "all":
        return list(range(n))
    rows = set()
    for part in spec.split(","):
        kind, _, val = part.partition(":")
        if kind == "stride":
            rows.update(range(0, n, int(val)))
        elif kind == "last":
            rows.update(range(max(0, n - int(val)), n))
        else:
            raise ValueError(f"bad --rows part {part!r} (use all, stride:S, last:L)")
    return sorted(rows)


def write_outputs(prefix, rows, logits, greedy, margins, extra):
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    logits.astype("<f4").tofile(prefix + ".f32")
    meta = dict(extra, rows=rows, n_vocab=int(logits.shape[1]), greedy=greedy, margins=margins)
    with open(prefix + ".json", "w") as f:
        json.dump(meta, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--tokens-file", required=True, help="JSON list of token ids (BOS included)")
    ap.add_argument("--out", required=True, help="output prefix: writes PREFIX.f32 and PREFIX.json")
    ap.add_argument("--rows", default="all", help="all | stride:S,last:L (default all)")
    ap.add_argument("--generate", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=0, help="feed the prompt N tokens at a time")
    ap.add_argument("--mutate", choices=sorted(MUTATIONS), default=None)
    a = ap.parse_args(argv)
    with open(a.tokens_file) as f:
        tokens = [int(t) for t in json.load(f)]
    t0 = time.time()
    m = Model(a.model, a.mutate)
    t1 = time.time()
    rows, logits, greedy, margins = run(m, tokens, parse_rows(a.rows, len(tokens)), a.generate, a.chunk)
    t2 = time.time()
    write_outputs(a.out, rows, logits, greedy, margins,
                  {"n_pos": len(tokens), "mutate": a.mutate, "model": os.path.abspath(a.model)})
    print(f"reference: {len(tokens)} tokens, {len(rows)} rows, {a.generate} generated"
          f"{' (mutation ' + a.mutate + ')' if a.mutate else ''}; load {t1 - t0:.1f} s, run {t2 - t1:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
