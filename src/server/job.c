#include "server/job.h"

#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

srv_job *srv_job_new(bool streaming) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (j->wake_fd < 0 || pthread_mutex_init(&j->mu, NULL) != 0) {
        if (j->wake_fd >= 0) close(j->wake_fd);
        free(j);
        return NULL;
    }
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    j->streaming = streaming;
    return j;
}

void srv_job_ref(srv_job *j) { atomic_fetch_add(&j->refs, 1); }

void srv_job_release(srv_job *j) {
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
    close(j->wake_fd);
    pthread_mutex_destroy(&j->mu);
    free(j->pending);
    free(j->text);
    free(j->ids);
    free(j);
}

static void wake(srv_job *j) {
    uint64_t one = 1;
    /* Non-blocking: a counter that would overflow means a wake-up is already pending. */
    ssize_t r = write(j->wake_fd, &one, sizeof one);
    (void)r;
}

/* Copies len bytes without their NUL bytes; the bytes written. A model can
 * emit a NUL (the byte token <0x00>): kept, it would cut the text short
 * wherever it becomes a C string (JSON events, responses) and make the
 * store refuse the answer ("NUL byte at offset ..."), losing it. */
static size_t copy_without_nul(char *dst, const char *src, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (src[i]) dst[n++] = src[i];
    return n;
}

static bool append(srv_job *j, const char *text, size_t len) {
    if (j->pending_len + len + 1 > j->pending_cap) {
        size_t cap = j->pending_cap ? j->pending_cap : 256;
        while (cap < j->pending_len + len + 1) cap *= 2;
        char *p = realloc(j->pending, cap);
        if (!p) return false;
        j->pending = p;
        j->pending_cap = cap;
    }
    j->pending_len += copy_without_nul(j->pending + j->pending_len, text, len);
    j->pending[j->pending_len] = 0;
    return true;
}

static bool on_text(const char *text, size_t len, void *user) {
    srv_job *j = user;
    if (atomic_load(&j->cancel)) return false;
    if (!j->streaming) return true;
    pthread_mutex_lock(&j->mu);
    bool ok = append(j, text, len);
    if (!ok) j->out_of_memory = true;
    pthread_mutex_unlock(&j->mu);
    wake(j);
    return ok;
}

static void on_done(const g3_gen_result *r, void *user) {
    srv_job *j = user;
    char *text = malloc(r->text_len + 1);
    int32_t *ids = r->ids && r->n_ids && r->n_ids <= SIZE_MAX / sizeof *ids ? malloc(r->n_ids * sizeof *ids) : NULL;
    if (ids) memcpy(ids, r->ids, r->n_ids * sizeof *ids);
    pthread_mutex_lock(&j->mu);
    j->ids = ids;
    j->n_ids = ids ? r->n_ids : 0;
    j->result = *r;
    j->result.ids = NULL;
    j->result.n_ids = 0;
    if (text) {
        j->result.text_len = r->text_len ? copy_without_nul(text, r->text, r->text_len) : 0;
        text[j->result.text_len] = 0;
    } else {
        j->out_of_memory = true;
        j->result.text_len = 0;
    }
    j->text = text;
    j->result.text = text ? text : "";
    j->done = true;
    pthread_mutex_unlock(&j->mu);
    wake(j);
    srv_job_release(j);
}

g3_request_callbacks srv_job_callbacks(srv_job *j) {
    g3_request_callbacks cb = {.on_text = on_text, .on_done = on_done, .user = j};
    return cb;
}

srv_wait srv_job_wait(srv_job *j, int client_fd, int timeout_ms) {
    struct pollfd p[2] = {{.fd = j->wake_fd, .events = POLLIN}, {.fd = client_fd, .events = POLLRDHUP}};
    int n = poll(p, client_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0) return SRV_WAIT_WOKEN; /* EINTR: the caller looks again */
    if (n == 0) return SRV_WAIT_TIMEOUT;
    if (client_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
        atomic_store(&j->cancel, true);
        return SRV_WAIT_CLIENT_GONE;
    }
    uint64_t v;
    ssize_t r = read(j->wake_fd, &v, sizeof v);
    (void)r;
    return SRV_WAIT_WOKEN;
}

int srv_job_take(srv_job *j, char **text, size_t *len, bool *done) {
    pthread_mutex_lock(&j->mu);
    *text = NULL;
    *len = j->pending_len;
    if (j->pending_len) {
        *text = j->pending; /* hand over the buffer; the next piece starts a new one */
        j->pending = NULL;
        j->pending_len = j->pending_cap = 0;
    }
    *done = j->done;
    bool oom = j->out_of_memory;
    pthread_mutex_unlock(&j->mu);
    return oom ? -1 : 0;
}
