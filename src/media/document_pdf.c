/* document_pdf.c: the text of a PDF, page by page, with MuPDF.
 *
 * Each call has its own fz_context: no state is shared between documents or
 * threads, and MuPDF's allocations go through a counting allocator that
 * refuses past the limit's max_pdf_memory (a small file can inflate to
 * gigabytes). MuPDF catches some failed allocations itself and goes on
 * without the object, so a refused allocation anywhere refuses the document.
 * A watchdog thread stops the pages at the time limit (10 MB of deflated
 * content stream is gigabytes of operators: minutes of work).
 * MuPDF prints its warnings and errors to stderr by default; here they are
 * collected instead, and the last one is quoted when a page is refused.
 *
 * Refused: a file MuPDF cannot open or whose page tree it cannot read, one
 * that needs a user password, one with more pages than the limit, a page
 * MuPDF cannot load, text past the limit, and a PDF with no text at all (a
 * scan: its text is in images). A broken cross-reference table that MuPDF
 * rebuilds (common in files from careless writers) is accepted and flagged
 * (g3_document.pdf_repaired) unless a page then fails or MuPDF warns while
 * reading one: after a repair a warning means missing objects, and so
 * possibly missing text. */
#include <errno.h>
#include <mupdf/fitz.h>
#include <mupdf/pdf.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/utf8.h"
#include "media/document_internal.h"
#include "media/media_internal.h"

#define PDF_STORE_DIVISOR 4 /* MuPDF's cache of decoded objects: a quarter of its memory */

/* ---- MuPDF's allocator and messages ------------------------------------- */

typedef struct pdf_state {
    size_t used, cap;
    bool over_cap;          /* an allocation was refused */
    unsigned n_warnings;    /* warnings and errors MuPDF reported */
    char last_warning[200];
} pdf_state;

/* Each block carries its size in front, aligned for any type. */
typedef union block_head {
    size_t size;
    max_align_t align;
} block_head;

static void *cap_malloc(void *user, size_t size) {
    pdf_state *st = user;
    if (size > st->cap - st->used || size > SIZE_MAX - sizeof(block_head)) {
        st->over_cap = true;
        return NULL;
    }
    block_head *h = malloc(sizeof *h + size);
    if (!h) return NULL;
    h->size = size;
    st->used += size;
    return h + 1;
}

static void cap_free(void *user, void *p) {
    if (!p) return;
    pdf_state *st = user;
    block_head *h = (block_head *)p - 1;
    st->used -= h->size;
    free(h);
}

static void *cap_realloc(void *user, void *p, size_t size) {
    if (!p) return cap_malloc(user, size);
    if (size == 0) {
        cap_free(user, p);
        return NULL;
    }
    pdf_state *st = user;
    block_head *h = (block_head *)p - 1;
    size_t old = h->size;
    if ((size > old && size - old > st->cap - st->used) || size > SIZE_MAX - sizeof(block_head)) {
        st->over_cap = true;
        return NULL;
    }
    block_head *grown = realloc(h, sizeof *grown + size);
    if (!grown) return NULL;
    grown->size = size;
    st->used = st->used - old + size;
    return grown + 1;
}

static void record_message(void *user, const char *message) {
    pdf_state *st = user;
    st->n_warnings++;
    snprintf(st->last_warning, sizeof st->last_warning, "%s", message);
}

/* ---- the time limit ----------------------------------------------------- */

/* MuPDF's interpreter polls cookie->abort between operators, and the cookie
 * is meant to be set from another thread: this one sets it at the deadline. */
typedef struct watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct timespec deadline; /* CLOCK_MONOTONIC */
    fz_cookie *cookie;
    pthread_t thread;
    bool done, fired;
} watchdog;

