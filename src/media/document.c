/* document.c: documents as message text. Both entry points (a path, bytes
 * with a name and a declared media type) end in the same function, so a file
 * and its upload give the same text. The bytes decide what a document is: a
 * PDF by its header, other formats by their magic numbers (refused, named);
 * then the name's extension (refusing .docx, .zip...) and the declared type
 * (refusing images, application/zip...), and otherwise text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/checked_math.h"
#include "base/error.h"
#include "base/read_file.h"
#include "base/utf8.h"
#include "gemma3_media.h"
#include "media/document_internal.h"
#include "media/media_internal.h"

#define NAME_MAX_BYTES 200 /* a header line, not a paragraph */

g3_document_limits g3_document_limits_default(void) {
    g3_document_limits lim = {
        .max_bytes = G3_DOCUMENT_MAX_BYTES,
        .max_text = G3_DOCUMENT_MAX_TEXT,
        .max_pages = G3_DOCUMENT_MAX_PAGES,
        .max_pdf_memory = G3_DOCUMENT_MAX_PDF_MEMORY,
        .max_pdf_seconds = G3_DOCUMENT_MAX_PDF_SECONDS,
    };
    return lim;
}

/* ---- the growable string ------------------------------------------------ */

void g3_docbuf_add(g3_docbuf *b, const void *s, size_t n) {
    if (g3_add_overflow_size(b->want, n, &b->want)) b->want = SIZE_MAX;
    if (b->oom || b->over) return;
    if (b->want > b->max) {
        b->over = true;
        return;
    }
    size_t need = b->want; /* == len + n: want is len until something fails */
    if (need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need + 1) cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
        if (cap > b->max + 1) cap = b->max + 1; /* max < SIZE_MAX: it bounded need */
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len = need;
    b->p[b->len] = 0;
}

void g3_docbuf_str(g3_docbuf *b, const char *s) { g3_docbuf_add(b, s, strlen(s)); }

void g3_docbuf_char(g3_docbuf *b, char c) { g3_docbuf_add(b, &c, 1); }

void g3_docbuf_codepoint(g3_docbuf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    g3_docbuf_add(b, u, n);
}

