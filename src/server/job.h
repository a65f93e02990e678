/* job.h: one request between the engine thread and its HTTP connection.
 *
 * The engine's callbacks (on its thread, never blocking) append the text
 * made so far and, at the end, the result; each wakes the connection's
 * thread through an eventfd. The connection's thread waits on that eventfd
 * and on its client's socket at once, so a client that goes away is seen
 * at once, and sets the cancel flag the engine polls between steps: the
 * generation stops within one token and frees its slot.
 *
 * Two references keep a job alive: the connection's and the engine's (taken
 * for a submitted request, dropped after on_done); the last frees it. */
#ifndef G3_SERVER_JOB_H
#define G3_SERVER_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3_engine.h"

typedef struct srv_job {
    atomic_int refs;
    atomic_bool cancel;     /* the request's cancel flag (g3_request.cancel) */
    int wake_fd;            /* eventfd written by the callbacks */
    bool streaming;         /* keep text pieces for the connection (else only the final text) */
    pthread_mutex_t mu;     /* guards what follows */
    char *pending;          /* text made since the connection last took it */
    size_t pending_len, pending_cap;
    bool done;
    bool out_of_memory;     /* a callback could not keep text: the request was cancelled */
    g3_gen_result result;   /* at done; text and ids point into the job (ids NULL) */
    char *text;             /* the whole answer, at done */
    int32_t *ids;           /* its token ids, at done (NULL when none or out of memory: the store re-tokenizes) */
    size_t n_ids;
} srv_job;

srv_job *srv_job_new(bool streaming);
void srv_job_ref(srv_job *j);
void srv_job_release(srv_job *j);
/* on_text / on_done for g3_request; the engine's reference is dropped in on_done. */
g3_request_callbacks srv_job_callbacks(srv_job *j);

typedef enum srv_wait {
    SRV_WAIT_WOKEN,        /* text or the result may be there */
    SRV_WAIT_TIMEOUT,
    SRV_WAIT_CLIENT_GONE   /* the client closed its end: cancel set */
} srv_wait;

/* Waits up to timeout_ms (-1: no limit) for the callbacks or the client
 * (client_fd < 0: not watched) to do something. */
srv_wait srv_job_wait(srv_job *j, int client_fd, int timeout_ms);
/* Takes the pending text (*text malloc'd or NULL, *len) and says whether
 * the result is there. -1 when out of memory. */
int srv_job_take(srv_job *j, char **text, size_t *len, bool *done);

#endif