static void *watch(void *arg) {
    watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->done && !w->fired)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &w->deadline) == ETIMEDOUT && !w->done) {
            w->fired = true;
            w->cookie->abort = 1;
        }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int watchdog_start(watchdog *w, fz_cookie *cookie, double seconds) {
    memset(w, 0, sizeof *w);
    w->cookie = cookie;
    if (!(seconds > 0)) seconds = 0; /* NaN too */
    if (seconds > 1e7) seconds = 1e7;
    clock_gettime(CLOCK_MONOTONIC, &w->deadline);
    double whole = (double)(long)seconds;
    w->deadline.tv_sec += (time_t)whole;
    w->deadline.tv_nsec += (long)((seconds - whole) * 1e9);
    if (w->deadline.tv_nsec >= 1000000000L) {
        w->deadline.tv_sec++;
        w->deadline.tv_nsec -= 1000000000L;
    }
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr)) return -1;
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) || pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc) return -1;
    if (pthread_mutex_init(&w->mu, NULL)) {
        pthread_cond_destroy(&w->cv);
        return -1;
    }
    if (pthread_create(&w->thread, NULL, watch, w)) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        return -1;
    }
    return 0;
}

static bool watchdog_fired(watchdog *w) {
    pthread_mutex_lock(&w->mu);
    bool fired = w->fired;
    pthread_mutex_unlock(&w->mu);
    return fired;
}

static void watchdog_stop(watchdog *w) {
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

/* ---- extraction --------------------------------------------------------- */

static int over_memory(g3_error *err, const char *name, const pdf_state *st) {
    char limit[48];
    g3_fail(err, "'%s': reading this PDF needs more memory than the limit of %s for one PDF", name,
            g3_media_format_size(st->cap, limit, sizeof limit));
    return G3_DOCUMENT_TOO_LARGE;
}

/* The text of page i, as a reader sees it (contents, annotations, form
 * fields), into a malloc'd NUL-terminated string (MuPDF's structured text:
 * lines joined by '\n', blocks by an empty line). */
static int page_text(fz_context *ctx, pdf_document *doc, int i, fz_cookie *cookie, char **text, size_t *len,
                     char *msg, size_t msg_cap) {
    fz_page *page = NULL;
    fz_stext_page *stext = NULL;
    fz_device *dev = NULL;
    fz_buffer *buf = NULL;
    *text = NULL;
    *len = 0;
    fz_var(page);
    fz_var(stext);
    fz_var(dev);
    fz_var(buf);
    fz_try(ctx) {
        page = fz_load_page(ctx, &doc->super, i);
        stext = fz_new_stext_page(ctx, fz_bound_page(ctx, page));
        fz_stext_options opts = {.flags = FZ_STEXT_MEDIABOX_CLIP}; /* no text from outside the page */
        dev = fz_new_stext_device(ctx, stext, &opts);
        fz_run_page(ctx, page, dev, fz_identity, cookie);
        fz_close_device(ctx, dev);
        buf = fz_new_buffer_from_stext_page(ctx, stext);
    }
    fz_always(ctx) {
        fz_drop_device(ctx, dev);
        fz_drop_stext_page(ctx, stext);
        fz_drop_page(ctx, page);
    }
    fz_catch(ctx) {
        fz_drop_buffer(ctx, buf);
        snprintf(msg, msg_cap, "%s", fz_caught_message(ctx));
        return -1;
    }
    unsigned char *data = NULL;
    size_t n = fz_buffer_storage(ctx, buf, &data);
    for (size_t k = 0; k < n; k++)
        if (data[k] == 0) data[k] = ' '; /* a glyph a font maps to U+0000 would end the string */
    size_t replaced;
    *text = g3_utf8_sanitize((const char *)data, n, &replaced); /* MuPDF writes UTF-8; trust nothing */
    fz_drop_buffer(ctx, buf);
    if (!*text) {
        snprintf(msg, msg_cap, "out of memory");
        return -1;
    }
    *len = strlen(*text);
    return 0;
}

/* Controls other than newline and tab become spaces; trailing whitespace
 * goes. Returns the new length (0: the page has no text). */
static size_t clean_page(char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) s[i] = ' ';
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t')) n--;
    size_t start = 0;
    while (start < n && (s[start] == ' ' || s[start] == '\n' || s[start] == '\t')) start++;
    if (start) memmove(s, s + start, n - start);
    n -= start;
    s[n] = 0;
    return n;
}

