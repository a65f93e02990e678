#!/usr/bin/env python3
"""Counts the bad-input cases the tests check, by area, for the README's
Reliability section: python3 fuzz/count_bad_inputs.py (from the repository
root). A case is one refusal the test asserts: a call expected to fail
(`..., -1)`, a G3_STORE_* error status, assert_int_not_equal(..., 0)), one
expect_bad / expect_error / expect_load_error / expect_refused call, or one
row of a table of bad inputs (test_server_api.c's k_bad; arrays named
bad/k_bad* in loops count each element). A lower bound: loops over
generated inputs (every truncation of a GGUF file, random corruptions)
count once."""
import re, os, sys

AREAS = [
    ("model files (GGUF, weights, vision projector)", ["test_gguf", "test_model_load", "test_eval_api", "test_vision",
                                                       "test_types", "test_weight_types", "test_quantize"]),
    ("tokenizer and text", ["test_tokenizer", "test_sampler"]),
    ("saved conversations (JSON)", ["test_conversation"]),
    ("images and video", ["test_media"]),
    ("documents (PDF, text)", ["test_document"]),
    ("base64 and data: URLs", ["test_base64"]),
    ("HTTP API (OpenAI)", ["test_server_api", "test_load"]),
    ("native API", ["test_native_api"]),
    ("conversation store", ["test_store", "test_chat_store", "test_crash_safety"]),
    ("command line, chat", ["test_cli_checks", "test_chat", "test_engine", "test_plan"]),
]
CALL = re.compile(r"assert_int_equal\(.*,\s*-1\);|assert_int_equal\(.*G3_STORE_(INVALID|NOT_FOUND|CONFLICT|CORRUPT|"
                  r"READONLY|BUSY|FULL)\);|assert_int_equal\(.*G3_DOCUMENT_(?!OK)[A-Z_]+\);|"
                  r"assert_int_not_equal\(.*,\s*0\);|"
                  r"\bexpect_(bad|error|load_error|load_fails|refused|video_refused|truncations_refused)\(")


def table_rows(text, start):
    """Top-level elements of the initializer whose '{' is at text[start]."""
    depth, n, i, in_str, seen = 0, 0, start, False, False
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str, seen = True, True
        elif ch in "{(":
            depth += 1
            if depth == 2:
                seen = True
        elif ch in "})":
            depth -= 1
            if depth == 0:
                return n + (1 if seen else 0)
        elif ch == "," and depth == 1:
            n, seen = n + 1, False
        elif depth == 1 and not ch.isspace():
            seen = True
        i += 1
    return n


def count(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    n = sum(1 for line in text.splitlines() if CALL.search(line))
    # tables of bad inputs: each row is a case (the loop over them asserts once)
    for m in re.finditer(r"(\b(?:k_bad\w*|bad\w*)|corrupt_case \*cases)\[\]\s*=\s*\{", text):
        n += table_rows(text, m.end() - 1)
    return n


root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
total = 0
for area, files in AREAS:
    parts = []
    for f in files:
        p = os.path.join(root, f + ".c")
        if os.path.exists(p):
            c = count(p)
            if c:
                parts.append("%s %d" % (f, c))
                total += c
                globals().setdefault("_n_" + area, 0)
    s = sum(int(x.split()[-1]) for x in parts)
    if s:
        print("| %s | %d | %s |" % (area, s, ", ".join(parts)))
print("| total | %d | |" % total)
