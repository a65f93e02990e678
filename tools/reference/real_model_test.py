#!/usr/bin/env python3
"""real_model_test.py: holds the engine to reference.py on the real weights.

Three steps, each a CTest test (tests/CMakeLists.txt runs them through
ctest.sh, which skips when the model or the venv is missing):

  prepare    tokenize tools/reference/prompts/*.txt with `gemma-chat tokenize
             --special --no-bos`, run the float64 reference over all of them
             (logits of the compared rows + 32 greedy tokens) and, for each
             --mutations entry, a mutated reference over the long prompt's
             first window+64 positions; into OUT_DIR. Reused when
             OUT_DIR/stamp.json matches: same model sha256, same reference
             code, same token ids, same mutation list.
  compare    `gemma-chat eval --kv-type f32 --logits ... --generate 32` per
             prompt (eval's default exact activations): max |logit -
             reference| over the reference's rows must be <= --tol and the
             greedy continuation identical; with `--kv-type f16` the greedy
             continuation must be identical too; and the path chat, run and
             serve take (`--activations int15 --kv-type f16`): identical
             greedy, max |d| <= --tol-int15.
  mutations  the engine's long-prompt rows against each mutated reference
             (one Gemma 3 detail changed): each comparison must FAIL, while
             the unmutated reference passes on the same rows.

The engine's logits ([n_pos][n_vocab] float32, 1.8 GB for the long prompt)
stream through a FIFO; only the reference's rows are kept.

Exit codes: 0 pass, 1 fail, 77 skipped (model missing).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import reference  # noqa: E402

SKIP = 77
DEFAULT_MODEL = os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
LONG_ROWS = "stride:64,last:32"     # long prompts: every 64th position plus the last 32
SHORT_MAX = 256                     # prompts up to this many tokens: every position
# the three the test must show it catches, and the window's off-by-one; the
# others in reference.MUTATIONS are caught too (see tools/reference/README.md)
# but each costs ~10 s of CI time
MUTATIONS = "no-embed-scale,one-rope-base,full-window,window-plus-one"
MUT_PAST_WINDOW = 64                # mutated runs: the long prompt up to window + this many positions


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def prompt_names():
    d = os.path.join(HERE, "prompts")
    return sorted(f[:-4] for f in os.listdir(d) if f.endswith(".txt"))


def rows_spec(n):
    return "all" if n <= SHORT_MAX else LONG_ROWS


def tokenize(binary, model, name):
    path = os.path.join(HERE, "prompts", name + ".txt")
    out = subprocess.run([binary, "tokenize", "-m", model, "--file", path, "--special", "--no-bos"],
                         check=True, capture_output=True, text=True).stdout
    return [int(t) for t in json.loads(out)]


def reference_code_hash():
    h = hashlib.sha256()
    for f in ("reference.py", "requirements.txt"):
        with open(os.path.join(HERE, f), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def load_ref(out_dir, name):
    with open(os.path.join(out_dir, name + ".ref.json")) as f:
        meta = json.load(f)
    logits = np.fromfile(os.path.join(out_dir, name + ".ref.f32"), "<f4").reshape(len(meta["rows"]), -1)
    return meta, logits


# ---- the engine -------------------------------------------------------------

def run_engine(binary, model, tokens_file, kv_type, rows, n_vocab, generate, activations="exact"):
    """Runs `gemma-chat eval`; returns (logits of `rows` (len(rows), n_vocab),
    greedy ids, rows the engine wrote, its stderr, seconds)."""
    want = set(rows)
    got = {}
    state = {"n": 0, "tail": 0}
    row_bytes = 4 * n_vocab
    with tempfile.TemporaryDirectory() as td:
        fifo = os.path.join(td, "logits.f32")
        os.mkfifo(fifo)

        def reader():
            with open(fifo, "rb") as f:
                while True:
                    b = f.read(row_bytes)
                    if len(b) < row_bytes:
                        state["tail"] = len(b)
                        return
                    if state["n"] in want:
                        got[state["n"]] = np.frombuffer(b, "<f4").copy()
                    state["n"] += 1

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        cmd = [binary, "eval", "-m", model, "--tokens-file", tokens_file, "--kv-type", kv_type,
               "--activations", activations, "--logits", fifo, "--generate", str(generate)]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.time() - t0
        while th.is_alive():        # the engine never opened the FIFO: release the reader
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            th.join(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    if state["tail"] or any(r not in got for r in rows):
        raise RuntimeError(f"engine wrote {state['n']} whole rows (+{state['tail']} bytes); "
                           f"expected rows up to {max(rows)} of {n_vocab} floats")
    greedy = json.loads(proc.stdout.strip().splitlines()[-1]) if generate else []
    return np.stack([got[r] for r in rows]), greedy, state["n"], proc.stderr.strip(), secs


def compare(ref_logits, ref_greedy, eng_logits, eng_greedy, rows, tol):
    """The one comparison every test uses: logits within tol, greedy equal."""
    d = np.abs(eng_logits.astype(np.float64) - ref_logits.astype(np.float64))
    i = int(np.argmax(d.max(axis=1)))
    same_argmax = float(np.mean(np.argmax(eng_logits, 1) == np.argmax(ref_logits, 1)))
    r = {"max_diff": float(d.max()), "at_pos": rows[i], "mean_diff": float(d.mean()),
         "argmax_agree": same_argmax, "greedy_equal": eng_greedy == ref_greedy}
    r["logits_ok"] = r["max_diff"] <= tol
    r["ok"] = r["logits_ok"] and (ref_greedy is None or r["greedy_equal"])
    return r


def detok(binary, model, ids):
    if not ids:
        return ""
    p = subprocess.run([binary, "detokenize", "-m", model, "--ids", ",".join(map(str, ids))],
                       capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else f"<detokenize failed: {p.stderr.strip()}>"


# ---- steps ------------------------------------------------------------------

def make_stamp(a, tokens):
    return {
        "model_sha256": sha256_file(a.model),
        "reference_sha256": reference_code_hash(),
        "numpy": np.__version__,
        "generate": a.generate,
        "mutations": a.mutations,
        "prompts": {n: {"tokens_sha256": hashlib.sha256(json.dumps(t).encode()).hexdigest(),
                        "rows": rows_spec(len(t))} for n, t in tokens.items()},
    }


def mutation_list(a):
    return [mu for mu in a.mutations.split(",") if mu]


def long_prompt(names, n_tokens):
    longs = [n for n in names if rows_spec(n_tokens[n]) != "all"]
    if not longs:
        raise SystemExit(f"no long prompt (more than {SHORT_MAX} tokens) among {names}")
    return longs[0]


def mutation_rows(rows, window):
    """The long prompt's compared rows up to window + MUT_PAST_WINDOW: past the
    window, so local layers drop keys, at a third of the whole prompt's cost
    (the model is causal: these rows of the prefix are the rows of the whole)."""
    return [r for r in rows if r <= (window or 0) + MUT_PAST_WINDOW]


def mutation_runs(a, m, names, tokens, specs):
    n = long_prompt(names, {k: len(v) for k, v in tokens.items()})
    rows = mutation_rows(reference.parse_rows(specs[n], len(tokens[n])), m.cfg["window"])
    prefix = tokens[n][: rows[-1] + 1]
    for mu in mutation_list(a):
        t1 = time.time()
        m.set_mutation(mu)
        r, logits, _, _ = reference.run(m, prefix, rows, 0)
        reference.write_outputs(os.path.join(a.out_dir, "mut-" + mu + ".ref"), r, logits, [], [],
                                {"n_pos": len(prefix), "mutate": mu, "prompt": n})
        print(f"prepare: mutation {mu}: {n} positions 0..{len(prefix) - 1}, {len(r)} rows "
              f"in {time.time() - t1:.1f} s")
    m.set_mutation(None)


def step_prepare(a):
    os.makedirs(a.out_dir, exist_ok=True)
    names = prompt_names()
    tokens = {n: tokenize(a.binary, a.model, n) for n in names}
    stamp = make_stamp(a, tokens)
    stamp_path = os.path.join(a.out_dir, "stamp.json")
    files = [os.path.join(a.out_dir, n + ext) for n in names for ext in (".tokens.json", ".ref.f32", ".ref.json")]
    files += [os.path.join(a.out_dir, "mut-" + mu + ext) for mu in mutation_list(a) for ext in (".ref.f32", ".ref.json")]
    if os.path.exists(stamp_path) and all(os.path.exists(f) for f in files):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                print(f"prepare: reference outputs in {a.out_dir} are current (model sha256 "
                      f"{stamp['model_sha256'][:16]}...); reused")
                return 0
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    t0 = time.time()
    m = reference.Model(a.model)
    print(f"prepare: loaded {a.model} in {time.time() - t0:.1f} s "
          f"({m.cfg['n_layer']} layers, n_embd {m.cfg['n_embd']}, vocab {m.n_vocab})")
    specs = {n: rows_spec(len(tokens[n])) for n in names}
    for n in names:
        with open(os.path.join(a.out_dir, n + ".tokens.json"), "w") as f:
            json.dump(tokens[n], f)
    # all prompts in one batched run: each decode step reads the weights once
    t1 = time.time()
    results = reference.run_many(m, [(tokens[n], reference.parse_rows(specs[n], len(tokens[n]))) for n in names],
                                 a.generate)
    for n, (rows, logits, greedy, margins) in zip(names, results):
        reference.write_outputs(os.path.join(a.out_dir, n + ".ref"), rows, logits, greedy, margins,
                                {"n_pos": len(tokens[n]), "mutate": None, "rows_spec": specs[n]})
        print(f"prepare: {n}: {len(tokens[n])} tokens, {len(rows)} rows, {a.generate} greedy "
              f"(smallest top-2 margin {min(margins) if margins else 0:.3f})")
    print(f"prepare: reference run {time.time() - t1:.1f} s")
    mutation_runs(a, m, names, tokens, specs)
    with open(stamp_path, "w") as f:
        json.dump(stamp, f, indent=1)
    print(f"prepare: done in {time.time() - t0:.1f} s")
    return 0


def check_prepared(a):
    stamp_path = os.path.join(a.out_dir, "stamp.json")
    if not os.path.exists(stamp_path):
        print(f"no reference outputs in {a.out_dir}: run the prepare step (ctest -R real_model_reference)")
        return False
    with open(stamp_path) as f:
        stamp = json.load(f)
    if stamp["model_sha256"] != sha256_file(a.model):
        print(f"the reference in {a.out_dir} was made for another model file than {a.model}; rerun prepare")
        return False
    return True


def step_compare(a):
    if not check_prepared(a):
        return 1
    bad, precision_only = 0, True
    print(f"{'prompt':16s} {'n_pos':>5s} {'rows':>4s} {'max|d| f32':>11s} {'at pos':>6s} {'mean|d|':>8s} "
          f"{'argmax':>6s} {'greedy f32':>10s} {'greedy f16':>10s} {'max|d| f16':>11s} {'chat path':>10s} "
          f"{'max|d| chat':>11s} {'eng s':>5s}")
    for n in prompt_names():
        meta, ref = load_ref(a.out_dir, n)
        rows, tf = meta["rows"], os.path.join(a.out_dir, n + ".tokens.json")
        e32, g32, nrow, err, s32 = run_engine(a.binary, a.model, tf, "f32", rows, meta["n_vocab"], a.generate)
        if nrow != meta["n_pos"]:
            print(f"{n}: engine wrote {nrow} rows for {meta['n_pos']} positions")
            bad += 1
            continue
        r32 = compare(ref, meta["greedy"], e32, g32, rows, a.tol)
        e16, g16, _, _, s16 = run_engine(a.binary, a.model, tf, "f16", rows, meta["n_vocab"], a.generate)
        r16 = compare(ref, meta["greedy"], e16, g16, rows, a.tol)
        # what chat, run and serve compute: 15-bit activations on AVX2/AVX-512, f16 cache
        ech, gch, _, _, sch = run_engine(a.binary, a.model, tf, "f16", rows, meta["n_vocab"], a.generate, "int15")
        rch = compare(ref, meta["greedy"], ech, gch, rows, a.tol_int15)
        ok = r32["ok"] and r16["greedy_equal"] and rch["ok"]
        bad += not ok
        precision_only = precision_only and (ok or (r32["greedy_equal"] and r16["greedy_equal"]
                                                    and r32["argmax_agree"] == 1.0))
        print(f"{n:16s} {meta['n_pos']:5d} {len(rows):4d} {r32['max_diff']:11.3e} {r32['at_pos']:6d} "
              f"{r32['mean_diff']:8.1e} {r32['argmax_agree']:6.0%} {'same' if r32['greedy_equal'] else 'DIFFERS':>10s} "
              f"{'same' if r16['greedy_equal'] else 'DIFFERS':>10s} {r16['max_diff']:11.3e} "
              f"{'same' if rch['greedy_equal'] else 'DIFFERS':>10s} {rch['max_diff']:11.3e} {s32 + s16 + sch:5.1f}"
              + ("" if ok else "   <-- FAIL"))
        if not r32["greedy_equal"] or not r16["greedy_equal"]:
            print(f"    reference greedy {meta['greedy']}\n    engine f32       {g32}\n    engine f16       {g16}")
        if a.verbose or not ok:
            print(f"    greedy text: {detok(a.binary, a.model, meta['greedy'])!r}")
    if bad and precision_only:
        print("compare: every failing prompt agrees on every argmax and greedy token; only the size of the logit "
              "error is past the tolerance, which points to precision (a wrong Gemma 3 detail moves logits by 0.5 "
              "to 100, see real_model_mutations). When this test was written, the engine's AVX2/AVX-512 products round "
              "activations to 15 bits (src/tensor/quant_act.h), 1.4e-2 where the logits reach ~97 (position 1); "
              "G3_CPU=scalar (f32 activations) gives 1.5e-4.")
    print(f"compare: eval's exact activations: max|d| <= {a.tol:g} (f32 cache) and identical {a.generate}-token "
          f"greedy continuations (f32 and f16 caches); the chat path (15-bit activations, f16 cache): identical "
          f"greedy and max|d| <= {a.tol_int15:g}: {'all prompts pass' if not bad else str(bad) + ' prompt(s) FAIL'}")
    return 1 if bad else 0


def step_mutations(a):
    if not check_prepared(a):
        return 1
    names = prompt_names()
    n = long_prompt(names, {k: load_ref(a.out_dir, k)[0]["n_pos"] for k in names})
    meta, ref = load_ref(a.out_dir, n)
    tf = os.path.join(a.out_dir, n + ".tokens.json")
    muts = mutation_list(a)
    mrows = load_ref(a.out_dir, "mut-" + muts[0])[0]["rows"] if muts else []
    eng, _, _, _, secs = run_engine(a.binary, a.model, tf, "f32", meta["rows"], meta["n_vocab"], 0)
    pick = [meta["rows"].index(r) for r in mrows]
    eng = eng[pick]
    # the control: the unmutated reference passes on exactly these rows
    base = compare(ref[pick], None, eng, None, mrows, a.tol)
    print(f"mutations: prompt {n}, rows {mrows[0]}..{mrows[-1]} (step {mrows[1] - mrows[0]}; engine {secs:.1f} s); "
          f"unmutated reference: max|d| {base['max_diff']:.3e} at pos {base['at_pos']} "
          f"({'passes' if base['ok'] else 'FAILS'} at tolerance {a.tol:g})")
    bad = 0 if base["ok"] else 1
    for mu in muts:
        mm, logits = load_ref(a.out_dir, "mut-" + mu)
        if mm["rows"] != mrows:
            print(f"  {mu}: rows differ from the other mutations; rerun prepare")
            bad += 1
            continue
        r = compare(logits, None, eng, None, mrows, a.tol)
        caught = not r["ok"]
        bad += not caught
        print(f"  {mu:16s} max|d| {r['max_diff']:9.3e} at pos {r['at_pos']:4d}, argmax agree {r['argmax_agree']:4.0%}: "
              f"{'caught (comparison fails)' if caught else 'NOT CAUGHT (comparison passes)'} - {reference.MUTATIONS[mu]}")
    print(f"mutations: {'the unmutated reference passes and every mutation is caught' if not bad else 'FAIL'}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=["prepare", "compare", "mutations"])
    ap.add_argument("--binary", required=True, help="the gemma-chat executable")
    ap.add_argument("--out-dir", required=True, help="where the reference outputs live")
    ap.add_argument("--model", default=os.environ.get("G3_REAL_MODEL") or DEFAULT_MODEL)
    ap.add_argument("--tol", type=float, default=1e-2)
    ap.add_argument("--tol-int15", type=float, default=6e-2,
                    help="max |d| allowed to the chat path (15-bit activations, f16 cache)")
    ap.add_argument("--generate", type=int, default=32)
    ap.add_argument("--mutations", default=MUTATIONS, help="comma list (prepare computes them, mutations checks them)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print(f"SKIP: real model {a.model} not found; get it with `bash scripts/get-model.sh` "
              f"(or point G3_REAL_MODEL at a gemma3 GGUF)")
        return SKIP
    return {"prepare": step_prepare, "compare": step_compare, "mutations": step_mutations}[a.step](a)


if __name__ == "__main__":
    sys.exit(main())