void g3_docbuf_free(g3_docbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- messages ----------------------------------------------------------- */

void g3_document_sizes(size_t have, size_t limit, char *have_s, char *limit_s, size_t cap) {
    g3_media_format_size(have, have_s, cap);
    g3_media_format_size(limit, limit_s, cap);
    if (strcmp(have_s, limit_s) == 0) { /* "16.0 MB, over 16.0 MB" says nothing */
        snprintf(have_s, cap, "%zu bytes", have);
        snprintf(limit_s, cap, "%zu bytes", limit);
    }
}

int g3_document_too_large(g3_error *err, const char *name, const char *what, size_t have, size_t max) {
    char h[48], l[48];
    g3_document_sizes(have, max, h, l, sizeof h);
    g3_fail(err, "'%s': %s is %s, over the limit of %s", name, what, h, l);
    return G3_DOCUMENT_TOO_LARGE;
}

/* ---- names -------------------------------------------------------------- */

/* The last path component, as one line of valid UTF-8 of at most
 * NAME_MAX_BYTES: a hostile name cannot add lines to the prompt. */
static char *display_name(const char *name) {
    if (!name || !*name) name = "attachment";
    const char *base = name;
    for (const char *p = name; *p; p++)
        if ((*p == '/' || *p == '\\') && p[1]) base = p + 1;
    size_t n = strlen(base), replaced;
    char *clean = g3_utf8_sanitize(base, n, &replaced);
    if (!clean) return NULL;
    size_t len = 0, n_clean = strlen(clean);
    for (size_t i = 0; i < n_clean;) {
        size_t k = g3_utf8_seq_len((const unsigned char *)clean + i, n_clean - i); /* >= 1: clean is valid */
        if (len + k > NAME_MAX_BYTES) break;
        for (size_t j = 0; j < k; j++) {
            unsigned char c = (unsigned char)clean[i + j];
            clean[len++] = (k == 1 && (c < 0x20 || c == 0x7F || c == '/' || c == '\\')) ? '_' : (char)c;
        }
        i += k;
    }
    clean[len] = 0;
    if (len == 0) {
        free(clean);
        return strdup("attachment");
    }
    return clean;
}

/* ---- what the bytes are ------------------------------------------------- */

static bool has_prefix(const uint8_t *d, size_t n, const char *magic, size_t m) {
    return n >= m && memcmp(d, magic, m) == 0;
}

/* A PDF starts with its header. Readers also accept one anywhere in the
 * first 1024 bytes (after junk some writers put first): that only for a file
 * that says it is a PDF, or a source file quoting "%PDF-" near its top would
 * be read as a broken PDF. */
static bool is_pdf(const uint8_t *d, size_t n, bool said_pdf) {
    size_t m = !said_pdf ? 5 : n < 1024 ? n : 1024;
    for (size_t i = 0; i + 5 <= m && i + 5 <= n; i++)
        if (memcmp(d + i, "%PDF-", 5) == 0) return true;
    return false;
}

/* Formats that are not documents, by their first bytes; NULL for the rest.
 * Text formats (RTF, PostScript, SVG) are left to the text reader. */
static const char *sniff_other(const uint8_t *d, size_t n) {
    static const struct {
        const char *magic;
        size_t len, offset;
        const char *what;
    } table[] = {
        {"PK\x03\x04", 4, 0, "a ZIP archive (Word, Excel, PowerPoint and OpenDocument files are ZIP archives too)"},
        {"PK\x05\x06", 4, 0, "a ZIP archive"},
        {"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8, 0, "an old Microsoft Office file (.doc, .xls, .ppt)"},
        {"\x1F\x8B", 2, 0, "a gzip archive"},
        {"7z\xBC\xAF\x27\x1C", 6, 0, "a 7-Zip archive"},
        {"Rar!\x1A\x07", 6, 0, "a RAR archive"},
        {"\xFD" "7zXZ", 5, 0, "an xz archive"},
        {"ustar", 5, 257, "a tar archive"},
        {"\x7F" "ELF", 4, 0, "an ELF executable"},
        {"SQLite format 3", 16, 0, "an SQLite database"},
        {"\x1A\x45\xDF\xA3", 4, 0, "a WebM/Matroska video"},
        {"OggS", 4, 0, "an Ogg audio or video file"},
        {"fLaC", 4, 0, "a FLAC audio file"},
        {"ID3", 3, 0, "an MP3 audio file"},
        {"II*\0", 4, 0, "a TIFF image"},
        {"MM\0*", 4, 0, "a TIFF image"},
        {"\0asm", 4, 0, "a WebAssembly module"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (n >= table[i].offset + table[i].len && memcmp(d + table[i].offset, table[i].magic, table[i].len) == 0)
            return table[i].what;
    if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) {
        const uint8_t *brand = d + 8;
        if (!memcmp(brand, "heic", 4) || !memcmp(brand, "heix", 4) || !memcmp(brand, "mif1", 4) ||
            !memcmp(brand, "msf1", 4) || !memcmp(brand, "heif", 4))
            return "a HEIC/HEIF image";
        if (!memcmp(brand, "avif", 4) || !memcmp(brand, "avis", 4)) return "an AVIF image";
        return "an MP4/MOV video";
    }
    if (has_prefix(d, n, "RIFF", 4) && n >= 12) {
        if (memcmp(d + 8, "AVI ", 4) == 0) return "an AVI video";
        if (memcmp(d + 8, "WAVE", 4) == 0) return "a WAV audio file";
    }
    return NULL;
}

/* The declared type without parameters, lowercased, into buf ("" if none);
 * it stops at anything but printable ASCII (it goes into messages). */
static void media_type_base(const char *type, char *buf, size_t cap) {
    size_t n = 0;
    if (type) {
        while (*type == ' ' || *type == '\t') type++;
        for (; *type > ' ' && *type < 0x7F && *type != ';' && n + 1 < cap; type++)
            buf[n++] = (char)((*type >= 'A' && *type <= 'Z') ? *type + 32 : *type);
    }
    buf[n] = 0;
    if (strcmp(buf, "application/octet-stream") == 0 || strcmp(buf, "binary/octet-stream") == 0) buf[0] = 0;
}

static bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Declared types that are plainly not documents. Unknown application
 * types are left to the bytes: browsers declare what the OS guesses. */
static bool declared_non_document(const char *t) {
    static const char *const exact[] = {
        "application/zip", "application/x-zip-compressed", "application/gzip", "application/x-gzip",
        "application/x-7z-compressed", "application/x-rar-compressed", "application/vnd.rar", "application/x-tar",
        "application/x-bzip2", "application/x-xz", "application/msword", "application/x-msdownload",
        "application/x-executable", "application/x-sharedlib", "application/java-archive", "application/wasm",
        "application/epub+zip", "application/x-sqlite3", "application/vnd.sqlite3",
    };
    if (starts(t, "image/") || starts(t, "video/") || starts(t, "audio/") || starts(t, "font/") ||
        starts(t, "model/") || starts(t, "application/vnd."))
        return true;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(t, exact[i]) == 0) return true;
    return false;
}

#define DOCUMENTS_ARE "documents are PDF, text, Markdown or source code"

/* hint: where that kind of file goes instead. */
static int unsupported(g3_error *err, const char *name, const char *what, const char *declared, const char *hint) {
    if (declared && *declared)
        g3_fail(err, "'%s' is %s (declared %s), not supported as a document: %s", name, what, declared, hint);
    else
        g3_fail(err, "'%s' is %s, not supported as a document: %s", name, what, hint);
    return G3_DOCUMENT_UNSUPPORTED;
}

/* msg_name names the document in messages (the path, for a file); hdr_name
 * is the cleaned name for the header and the extension. */
static int read_document(const char *msg_name, const char *hdr_name, const char *media_type, const uint8_t *data,
                         size_t len, const g3_document_limits *lim, g3_document *out, g3_error *err) {
    if (len > lim->max_bytes) return g3_document_too_large(err, msg_name, "the document", len, lim->max_bytes);
    if (len == 0) return g3_fail(err, "'%s' is empty (0 bytes)", msg_name);
    char declared[128];
    media_type_base(media_type, declared, sizeof declared);
    g3_document_type type = g3_document_type_of(hdr_name);
    bool said_pdf =
        type.pdf || strcmp(declared, "application/pdf") == 0 || strcmp(declared, "application/x-pdf") == 0;
    if (is_pdf(data, len, said_pdf)) return g3_document_pdf(msg_name, hdr_name, data, len, lim, out, err);

    g3_image_format fmt = g3_image_sniff(data, len, NULL);
    if (fmt != G3_IMAGE_UNKNOWN) {
        char what[48];
        snprintf(what, sizeof what, "a %s image", g3_image_format_name(fmt));
        return unsupported(err, msg_name, what, declared, "attach it as an image");
    }
    const char *what = sniff_other(data, len);
    if (what) return unsupported(err, msg_name, what, declared, strstr(what, "video") ? "attach it as a video"
                                                                                      : DOCUMENTS_ARE);
    if (type.binary) return unsupported(err, msg_name, type.binary, declared, DOCUMENTS_ARE);
    if (said_pdf)
        return g3_fail(err, "'%s' is not a PDF: there is no %%PDF- header in its first 1024 bytes", msg_name);
    if (!type.known && declared_non_document(declared)) {
        g3_fail(err, "'%s' is declared as %s, not a document type: " DOCUMENTS_ARE, msg_name, declared);
        return G3_DOCUMENT_UNSUPPORTED;
    }
    return g3_document_text(msg_name, hdr_name, data, len, type.lang, lim, out, err);
}

/* ---- the public API ----------------------------------------------------- */

int g3_document_from_memory(const char *name, const char *media_type, const void *data, size_t len,
                            const g3_document_limits *lim_in, g3_document *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_document_limits lim = lim_in ? *lim_in : g3_document_limits_default();
    char *shown = display_name(name);
    if (!shown) return g3_fail(err, "out of memory reading a document");
    int rc = !data && len ? g3_fail(err, "'%s': no data", shown)
                          : read_document(shown, shown, media_type, data, len, &lim, out, err);
    free(shown);
    return rc;
}

int g3_document_from_file(const char *path, const g3_document_limits *lim_in, g3_document *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_document_limits lim = lim_in ? *lim_in : g3_document_limits_default();
    /* stat first, for the limit's status and message; g3_read_file checks
     * again on the open file, so a file growing in between is still refused */
    struct stat st;
    if (stat(path, &st) != 0) return g3_fail(err, "cannot open '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return g3_fail(err, "'%s' is not a regular file", path);
    if ((uint64_t)st.st_size > lim.max_bytes)
        return g3_document_too_large(err, path, "the file", (size_t)st.st_size, lim.max_bytes);
    char *data = NULL;
    size_t len = 0;
    if (g3_read_file(path, lim.max_bytes, &data, &len, err)) return G3_DOCUMENT_FAILED;
    char *shown = display_name(path);
    int rc = shown ? read_document(path, shown, NULL, (const uint8_t *)data, len, &lim, out, err)
                   : g3_fail(err, "out of memory reading '%s'", path);
    free(shown);
    free(data);
    return rc;
}

void g3_document_free(g3_document *doc) {
    if (!doc) return;
    free(doc->text);
    memset(doc, 0, sizeof *doc);
}

int g3_document_read(const char *path, size_t max_bytes, char **text, size_t *n_replaced, g3_error *err) {
    g3_document_limits lim = g3_document_limits_default();
    lim.max_bytes = max_bytes;
    g3_document doc;
    *text = NULL;
    if (g3_document_from_file(path, &lim, &doc, err)) return -1; /* its callers test for -1 */
    *text = doc.text;
    if (n_replaced) *n_replaced = doc.n_replaced;
    return 0;
}