static int damaged(g3_error *err, const char *name, const char *detail) {
    g3_fail(err, "'%s' is a damaged PDF and cannot be read: %s", name, detail);
    return G3_DOCUMENT_FAILED;
}

/* Pages into text, "Page N:" before each page with text; dog stops a page
 * at the time limit. */
static int read_pages(fz_context *ctx, pdf_state *st, pdf_document *doc, int n_pages, watchdog *dog,
                      const char *msg_name, const g3_document_limits *lim, g3_docbuf *text, g3_document *out,
                      g3_error *err) {
    char msg[400], detail[480];
    for (int i = 0; i < n_pages; i++) {
        unsigned warnings_before = st->n_warnings;
        bool repaired_before = pdf_was_repaired(ctx, doc);
        char *page;
        size_t len;
        int failed = page_text(ctx, doc, i, dog->cookie, &page, &len, msg, sizeof msg);
        if (watchdog_fired(dog)) { /* the page stopped part way */
            free(page);
            g3_fail(err, "'%s': reading its pages took longer than the limit of %g s (stopped in page %d of %d)",
                    msg_name, lim->max_pdf_seconds, i + 1, n_pages);
            return G3_DOCUMENT_TOO_LARGE;
        }
        if (st->over_cap) {
            free(page);
            return over_memory(err, msg_name, st);
        }
        if (failed) {
            snprintf(detail, sizeof detail, "page %d of %d: %s", i + 1, n_pages, msg);
            return damaged(err, msg_name, detail);
        }
        fz_flush_warnings(ctx); /* repeated warnings are held back until flushed */
        if (pdf_was_repaired(ctx, doc) && !repaired_before) { /* rebuilt while reading this page: again */
            free(page);
            i--;
            continue;
        }
        if (repaired_before && st->n_warnings > warnings_before) {
            free(page);
            snprintf(detail, sizeof detail,
                     "its cross-reference table is broken and after rebuilding it page %d of %d is missing "
                     "pieces (MuPDF: %s)",
                     i + 1, n_pages, st->last_warning);
            return damaged(err, msg_name, detail);
        }
        len = clean_page(page, len);
        if (len) {
            char head[32];
            snprintf(head, sizeof head, "%sPage %d:\n", out->n_pages_text ? "\n" : "", i + 1);
            g3_docbuf_str(text, head);
            g3_docbuf_add(text, page, len);
            g3_docbuf_char(text, '\n');
            out->n_pages_text++;
        }
        free(page);
        if (text->over) {
            char what[96];
            snprintf(what, sizeof what, "the text of its pages 1-%d (of %d)", i + 1, n_pages);
            return g3_document_too_large(err, msg_name, what, text->want, lim->max_text);
        }
        if (text->oom) return g3_fail(err, "out of memory reading '%s'", msg_name);
    }
    return 0;
}

static int extract_pages(fz_context *ctx, pdf_state *st, pdf_document *doc, int n_pages, const char *msg_name,
                         const g3_document_limits *lim, g3_docbuf *text, g3_document *out, g3_error *err) {
    fz_cookie cookie = {0};
    watchdog dog;
    if (watchdog_start(&dog, &cookie, lim->max_pdf_seconds))
        return g3_fail(err, "reading '%s': cannot start the thread that keeps its time limit", msg_name);
    int rc = read_pages(ctx, st, doc, n_pages, &dog, msg_name, lim, text, out, err);
    watchdog_stop(&dog);
    return rc;
}

