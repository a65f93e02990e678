#!/usr/bin/env python3
"""selfcheck_golden.py: checks reference.py itself on the tiny golden models.

The golden data (shared/golden/tiny-gemma3) holds, for each tiny model file
and sequence, an exact float64 forward pass computed by an independent
implementation (`<seq>.exact.f32`, `<seq>.exact_greedy.json`) and llama.cpp's
own logits (`<seq>.logits.f32`). The reference must reproduce the exact logits
to float32 rounding and the exact greedy continuation token for token, in one
pass and with all sequences run together, fed 7 tokens at a time through
the cache. llama.cpp's F32
logits are reported too (expected ~1.4e-3..2.2e-3: its fp16 GELU table).

Usage: selfcheck_golden.py [GOLDEN_DIR] [--types f32,q4_k_m,...] [--tol 1e-5] [--mutate M]
Exit 0 when every case holds, 1 otherwise (77 when the golden data is absent).
"""
import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "golden", "tiny-gemma3"))
    ap = argparse.ArgumentParser()
    ap.add_argument("golden", nargs="?", default=default)
    ap.add_argument("--types", default="", help="comma list (default: every text/<model>-<type> folder)")
    ap.add_argument("--tol", type=float, default=1e-5, help="max |logit - exact| allowed")
    ap.add_argument("--mutate", choices=sorted(reference.MUTATIONS), default=None,
                    help="run a mutated reference (every case should then FAIL)")
    a = ap.parse_args()
    text = os.path.join(a.golden, "text")
    if not os.path.isdir(text):
        print(f"selfcheck: no golden data at {a.golden}; skipped")
        return 77
    dirs = sorted(glob.glob(os.path.join(text, "*")))
    if a.types:
        want = set(a.types.split(","))
        dirs = [d for d in dirs if d.rsplit("-", 1)[-1] in want]
    bad = 0
    for d in dirs:
        name = os.path.basename(d)
        model = reference.Model(os.path.join(a.golden, "models", name + ".gguf"), a.mutate)
        cases = []
        for tf in sorted(glob.glob(os.path.join(d, "*.tokens.json"))):
            seq = os.path.basename(tf)[: -len(".tokens.json")]
            tokens = json.load(open(tf))
            n = len(tokens)
            exact = np.fromfile(os.path.join(d, seq + ".exact.f32"), "<f4").reshape(n, -1)
            exact_greedy = json.load(open(os.path.join(d, seq + ".exact_greedy.json")))["tokens"]
            cases.append((seq, tokens, exact, exact_greedy))
        n_gen = len(cases[0][3])
        # every sequence at once, fed 7 tokens at a time: the batched, cached path
        together = reference.run_many(model, [(t, range(len(t))) for _, t, _, _ in cases], n_gen, chunk=7)
        for (seq, tokens, exact, exact_greedy), (_, lg7, greedy7, _) in zip(cases, together):
            n = len(tokens)
            _, lg, greedy, _ = reference.run(model, tokens, range(n), n_gen)
            dx = np.abs(lg - exact).max()
            d7 = np.abs(lg7 - lg).max()
            line = f"{name:22s} {seq:5s} n={n:3d}  max|ref-exact| {dx:.2e}  batched+chunked-vs-one {d7:.1e}"
            if name.endswith("-f32"):
                llama = np.fromfile(os.path.join(d, seq + ".logits.f32"), "<f4").reshape(n, -1)
                line += f"  max|ref-llama.cpp| {np.abs(lg - llama).max():.2e}"
            ok = dx <= a.tol and d7 <= a.tol and greedy == exact_greedy and greedy7 == exact_greedy
            line += "  greedy " + ("same" if greedy == exact_greedy else f"DIFFERS {greedy} vs {exact_greedy}")
            if greedy7 != exact_greedy:
                line += " (batched+chunked DIFFERS)"
            print(("ok   " if ok else "FAIL ") + line)
            bad += not ok
    print(f"selfcheck: {len(dirs)} models, {'all cases hold' if not bad else str(bad) + ' case(s) FAILED'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
