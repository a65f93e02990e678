#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/TARGET/ (small, hand-made inputs
that reach each parser's main paths; the fuzzers grow from them). Run from
the repository root: python3 fuzz/make_seeds.py. The store seeds are made by
fuzz_make_store_seed (see make_store_seed.c); image seeds are Python's own
imghdr test images (PSF licence) when present, else a hand-made PNG/BMP/GIF.
Idempotent: files are rewritten with the same bytes."""
import base64, glob, os, struct, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- GGUF: version 3, little-endian -------------------------------------------
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, typ, payload):
    return gstr(key) + struct.pack("<I", typ) + payload


def gguf(kvs, tensors, align=32, version=3):
    """tensors: (name, dims, ggml_type, data bytes)"""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    offs, off = [], 0
    for name, dims, typ, data in tensors:
        offs.append(off)
        off += (len(data) + align - 1) // align * align
    for (name, dims, typ, data), o in zip(tensors, offs):
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", typ, o)
    out += b"\0" * ((-len(out)) % align)
    for name, dims, typ, data in tensors:
        out += data + b"\0" * ((-len(data)) % align)
    return out


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
meta = [
    kv("general.architecture", 8, gstr("gemma3")),
    kv("general.alignment", 4, struct.pack("<I", 32)),
    kv("gemma3.block_count", 4, struct.pack("<I", 1)),
    kv("gemma3.rope.freq_base", 6, struct.pack("<f", 10000.0)),
    kv("gemma3.flag", 7, b"\1"),
    kv("gemma3.i64", 11, struct.pack("<q", -5)),
    kv("gemma3.f64", 12, struct.pack("<d", 0.5)),
    kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + gstr("<pad>") + gstr("a") + gstr("\u2581b")),
    kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + f32(0, -1, -2)),
    kv("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 3, 1, 1)),
    kv("nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 0, 2) + b"\1\2"),
]
tensors = [
    ("token_embd.weight", [4, 2], 0, f32(*range(8))),             # F32
    ("blk.0.attn_norm.weight", [4], 1, struct.pack("<4e", 1, 2, 3, 4)),  # F16
    ("q8", [32], 8, struct.pack("<e", 0.5) + bytes(range(32))),   # Q8_0: one block
]
g = gguf(meta, tensors)
put("gguf", "small-v3", g)
put("gguf", "small-v2", gguf(meta[:3], tensors[:1], version=2))
put("gguf", "no-tensors", gguf(meta, []))
put("gguf", "align-64", gguf([kv("general.alignment", 4, struct.pack("<I", 64))] + meta[2:4], tensors, align=64))
put("gguf", "truncated-data", g[: len(g) - 20])
put("gguf", "truncated-header", g[:60])
put("gguf", "huge-counts", b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 1 << 40))
put("gguf", "empty-string-key", gguf([kv("", 8, gstr(""))], []))

# ---- tokenizer: first byte = mode (bit 0 add BOS, bit 1 specials, bit 2 skip specials on decode)
put("tokenizer", "chat", b"\x03<start_of_turn>user\nHello, world!<end_of_turn>\n<start_of_turn>model\n")
put("tokenizer", "plain", b"\x00The quick brown fox jumps over the lazy dog.  Two  spaces\ttab\nnewline")
put("tokenizer", "unicode", "\x04caf\u00e9 \u65e5\u672c\u8a9e \U0001F600 \u0645\u0631\u062d\u0628\u0627 \u00a0nbsp".encode())
put("tokenizer", "invalid-utf8", b"\x01abc\xff\xfe\xc3\x28\xe2\x82 \xf0\x9f\x98 tail")
put("tokenizer", "digits-ws", b"\x02 12345 3.14159 \n\n\n    indent\r\n<image_soft_token><unused0><bos>")
put("tokenizer", "specials-off", b"\x00<start_of_turn><end_of_turn><eos><pad>")

# ---- saved conversations (g3_conversation_to_json's format) --------------------
put("conversation", "basic", """{"format":"gemma-chat-conversation","version":1,"system":"Be brief.",
 "model":{"name":"Gemma 3 270M","n_vocab":262144,"vocab_fingerprint":"0123456789abcdef"},
 "turns":[{"role":"user","text":"Hi"},{"role":"model","text":"Hello!","ids":[9259,236888,106]}]}""")
put("conversation", "parts", """{"format":"gemma-chat-conversation","version":1,"system":"",
 "turns":[{"role":"user","text":"What is this?","parts":[{"type":"image","data":"iVBORw0KGgo="},
 {"type":"text","text":"What is this?"},{"type":"video_frame","data":"AAAA","seconds":1.5,"frame":0,"n_frames":3},
 {"type":"image","path":"/nonexistent/x.png"}]},{"role":"model","text":"A dot."}]}""")
put("conversation", "minimal", '{"turns":[]}')
put("conversation", "newer", '{"format":"gemma-chat-conversation","version":99,"turns":[]}')
put("conversation", "bad-ids", '{"turns":[{"role":"user","text":"a"},{"role":"model","text":"b","ids":[-1,1e99,"x"]}]}')
put("conversation", "escapes", '{"system":"\\u0000nul\\ud800","turns":[{"role":"user","text":"\\ud83d\\ude00"}]}')

# ---- images --------------------------------------------------------------------
def png_1x1():
    raw = b"\0\xff\0\0"
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bmp_2x2():
    px = b"\0\0\xff\0\xff\0\0\0" * 2  # 2 rows of 2 BGR pixels, padded to 8 bytes
    return b"BM" + struct.pack("<IHHI", 54 + len(px), 0, 0, 54) + struct.pack(
        "<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, len(px), 2835, 2835, 0, 0) + px


put("image", "dot.png", png_1x1())
put("image", "2x2.bmp", bmp_2x2())
put("image", "1x1.gif", base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="))
for src in sorted(glob.glob("/root/.pyenv/versions/*/lib/python3*/test/imghdrdata"))[:1]:
    for ext in ("jpg", "png", "gif", "bmp", "webp"):
        p = os.path.join(src, "python." + ext)
        if os.path.exists(p):
            put("image", "python." + ext, open(p, "rb").read())

# ---- video: YUV4MPEG2 (raw frames FFmpeg reads without a codec library) ------
def y4m(w, h, n, rate="25:1"):
    out = b"YUV4MPEG2 W%d H%d F%s Ip A1:1 C420jpeg\n" % (w, h, rate.encode())
    for i in range(n):
        out += b"FRAME\n" + bytes([(16 + 20 * i) & 255]) * (w * h) + b"\x80" * (2 * (w // 2) * (h // 2))
    return out


put("video", "4x4x5.y4m", y4m(4, 4, 5))
put("video", "8x6x2.y4m", y4m(8, 6, 2, "1:1"))
put("video", "anim.gif", base64.b64decode(
    "R0lGODlhAgACAPAAAP8AAAAAACH/C05FVFNDQVBFMi4wAwEAAAAh+QQACgAAACwAAAAAAgACAAACAoRRACH5BAAKAAAALAAAAAACAAIAgAAA/wAAAAIChFEAOw=="))

# ---- documents: first byte = mode (see fuzz_document.c) -------------------------
pdf = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 4 0 R>>>>/Contents 5 0 R>>"
       b"endobj 4 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj 5 0 obj<</Length 36>>stream\n"
       b"BT /F1 24 Tf 72 700 Td (Hello) Tj ET\nendstream endobj trailer<</Root 1 0 R>>\n")
put("document", "pdf", b"\x01" + pdf)
put("document", "pdf-after-header", b"\x00" + pdf[9:])
put("document", "text", b"\x02Plain notes\nwith lines\r\nand \xc3\xa9 UTF-8\n")
put("document", "code", b"\x03int main(void) {\n    return 0; /* ``` fence inside */\n}\n")
put("document", "utf16le", b"\x05" + "hi \u00e9\n".encode("utf-16-le"))
put("document", "utf16be", b"\x06" + "hi \u00e9\n".encode("utf-16-be"))
put("document", "cp1252", b"\x02caf\xe9 \x93quoted\x94 \x80\n")
put("document", "refused", b"\x08\x89PNG\r\n")

# ---- OpenAI request bodies: first byte = limits (see fuzz_openai_request.c) ---
img = "data:image/png;base64," + base64.b64encode(png_1x1()).decode()
put("openai_request", "simple", b"\x00" + b'{"model":"gemma-3-tiny","messages":[{"role":"user","content":"Hi"}]}')
put("openai_request", "full", b"\x00" + b'{"messages":[{"role":"system","content":"Be brief."},{"role":"developer",'
    b'"content":[{"type":"text","text":"Really."}]},{"role":"user","content":"Hi"},{"role":"assistant","content":"Yo"},'
    b'{"role":"user","content":"More"},{"role":"user","content":"and more"}],"temperature":0.7,"top_p":0.9,"top_k":40,'
    b'"min_p":0.05,"repetition_penalty":1.1,"seed":42,"max_tokens":20,"max_completion_tokens":30,"stop":["\\n\\n","END"],'
    b'"n":1,"stream":true,"stream_options":{"include_usage":true},"user":"u","store":false,"metadata":{},'
    b'"frequency_penalty":0,"presence_penalty":0,"response_format":{"type":"text"}}')
put("openai_request", "image", b"\x0a" + ('{"model":"g3-1b-s1234-q8_0","messages":[{"role":"user","content":[{"type":"text",'
    '"text":"What is it?"},{"type":"image_url","image_url":{"url":"%s","detail":"auto"}}]}]}' % img).encode())
put("openai_request", "image-novision", b"\x00" + ('{"messages":[{"role":"user","content":[{"type":"image_url",'
    '"image_url":{"url":"%s"}}]}]}' % img).encode())
put("openai_request", "remote-url", b"\x02" + b'{"messages":[{"role":"user","content":[{"type":"image_url",'
    b'"image_url":{"url":"https://example.com/a.png"}}]}]}')
put("openai_request", "deep", b"\x00" + b'{"messages":' + b"[" * 40 + b"]" * 40 + b"}")
put("openai_request", "escapes", b"\x01" + b'{"messages":[{"role":"user","content":"\\u0000\\ud800\\u00e9\\"\\\\"}],'
    b'"max_tokens":1e300,"temperature":-0.0,"seed":-1}')
put("openai_request", "unknown-model", b"\x08" + b'{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}')
put("openai_request", "stop-string", b"\x00" + b'{"messages":[{"role":"user","content":"Hi"}],"stop":"x","stream":false}')

# ---- base64 / data: URLs: first byte = mode (see fuzz_data_url.c) ---------------
put("data_url", "b64-decode", b"\x00" + base64.b64encode(bytes(range(40))))
put("data_url", "b64-padding", b"\x00QQ==\r\nQUI=\n QUJD")
put("data_url", "b64-bad", b"\x00QQ=A====")
put("data_url", "encode", b"\x01" + bytes(range(256)))
put("data_url", "url-png", b"\x02" + img.encode())
put("data_url", "url-tiny-limit", b"\x03" + img.encode())
put("data_url", "url-params", b"\x02data:image/png;name=a.png;charset=x;base64," + base64.b64encode(png_1x1()))
put("data_url", "url-not-b64", b"\x02data:image/png,%89PNG")
put("data_url", "url-http", b"\x02https://example.com/cat.jpg")
put("data_url", "url-text", b"\x02data:text/plain;base64,aGVsbG8=")

# ---- store: variants of the committed real stores (empty.db, two-convs.db) ----
import shutil, sqlite3
store = os.path.join(ROOT, "store")
if os.path.exists(os.path.join(store, "two-convs.db")):
    for name, sql in (("newer.db", "PRAGMA user_version=99"),
                      ("no-app-id.db", "PRAGMA application_id=0"),
                      ("bad-rows.db", "PRAGMA foreign_keys=OFF; PRAGMA ignore_check_constraints=ON; "
                                      "UPDATE turns SET role='wizard', idx=-3 WHERE id=2; "
                                      "UPDATE turns SET token_ids=x'010203' WHERE id=6; "
                                      "UPDATE turns SET text=x'ff00fe' WHERE id=4; "

                                      "UPDATE attachments SET size=1e18 WHERE id=1; "
                                      "INSERT INTO turns(conversation_id, idx, role, text, created_at) "
                                      "VALUES (99, 0, 'user', 'orphan', 0)"),
                      ("bad-settings.db", "PRAGMA ignore_check_constraints=ON; "
                                          "UPDATE conversations SET temperature=-1, top_p=7, title=x'c0' WHERE id=2")):
        p = os.path.join(store, name)
        shutil.copyfile(os.path.join(store, "two-convs.db"), p)
        db = sqlite3.connect(p)
        try:
            db.executescript(sql)
            db.commit()
        except sqlite3.Error as e:  # the schema moved on: keep the copy, say so
            print("make_seeds: %s: %s" % (name, e))
        db.close()
    if os.path.exists(os.path.join(store, "foreign.db")):
        os.remove(os.path.join(store, "foreign.db"))
    db = sqlite3.connect(os.path.join(store, "foreign.db"))
    db.executescript("PRAGMA page_size=512; CREATE TABLE IF NOT EXISTS notes(x); INSERT INTO notes VALUES (1);")
    db.close()
    with open(os.path.join(store, "two-convs.db"), "rb") as f:
        b = f.read()
    with open(os.path.join(store, "truncated.db"), "wb") as f:
        f.write(b[: len(b) // 2])

# ---- multipart/form-data: Content-Type line, then the body ---------------------
def form(boundary, parts, closing=True):
    out = b""
    for headers, data in parts:
        out += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + data + b"\r\n"
    return out + (b"--" + boundary + b"--\r\n" if closing else b"")


B = b"----g3boundary7MA4YWxk"
mp_parts = [([b'Content-Disposition: form-data; name="content"'], b"What is in these?"),
            ([b'Content-Disposition: form-data; name="stream"'], b"true"),
            ([b'Content-Disposition: form-data; name="files"; filename="dot.png"', b"Content-Type: image/png"], png_1x1()),
            ([b'Content-Disposition: form-data; name="files"; filename="a \\"q\\".txt"', b"Content-Type: text/plain"],
             b"notes\r\n--not-a-boundary\r\n")]
put("multipart", "browser", b"multipart/form-data; boundary=" + B + b"\n" + b"preamble\r\n" + form(B, mp_parts) + b"epilogue")
put("multipart", "quoted-boundary", b'multipart/form-data; charset=utf-8; boundary="a b:c"\n' + form(b"a b:c", mp_parts[:1]))
put("multipart", "no-closing", b"multipart/form-data; boundary=x\n" + form(b"x", mp_parts[:2], closing=False))
put("multipart", "no-name", b"multipart/form-data; boundary=x\n" + form(b"x", [([b"Content-Disposition: form-data"], b"v")]))
put("multipart", "empty", b"multipart/form-data; boundary=x\n--x--\r\n")
put("multipart", "lf-only", b"multipart/form-data; boundary=x\n--x\nContent-Disposition: form-data; name=\"a\"\n\nv\n--x--\n")

# ---- native API bodies: first byte = request (see fuzz_native_request.c) -----
put("native_request", "create", b"\x00" + b'{"title":"Trip","preset":"general","settings":{"max_tokens":300,'
    b'"temperature":0.5,"top_p":0.95,"top_k":40,"repetition_penalty":1.2,"max_images":3}}')
put("native_request", "create-system", b"\x00" + b'{"system":"Be brief.","preset":"tutor"}')
put("native_request", "update", b"\x01" + b'{"title":"","settings":{"temperature":2.0}}')
put("native_request", "update-bad", b"\x01" + b'{"settings":{"top_k":1.5,"max_images":99},"tittle":"x"}')
put("native_request", "send", b"\x02" + ('{"content":"Look","stream":true,"attachments":[{"name":"dot.png",'
    '"type":"image/png","data":"%s"},{"name":"n.txt","type":"text/plain","data":"aGk="}]}'
    % base64.b64encode(png_1x1()).decode()).encode())
put("native_request", "edit", b"\x03" + b'{"content":"again","keep_attachments":true}')
put("native_request", "send-multipart", b"\x04" + b"multipart/form-data; boundary=" + B + b"\n" + form(B, mp_parts))
put("native_request", "edit-multipart", b"\x05" + b"multipart/form-data; boundary=x\n" + form(b"x", [
    ([b'Content-Disposition: form-data; name="content"'], b"edited"),
    ([b'Content-Disposition: form-data; name="keep_attachments"'], b"false")]))
put("native_request", "regenerate", b"\x06" + b'{"stream":false}')
put("native_request", "regenerate-empty", b"\x06")
