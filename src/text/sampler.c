#include "text/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"

typedef struct candidate {
    int32_t id;
    float logit;
} candidate;

struct g3_sampler {
    g3_sampler_params p;
    uint32_t n_vocab;
    uint64_t rng;
    candidate *cand;
    float *probs;
};

g3_sampler_params g3_sampler_defaults(void) {
    g3_sampler_params p = {.temperature = 0.7f, .top_k = 50, .top_p = 0.9f, .min_p = 0.0f,
                           .repeat_penalty = 1.1f, .repeat_last_n = 64, .seed = 0};
    p.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    return p;
}

int g3_sampler_params_check(const g3_sampler_params *p, g3_error *err) {
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        return g3_fail(err, "temperature must be between 0 and 100, got %g", p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return g3_fail(err, "top-p must be in (0, 1], got %g", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f)) return g3_fail(err, "min-p must be in [0, 1), got %g", p->min_p);
    if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 10.0f))
        return g3_fail(err, "repetition penalty must be in (0, 10], got %g", p->repeat_penalty);
    return 0;
}

g3_sampler *g3_sampler_new(const g3_sampler_params *p, uint32_t n_vocab, g3_error *err) {
    if (g3_sampler_params_check(p, err)) return NULL;
    g3_sampler *s = calloc(1, sizeof *s);
    if (!s) return g3_fail(err, "out of memory"), NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed ^ 0x6A09E667F3BCC909ull;
    s->cand = malloc(sizeof *s->cand * n_vocab);
    s->probs = malloc(sizeof *s->probs * n_vocab);
    if (!s->cand || !s->probs) {
        g3_sampler_free(s);
        g3_fail(err, "out of memory for a sampler over %u tokens", n_vocab);
        return NULL;
    }
    return s;
}

void g3_sampler_free(g3_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->probs);
    free(s);
}

/* splitmix64 -> uniform double in [0, 1) */
static double next_uniform(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int32_t argmax(const float *logits, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return (int32_t)best;
}

/* Each distinct recent token is penalized once (as HF and llama.cpp do). */
static void apply_repeat_penalty(const g3_sampler *s, float *logits, const int32_t *recent, size_t n) {
    if (s->p.repeat_penalty == 1.0f || n == 0) return;
    size_t from = n > s->p.repeat_last_n ? n - s->p.repeat_last_n : 0;
    for (size_t i = from; i < n; i++) {
        int32_t id = recent[i];
        if (id < 0 || (uint32_t)id >= s->n_vocab) continue;
        bool seen = false;
        for (size_t j = from; j < i && !seen; j++) seen = recent[j] == id;
        if (seen) continue;
        float *l = &logits[id];
        *l = *l > 0 ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
    }
}

static int by_logit_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* Moves the k largest logits to the front, sorted (k << n: a min-heap
 * selection is O(n log k) instead of sorting the whole vocabulary). */
static size_t select_top(candidate *c, size_t n, size_t k) {
    if (k == 0 || k >= n) {
        qsort(c, n, sizeof *c, by_logit_desc);
        return n;
    }
    /* partial selection: keep a sorted front of k entries */
    size_t filled = 0;
    for (size_t i = 0; i < n; i++) {
        candidate x = c[i];
        if (filled == k && by_logit_desc(&x, &c[k - 1]) >= 0) continue;
        size_t pos = filled < k ? filled++ : k - 1;
        while (pos > 0 && by_logit_desc(&x, &c[pos - 1]) < 0) {
            c[pos] = c[pos - 1];
            pos--;
        }
        c[pos] = x;
    }
    return k;
}

int32_t g3_sampler_sample(g3_sampler *s, float *logits, const int32_t *recent, size_t n_recent) {
    apply_repeat_penalty(s, logits, recent, n_recent);
    if (s->p.temperature <= 0.0f) return argmax(logits, s->n_vocab);

    for (uint32_t i = 0; i < s->n_vocab; i++) s->cand[i] = (candidate){(int32_t)i, logits[i] / s->p.temperature};
    size_t n = select_top(s->cand, s->n_vocab, s->p.top_k);

    /* softmax over the survivors (sorted, so cand[0] holds the max) */
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += s->probs[i] = expf(s->cand[i].logit - s->cand[0].logit);
    for (size_t i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);

    /* top-p: the smallest prefix whose mass reaches p (at least one token) */
    if (s->p.top_p < 1.0f) {
        double mass = 0.0;
        size_t keep = 0;
        while (keep < n && mass < s->p.top_p) mass += s->probs[keep++];
        n = keep;
    }
    /* min-p: drop tokens below min_p x the best probability */
    if (s->p.min_p > 0.0f) {
        size_t keep = 1;
        while (keep < n && s->probs[keep] >= s->p.min_p * s->probs[0]) keep++;
        n = keep;
    }
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += s->probs[i];
    double r = next_uniform(&s->rng) * total;
    for (size_t i = 0; i < n; i++) {
        r -= s->probs[i];
        if (r < 0.0) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
