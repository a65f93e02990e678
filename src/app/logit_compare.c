/* logit_compare.c: how far one run's token distributions are from a
 * reference run's (eval --kl-base), with the measures llama.cpp users know
 * from llama-perplexity --kl-divergence: the KL divergence of the softmax
 * distributions per position (base || this run), its mean, median, 99th
 * percentile and maximum, and how often both runs rank the same token
 * first. Used to choose and document the activation modes
 * (bench/RESULTS.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/app.h"

/* log-sum-exp of a row, in double (the rows hold 262144 values) */
static double log_sum_exp(const float *x, uint32_t n) {
    float mx = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0;
    for (uint32_t i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

static uint32_t argmax_row(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* KL(p || q) for p = softmax(base), q = softmax(run) */
static double kl_row(const float *base, const float *run, uint32_t n) {
    const double lp = log_sum_exp(base, n), lq = log_sum_exp(run, n);
    double kl = 0;
    for (uint32_t i = 0; i < n; i++) {
        const double a = (double)base[i] - lp;
        kl += exp(a) * (a - ((double)run[i] - lq));
    }
    return kl > 0 ? kl : 0; /* rounding can give -1e-17 for identical rows */
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int app_compare_logits(const char *cmd, const char *base_path, const float *logits, size_t n_pos,
                       uint32_t n_vocab, FILE *out) {
    FILE *f = fopen(base_path, "rb");
    if (!f) {
        app_error(cmd, "cannot open the reference logits '%s': %s", base_path, strerror(errno));
        return -1;
    }
    struct stat st;
    const unsigned long long want = (unsigned long long)n_pos * n_vocab * sizeof(float);
    if (fstat(fileno(f), &st) != 0 || (unsigned long long)st.st_size != want) {
        app_error(cmd, "'%s' holds %lld bytes, but %zu positions x %u logits of f32 are %llu: not the same sequence "
                  "and model", base_path, (long long)st.st_size, n_pos, n_vocab, want);
        fclose(f);
        return -1;
    }
    float *base = malloc(sizeof(float) * n_vocab);
    double *kl = malloc(sizeof(double) * (n_pos ? n_pos : 1));
    if (!base || !kl) {
        app_error(cmd, "out of memory for the logit comparison");
        free(base);
        free(kl);
        fclose(f);
        return -1;
    }
    size_t same_top = 0;
    double kl_sum = 0;
    for (size_t p = 0; p < n_pos; p++) {
        if (fread(base, sizeof(float), n_vocab, f) != n_vocab) {
            app_error(cmd, "cannot read '%s' at position %zu", base_path, p);
            free(base);
            free(kl);
            fclose(f);
            return -1;
        }
        const float *run = logits + p * n_vocab;
        kl[p] = kl_row(base, run, n_vocab);
        kl_sum += kl[p];
        same_top += argmax_row(base, n_vocab) == argmax_row(run, n_vocab);
    }
    fclose(f);
    qsort(kl, n_pos, sizeof *kl, cmp_double);
    const double median = n_pos ? kl[n_pos / 2] : 0, p99 = n_pos ? kl[(size_t)((n_pos - 1) * 0.99)] : 0;
    fprintf(out,
            "{\"positions\": %zu, \"kl_mean\": %.6g, \"kl_median\": %.6g, \"kl_p99\": %.6g, \"kl_max\": %.6g, "
            "\"top1_agreement\": %.6f}\n",
            n_pos, n_pos ? kl_sum / n_pos : 0.0, median, p99, n_pos ? kl[n_pos - 1] : 0.0,
            n_pos ? (double)same_top / n_pos : 1.0);
    free(base);
    free(kl);
    return 0;
}