static int extract(fz_context *ctx, pdf_state *st, const char *msg_name, const char *hdr_name, const uint8_t *data,
                   size_t len, const g3_document_limits *lim, g3_document *out, g3_error *err) {
    fz_stream *stream = NULL;
    pdf_document *doc = NULL;
    int n_pages = 0, locked = 0;
    char msg[400];
    fz_var(stream);
    fz_var(doc);
    fz_var(n_pages);
    fz_var(locked);
    fz_try(ctx) {
        stream = fz_open_memory(ctx, data, len);
        doc = pdf_open_document_with_stream(ctx, stream);
        locked = pdf_needs_password(ctx, doc); /* tries the empty password: owner-only locks open */
        if (!locked) n_pages = pdf_count_pages(ctx, doc);
    }
    fz_catch(ctx) {
        pdf_drop_document(ctx, doc);
        fz_drop_stream(ctx, stream);
        if (st->over_cap) return over_memory(err, msg_name, st);
        snprintf(msg, sizeof msg, "%s", fz_caught_message(ctx));
        return damaged(err, msg_name, msg);
    }
    int rc = 0;
    g3_docbuf text = {.max = lim->max_text};
    if (st->over_cap) {
        rc = over_memory(err, msg_name, st);
    } else if (locked) {
        g3_fail(err, "'%s' is an encrypted PDF that needs a password to open: remove the password (for example "
                     "`qpdf --decrypt --password=... in.pdf out.pdf`) and attach it again", msg_name);
        rc = G3_DOCUMENT_FAILED;
    } else if (n_pages <= 0) {
        rc = damaged(err, msg_name, "it has no pages");
    } else if ((uint32_t)n_pages > lim->max_pages) {
        g3_fail(err, "'%s' has %d pages, over the limit of %u pages for a document", msg_name, n_pages,
                lim->max_pages);
        rc = G3_DOCUMENT_TOO_LARGE;
    } else {
        out->n_pages = (uint32_t)n_pages;
        g3_docbuf_str(&text, "File: ");
        g3_docbuf_str(&text, hdr_name);
        g3_docbuf_char(&text, '\n');
        rc = extract_pages(ctx, st, doc, n_pages, msg_name, lim, &text, out, err);
        if (rc == 0 && out->n_pages_text == 0) {
            g3_fail(err, "'%s' has no text on any of its %d page%s (a scan? text inside images is not read: "
                         "attach the pages as images)", msg_name, n_pages, n_pages == 1 ? "" : "s");
            rc = G3_DOCUMENT_FAILED;
        }
        if (rc == 0) out->pdf_repaired = pdf_was_repaired(ctx, doc) != 0;
    }
    pdf_drop_document(ctx, doc);
    fz_drop_stream(ctx, stream);
    if (rc) {
        g3_docbuf_free(&text);
        return rc;
    }
    out->text = text.p;
    out->len = text.len;
    out->kind = G3_DOCUMENT_PDF;
    out->encoding = "PDF";
    out->language = "";
    return 0;
}

int g3_document_pdf(const char *msg_name, const char *hdr_name, const uint8_t *data, size_t len,
                    const g3_document_limits *lim, g3_document *out, g3_error *err) {
    /* the limit starts once the context exists: MuPDF reports a failure to
     * create one on stderr, before there is a context to take its messages */
    pdf_state st = {.cap = SIZE_MAX};
    fz_alloc_context alloc = {&st, cap_malloc, cap_realloc, cap_free};
    fz_context *ctx = fz_new_context(&alloc, NULL, lim->max_pdf_memory / PDF_STORE_DIVISOR);
    if (!ctx) return g3_fail(err, "out of memory reading '%s' (cannot start MuPDF)", msg_name);
    fz_set_error_callback(ctx, record_message, &st);
    fz_set_warning_callback(ctx, record_message, &st);
    st.cap = lim->max_pdf_memory;
    int rc = st.used > st.cap ? over_memory(err, msg_name, &st)
                              : extract(ctx, &st, msg_name, hdr_name, data, len, lim, out, err);
    fz_drop_context(ctx);
    return rc;
}
