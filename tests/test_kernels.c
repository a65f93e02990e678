/* test_kernels: every kernel of every SIMD path this CPU runs, against the
 * scalar reference, on random inputs of odd sizes (ggml's test-backend-ops
 * idea: one program covers all kernels).
 *
 * - 8-bit activation quantizer: bit-identical to the reference;
 * - quantized matrix-vector kernels of every type, and the batched path
 *   (panel packing + tile kernel) for row counts that are not a multiple of
 *   the tile and for every remainder of the token loop: within float
 *   rounding of the reference integer dot products;
 * - float weights (F32/F16/BF16), and every quantized type with f32
 *   activations (exact-activation mode): matrix-vector and tile kernels
 *   against the exact per-type dot products;
 * - vector ops (RMSNorm, GELU*up, softmax, dot, axpy, add) and attention
 *   over a ring of keys/values that wraps;
 * - the thread pool (every member runs, repeatedly, also after sleeping)
 *   and the matrix-product driver (several outputs, fused GeGLU) against
 *   plain loops;
 * - G3_CPU: an unknown or unavailable path is refused by name.
 * Paths the CPU lacks are reported and skipped. */
#include <math.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/cpu_features.h"
#include "base/thread_pool.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"
#include "tensor/quant_act.h"
#include "tensor/repack.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"
#include "test_util.h"

static const uint32_t k_qtypes[] = {G3_TYPE_Q8_0, G3_TYPE_Q4_0, G3_TYPE_Q5_0,  G3_TYPE_Q4_1, G3_TYPE_Q5_1,
                                    G3_TYPE_IQ4_NL, G3_TYPE_Q4_K, G3_TYPE_Q5_K, G3_TYPE_Q6_K};
static const uint32_t k_ftypes[] = {G3_TYPE_F32, G3_TYPE_F16, G3_TYPE_BF16};
#define N_QTYPES (sizeof k_qtypes / sizeof k_qtypes[0])
#define N_FTYPES (sizeof k_ftypes / sizeof k_ftypes[0])

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;

static float gauss(void) {
    float u1 = 1.0f - 0.5f * (tu_randf(&g_rng) + 1.0f);
    float u2 = 0.5f * (tu_randf(&g_rng) + 1.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

/* Gaussian values with a per-32 scale that varies over orders of magnitude,
 * occasional outliers and an all-zero block: what activations look like. */
static void fill_acts(float *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i += 32) {
        const float scale = powf(10.0f, 2.0f * tu_randf(&g_rng));
        for (uint32_t j = i; j < i + 32 && j < n; j++) x[j] = scale * gauss();
        if (i + 32 <= n && (i / 32) % 11 == 3) memset(x + i, 0, 32 * sizeof(float));
        if (i + 32 <= n && (i / 32) % 7 == 2) x[i + 5] *= 40.0f;
    }
}

/* The SIMD paths this CPU runs (the scalar table is the reference). */
static size_t simd_paths(const g3_kernels *out[2]) {
    size_t n = 0;
    for (int p = G3_CPU_AVX2; p < G3_CPU_PATH_COUNT; p++) {
        const g3_kernels *k = g3_kernels_get((g3_cpu_path)p);
        if (k && g3_cpu_has_path((g3_cpu_path)p)) out[n++] = k;
        else printf("  (%s: not available on this CPU, skipped)\n", g3_cpu_path_name((g3_cpu_path)p));
    }
    return n;
}

/* Quantized rows: n_rows x K of type, from Gaussian weights. */
static uint8_t *make_qrows(uint32_t type, uint32_t n_rows, uint32_t K, size_t *row_bytes) {
    uint64_t rb;
    assert_int_equal(g3_type_row_bytes(type, K, &rb, NULL), 0);
    *row_bytes = rb;
    uint8_t *w = malloc(rb * n_rows + 64);
    float *tmp = malloc(sizeof(float) * K);
    for (uint32_t r = 0; r < n_rows; r++) {
        for (uint32_t k = 0; k < K; k++) tmp[k] = 0.05f * gauss();
        g3_type_ops_get(type)->from_float(tmp, w + r * rb, K);
    }
    free(tmp);
    return w;
}

/* sum |w_j| |x_j| in double: the scale of a dot product's rounding error */
static double abs_dot(uint32_t type, const uint8_t *w, const float *x, uint32_t K) {
    float *wf = malloc(sizeof(float) * K);
    g3_type_ops_get(type)->to_float(w, wf, K);
    double s = 0;
    for (uint32_t k = 0; k < K; k++) s += fabs((double)wf[k] * x[k]);
    free(wf);
    return s;
}

static void check_close(const char *what, float got, float want, double scale) {
    const double tol = 2e-6 * scale + 1e-30;
    if (!(fabs((double)got - want) <= tol))
        fail_msg("%s: got %.9g, want %.9g (|d| %.3g > %.3g)", what, got, want, fabs((double)got - want), tol);
}

/* Activations quantized by the reference, as the kernels would see them. */
static void quantize_rows_ref(g3_qa *qa, const float *x, uint32_t T, uint32_t K) {
    qa->K = K;
    qa->n_rows = T;
    for (uint32_t t = 0; t < T; t++) {
        g3_qa_row_out o = g3_qa_row_out_get(qa, t);
        g3_qa_quantize_blocks_ref(x + (size_t)t * K, 0, K / 32, &o);
    }
}

/* The dequantized activation (what the integer products multiply). */
static void dequant_act(const g3_qa *qa, uint32_t t, float *out) {
    const g3_qa_row a = g3_qa_get_row(qa, t);
    for (uint32_t k = 0; k < qa->K; k++) out[k] = a.d[k / 32] * (float)(128 * a.q1[k] + a.q2[k]);
}

/* ---- activation quantizer ---- */

static void test_quantize_is_bit_identical(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t K = 32 * 37;
    float *x = malloc(sizeof(float) * K);
    g3_qa ref, got;
    assert_int_equal(g3_qa_alloc(&ref, 1, K), 0);
    assert_int_equal(g3_qa_alloc(&got, 1, K), 0);
    for (int rep = 0; rep < 20; rep++) {
        fill_acts(x, K);
        if (rep == 1) x[7] = 127.5f * (x[0] != 0 ? 1 : 1); /* ties and extremes */
        quantize_rows_ref(&ref, x, 1, K);
        for (size_t p = 0; p < np; p++) {
            got.K = K;
            g3_qa_row_out o = g3_qa_row_out_get(&got, 0);
            paths[p]->quantize_blocks(x, 0, 5, &o); /* in two calls: block ranges work */
            paths[p]->quantize_blocks(x, 5, K / 32, &o);
            if (memcmp(ref.q1, got.q1, K) || memcmp(ref.q2, got.q2, K) || memcmp(ref.q1u, got.q1u, K) ||
                memcmp(ref.q2u, got.q2u, K) || memcmp(ref.d, got.d, 4 * (K / 32)) ||
                memcmp(ref.dsum, got.dsum, 4 * (K / 32)) || memcmp(ref.s16, got.s16, 4 * (K / 16)) ||
                memcmp(ref.dsum8, got.dsum8, 4 * (K / 32)) || memcmp(ref.s8_16, got.s8_16, 4 * (K / 16)))
                fail_msg("%s quantizer differs from the reference (rep %d)", g3_cpu_path_name(paths[p]->path), rep);
        }
    }
    /* the two bytes reconstruct a 15-bit rounding of x */
    for (uint32_t k = 0; k < K; k++) {
        const float d = ref.d[k / 32];
        const float v = d * (float)(128 * ref.q1[k] + ref.q2[k]);
        assert_true(fabsf(v - x[k]) <= 0.5f * d * 1.0001f + 1e-30f);
        assert_true(ref.q2[k] >= -64 && ref.q2[k] <= 64);
    }
    /* q1 alone is an 8-bit rounding with the scale 128 d; dsum8 and s8_16 are its sums */
    for (uint32_t b = 0; b < K / 32; b++) {
        const float d8 = 128.0f * ref.d[b];
        int32_t sum[2] = {0, 0};
        for (uint32_t j = 0; j < 32; j++) {
            const uint32_t k = 32 * b + j;
            assert_true(fabsf(d8 * (float)ref.q1[k] - x[k]) <= 0.5f * d8 * 1.0001f + 1e-30f);
            sum[j / 16] += ref.q1[k];
        }
        assert_int_equal(ref.s8_16[2 * b], sum[0]);
        assert_int_equal(ref.s8_16[2 * b + 1], sum[1]);
        assert_float_equal(ref.dsum8[b], d8 * (float)(sum[0] + sum[1]), 1e-6f * fabsf(ref.dsum8[b]) + 1e-30f);
    }
    g3_qa_free(&ref);
    g3_qa_free(&got);
    free(x);
}

/* ---- quantized weights ---- */

static void test_qgemv_all_types(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t sizes[] = {32, 96, 544, 640, 1056, 1152, 256, 768, 2304};
    const uint32_t n_rows = 7;
    for (size_t ti = 0; ti < N_QTYPES; ti++) {
        const uint32_t type = k_qtypes[ti];
        const uint32_t bs = g3_type_info_get(type)->block_size;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const uint32_t K = sizes[si];
            if (K % bs) continue;
            size_t rb;
            uint8_t *w = make_qrows(type, n_rows, K, &rb);
            float *x = malloc(sizeof(float) * K), *xq = malloc(sizeof(float) * K);
            fill_acts(x, K);
            g3_qa qa;
            assert_int_equal(g3_qa_alloc(&qa, 1, K), 0);
            quantize_rows_ref(&qa, x, 1, K);
            dequant_act(&qa, 0, xq);
            const g3_qa_row a = g3_qa_get_row(&qa, 0);
            float want[7], got[7];
            g3_kernels_scalar.qgemv[type](w, rb, n_rows, K, &a, want);
            for (uint32_t r = 0; r < n_rows; r++) {
                /* the reference itself is the dot product with the dequantized activation */
                float wf[2304];
                g3_type_ops_get(type)->to_float(w + r * rb, wf, K);
                double exact = 0;
                for (uint32_t k = 0; k < K; k++) exact += (double)wf[k] * xq[k];
                check_close("reference vs double", want[r], (float)exact, abs_dot(type, w + r * rb, xq, K));
            }
            for (size_t p = 0; p < np; p++) {
                memset(got, 0, sizeof got);
                paths[p]->qgemv[type](w, rb, n_rows, K, &a, got);
                for (uint32_t r = 0; r < n_rows; r++) {
                    char what[96];
                    snprintf(what, sizeof what, "%s qgemv %s K=%u row %u", g3_cpu_path_name(paths[p]->path),
                             g3_type_info_get(type)->name, K, r);
                    check_close(what, got[r], want[r], abs_dot(type, w + r * rb, xq, K));
                }
            }
            g3_qa_free(&qa);
            free(x);
            free(xq);
            free(w);
        }
    }
}

/* The 8-bit decode kernels (q1 alone): the reference against a double sum
 * with the 8-bit activation, each path against the reference, for 1 to
 * G3_DOT_ROWS rows (the 4-stream and the single-row code) and ragged block
 * counts (17 and 33 blocks: a short last group of scales). */
static void test_qdot_rows8_all_types(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t sizes[] = {32, 544, 640, 1056, 1152, 256, 768, 2304, 2560};
    const uint32_t n_rows = G3_DOT_ROWS;
    for (size_t ti = 0; ti < N_QTYPES; ti++) {
        const uint32_t type = k_qtypes[ti];
        const uint32_t bs = g3_type_info_get(type)->block_size;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const uint32_t K = sizes[si];
            if (K % bs) continue;
            size_t rb;
            uint8_t *w = make_qrows(type, n_rows, K, &rb);
            float *x = malloc(sizeof(float) * K), *x8 = malloc(sizeof(float) * K), *wf = malloc(sizeof(float) * K);
            fill_acts(x, K);
            g3_qa qa;
            assert_int_equal(g3_qa_alloc(&qa, 1, K), 0);
            quantize_rows_ref(&qa, x, 1, K);
            const g3_qa_row a = g3_qa_get_row(&qa, 0);
            for (uint32_t k = 0; k < K; k++) x8[k] = 128.0f * a.d[k / 32] * (float)a.q1[k];
            const uint8_t *rows[G3_DOT_ROWS];
            float want[G3_DOT_ROWS];
            for (uint32_t r = 0; r < n_rows; r++) {
                rows[r] = w + r * rb;
                want[r] = g3_qa_dot8_ref(type, rows[r], &a, K);
                g3_type_ops_get(type)->to_float(rows[r], wf, K);
                double exact = 0;
                for (uint32_t k = 0; k < K; k++) exact += (double)wf[k] * x8[k];
                check_close("8-bit reference vs double", want[r], (float)exact, abs_dot(type, rows[r], x8, K));
            }
            float got[G3_DOT_ROWS];
            g3_kernels_scalar.qdot_rows8[type](rows, n_rows, K, &a, got);
            for (uint32_t r = 0; r < n_rows; r++) assert_float_equal(got[r], want[r], 0.0f);
            for (size_t p = 0; p < np; p++) {
                if (!paths[p]->qdot_rows8[type]) continue; /* this path decodes with 15 bits */
                for (uint32_t n = 1; n <= n_rows; n++) {
                    memset(got, 0, sizeof got);
                    paths[p]->qdot_rows8[type](rows, n, K, &a, got);
                    for (uint32_t r = 0; r < n; r++) {
                        char what[96];
                        snprintf(what, sizeof what, "%s qdot_rows8 %s K=%u rows %u row %u",
                                 g3_cpu_path_name(paths[p]->path), g3_type_info_get(type)->name, K, n, r);
                        check_close(what, got[r], want[r], abs_dot(type, rows[r], x8, K));
                    }
                }
            }
            g3_qa_free(&qa);
            free(x);
            free(x8);
            free(wf);
            free(w);
        }
    }
}

/* One packed tile (n rows of w) times the T rows of qa, through the 15-bit
 * or the 8-bit (a8) kernel in several calls (token ranges work), against the
 * reference; nothing written past row n. out: T x 40, xq: K scratch. */
static void check_qgemm(const g3_kernels *k, bool a8, uint32_t type, const uint8_t *tile, const uint8_t *w,
                        size_t rb, uint32_t K, const g3_qa *qa, uint32_t T, uint32_t n, float *out, float *xq) {
    const char *name = a8 ? "qgemm8" : "qgemm";
    for (size_t i = 0; i < (size_t)T * 40; i++) out[i] = 12345.0f; /* sentinel */
    /* token ranges of 4, 3, 2 and the rest (6 when T = 15): every remainder
     * of the kernels' 4- and 5-token steps, and one full step */
    const uint32_t cuts[] = {0, 4, 7, 9, T};
    for (int c = 0; c < 4; c++)
        (a8 ? k->qgemm_tile8 : k->qgemm_tile)(type, tile, K, qa, cuts[c], cuts[c + 1], out, 40, n);
    for (uint32_t t = 0; t < T; t++) {
        const g3_qa_row a = g3_qa_get_row(qa, t);
        if (a8)
            for (uint32_t i = 0; i < K; i++) xq[i] = 128.0f * a.d[i / 32] * (float)a.q1[i];
        else
            dequant_act(qa, t, xq);
        for (uint32_t r = 0; r < 40; r++) {
            if (r >= n) {
                if (out[t * 40 + r] != 12345.0f)
                    fail_msg("%s %s %s wrote past row %u", g3_cpu_path_name(k->path), name,
                             g3_type_info_get(type)->name, n);
                continue;
            }
            char what[96];
            snprintf(what, sizeof what, "%s %s %s rows %u token %u row %u", g3_cpu_path_name(k->path), name,
                     g3_type_info_get(type)->name, n, t, r);
            const float want = a8 ? g3_qa_dot8_ref(type, w + r * rb, &a, K) : g3_qa_dot_ref(type, w + r * rb, &a, K);
            check_close(what, out[t * 40 + r], want, abs_dot(type, w + r * rb, xq, K));
        }
    }
}

static void test_qgemm_tiles(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t row_counts[] = {32, 19, 1};
    const uint32_t T = 15; /* see check_qgemm's token ranges */
    for (size_t ti = 0; ti < N_QTYPES; ti++) {
        const uint32_t type = k_qtypes[ti];
        const uint32_t K = g3_type_info_get(type)->block_size == 256 ? 512 : 96;
        size_t rb;
        uint8_t *w = make_qrows(type, 32, K, &rb);
        float *x = malloc(sizeof(float) * K * T), *xq = malloc(sizeof(float) * K);
        fill_acts(x, K * T);
        g3_qa qa;
        assert_int_equal(g3_qa_alloc(&qa, T, K), 0);
        quantize_rows_ref(&qa, x, T, K);
        for (size_t p = 0; p < np; p++) {
            const g3_kernels *k = paths[p];
            uint8_t *tile = aligned_alloc(64, (k->qtile_bytes(type, K) + 63) & ~(size_t)63);
            void *tmp = aligned_alloc(64, (k->qtile_tmp_bytes(K) + 63) & ~(size_t)63);
            float *out = malloc(sizeof(float) * T * 40);
            for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++) {
                const uint32_t n = row_counts[ri];
                k->qpack_tile(type, w, rb, n, K, tile, tmp);
                check_qgemm(k, false, type, tile, w, rb, K, &qa, T, n, out, xq);
                if (k->qgemm_tile8) check_qgemm(k, true, type, tile, w, rb, K, &qa, T, n, out, xq);
            }
            free(tile);
            free(tmp);
            free(out);
        }
        g3_qa_free(&qa);
        free(x);
        free(xq);
        free(w);
    }
}

/* ---- Q4_0, Q5_0, Q8_0, Q4_K and Q6_K with 16 rows interleaved (repack.h) ---- */

/* The layout round-trips to the file's bytes; the x16 decode kernels match
 * the references row by row (15- and 8-bit activations), and the panels
 * made from the groups are byte for byte the ones qpack_tile makes from
 * the file's rows. */
static void test_x16_kernels(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t types[] = {G3_TYPE_Q4_0, G3_TYPE_Q5_0, G3_TYPE_Q8_0, G3_TYPE_Q4_K, G3_TYPE_Q6_K};
    const uint32_t sizes[] = {64, 256, 640, 1152, 2304, 2560};
    const uint32_t N = 48;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        assert_false(g3_x16_supported(type, 96, N));     /* half a unit */
        assert_false(g3_x16_supported(type, 640, 15));   /* not one group */
        assert_false(g3_x16_supported(G3_TYPE_Q4_1, 640, N));
        assert_false(g3_x16_supported(G3_TYPE_Q5_K, 2560, N));
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const uint32_t K = sizes[si];
            if (!g3_x16_supported(type, K, N)) {
                assert_true((type == G3_TYPE_Q4_K || type == G3_TYPE_Q6_K) && K % 256 != 0);
                continue;
            }
            size_t rb;
            uint8_t *w = make_qrows(type, N, K, &rb);
            const g3_matrix m = {.data = w, .type = type, .n_in = K, .n_out = N, .row_bytes = rb};
            uint8_t *x16 = g3_x16_pack_matrix(&m, NULL);
            assert_non_null(x16);
            assert_int_equal(g3_x16_group_bytes(type, K), 16 * rb);
            uint8_t *back = malloc(rb);
            for (uint32_t r = 0; r < N; r++) {
                g3_x16_unpack_row(type, x16 + (r / 16) * 16 * rb, K, r % 16, back);
                assert_memory_equal(back, w + r * rb, rb);
            }
            free(back);
            float *x = malloc(sizeof(float) * K), *xq = malloc(sizeof(float) * K);
            fill_acts(x, K);
            g3_qa qa;
            assert_int_equal(g3_qa_alloc(&qa, 1, K), 0);
            quantize_rows_ref(&qa, x, 1, K);
            const g3_qa_row a = g3_qa_get_row(&qa, 0);
            for (size_t p = 0; p < np; p++) {
                const g3_kernels *k = paths[p];
                if (!k->qdot_x16) continue;
                for (int a8 = 0; a8 < 2; a8++) {
                    if (a8)
                        for (uint32_t i = 0; i < K; i++) xq[i] = 128.0f * a.d[i / 32] * (float)a.q1[i];
                    else
                        dequant_act(&qa, 0, xq);
                    for (uint32_t g = 0; g < N / 16; g++) {
                        float out[16];
                        k->qdot_x16(type, x16 + g * 16 * rb, K, &a, a8, out);
                        for (uint32_t r = 0; r < 16; r++) {
                            const uint8_t *row = w + (16 * g + r) * rb;
                            char what[96];
                            snprintf(what, sizeof what, "%s qdot_x16 %s K=%u a8=%d row %u", g3_cpu_path_name(k->path),
                                     g3_type_info_get(type)->name, K, a8, 16 * g + r);
                            const float want = a8 ? g3_qa_dot8_ref(type, row, &a, K) : g3_qa_dot_ref(type, row, &a, K);
                            check_close(what, out[r], want, abs_dot(type, row, xq, K));
                        }
                    }
                }
                const size_t tb = (k->qtile_bytes(type, K) + 63) & ~(size_t)63;
                uint8_t *t1 = aligned_alloc(64, tb), *t2 = aligned_alloc(64, tb);
                void *tmp = aligned_alloc(64, (k->qtile_tmp_bytes(K) + 63) & ~(size_t)63);
                for (uint32_t n = 16; n <= 32; n += 16) {
                    memset(t1, 0xa5, tb);
                    memset(t2, 0x5a, tb);
                    k->qpack_tile(type, w + 16 * rb, rb, n, K, t1, tmp);
                    k->qpack_tile_x16(type, x16 + 16 * rb, n, K, t2);
                    assert_memory_equal(t1, t2, k->qtile_bytes(type, K));
                }
                free(t1);
                free(t2);
                free(tmp);
            }
            g3_qa_free(&qa);
            free(x);
            free(xq);
            free(x16);
            free(w);
        }
    }
}

/* ---- float weights ---- */

/* Float weights, and quantized weights with f32 activations (the exact-
 * activation mode: each weight dequantized exactly, f32 sums), against the
 * scalar table's exact per-type dot products; for a quantized type only the
 * sizes its block divides. */
static void test_float_kernels(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t sizes[] = {1, 7, 33, 64, 100, 256, 257, 640, 1152, 2048, 2560};
    const uint32_t T = 8, R = 21;
    for (size_t ti = 0; ti < N_FTYPES + N_QTYPES; ti++) {
        const uint32_t type = ti < N_FTYPES ? k_ftypes[ti] : k_qtypes[ti - N_FTYPES];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const uint32_t K = sizes[si];
            if (K % g3_type_info_get(type)->block_size) continue;
            size_t rb;
            uint8_t *w = make_qrows(type, R, K, &rb);
            float *x = malloc(sizeof(float) * K * T), *want = malloc(sizeof(float) * R * T);
            for (uint32_t i = 0; i < K * T; i++) x[i] = gauss();
            for (uint32_t t = 0; t < T; t++) g3_kernels_scalar.fgemv[type](w, rb, R, K, x + t * K, want + t * R);
            for (size_t p = 0; p < np; p++) {
                const g3_kernels *k = paths[p];
                float *got = malloc(sizeof(float) * R * T);
                float *tile = aligned_alloc(64, (k->ftile_bytes(K) + 63) & ~(size_t)63);
                for (uint32_t t = 0; t < T; t++) k->fgemv[type](w, rb, R, K, x + t * K, got + t * R);
                for (uint32_t i = 0; i < R * T; i++) {
                    char what[96];
                    snprintf(what, sizeof what, "%s fgemv %s K=%u", g3_cpu_path_name(k->path),
                             g3_type_info_get(type)->name, K);
                    check_close(what, got[i], want[i], abs_dot(type, w + (i % R) * rb, x + (i / R) * K, K));
                }
                k->fpack_tile(type, w, rb, R, K, tile);
                memset(got, 0, sizeof(float) * R * T);
                k->fgemm_tile(tile, K, x, K, 0, 3, got, R, R);
                k->fgemm_tile(tile, K, x, K, 3, T, got, R, R);
                for (uint32_t i = 0; i < R * T; i++) {
                    char what[96];
                    snprintf(what, sizeof what, "%s fgemm %s K=%u", g3_cpu_path_name(k->path),
                             g3_type_info_get(type)->name, K);
                    check_close(what, got[i], want[i], abs_dot(type, w + (i % R) * rb, x + (i / R) * K, K));
                }
                free(tile);
                free(got);
            }
            free(w);
            free(x);
            free(want);
        }
    }
}

/* ---- vector ops ---- */

static void test_vector_ops(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t sizes[] = {1, 5, 16, 31, 256, 1153};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const uint32_t n = sizes[si];
        float *x = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
        float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
        for (uint32_t i = 0; i < n; i++) {
            x[i] = 3.0f * gauss();
            w[i] = 1.0f + 0.1f * gauss();
            u[i] = gauss();
        }
        x[0] = -12.0f; /* GELU far out on both sides */
        if (n > 1) x[n - 1] = 15.0f;
        for (size_t p = 0; p < np; p++) {
            const g3_kernels *k = paths[p];
            const char *name = g3_cpu_path_name(k->path);
            g3_kernels_scalar.rmsnorm(a, x, w, n, 1e-6f);
            k->rmsnorm(b, x, w, n, 1e-6f);
            for (uint32_t i = 0; i < n; i++)
                if (fabsf(a[i] - b[i]) > 2e-6f * fabsf(a[i]) + 1e-30f) fail_msg("%s rmsnorm n=%u [%u]: %g vs %g", name, n, i, b[i], a[i]);
            memcpy(a, x, sizeof(float) * n);
            memcpy(b, x, sizeof(float) * n);
            g3_kernels_scalar.gelu_mul(a, u, n);
            k->gelu_mul(b, u, n);
            for (uint32_t i = 0; i < n; i++)
                if (fabsf(a[i] - b[i]) > 4e-6f * fabsf(a[i]) + 1e-6f * fabsf(u[i]))
                    fail_msg("%s gelu_mul n=%u [%u] x=%g: %g vs %g", name, n, i, x[i], b[i], a[i]);
            memcpy(a, x, sizeof(float) * n);
            memcpy(b, x, sizeof(float) * n);
            g3_kernels_scalar.softmax(a, n);
            k->softmax(b, n);
            for (uint32_t i = 0; i < n; i++)
                if (fabsf(a[i] - b[i]) > 4e-6f * a[i] + 1e-12f) fail_msg("%s softmax n=%u [%u]: %g vs %g", name, n, i, b[i], a[i]);
            double sabs = 0;
            for (uint32_t i = 0; i < n; i++) sabs += fabs((double)x[i] * u[i]);
            check_close("dot", k->dot(x, u, n), g3_kernels_scalar.dot(x, u, n), 4 * sabs);
            memcpy(a, u, sizeof(float) * n);
            memcpy(b, u, sizeof(float) * n);
            g3_kernels_scalar.axpy(a, 0.37f, x, n);
            k->axpy(b, 0.37f, x, n);
            for (uint32_t i = 0; i < n; i++) assert_true(fabsf(a[i] - b[i]) <= 1e-6f * (fabsf(u[i]) + fabsf(x[i])));
            memcpy(b, u, sizeof(float) * n);
            k->add(b, x, n);
            for (uint32_t i = 0; i < n; i++) assert_true(b[i] == u[i] + x[i]);
        }
        free(x); free(w); free(u); free(a); free(b);
    }
}

/* ---- attention over a ring of typed keys/values ---- */

static const uint32_t k_kvtypes[] = {G3_TYPE_F32, G3_TYPE_F16, G3_TYPE_BF16, G3_TYPE_Q8_0};

/* A KV ring as the cache lays it out: `slots` rows of `heads` heads of D
 * values in `type`, converted from random f32 by the reference; kf / vf
 * hold the dequantized values of one head for the error scales. */
typedef struct kv_ring {
    uint32_t type, D, slots, heads;
    size_t head_bytes, row_bytes;
    uint8_t *k, *v;
    float *kf, *vf; /* [slots][D] of head `head` */
    uint32_t head;
} kv_ring;

static kv_ring make_kv_ring(uint32_t type, uint32_t D, uint32_t slots, uint32_t heads, uint32_t head) {
    kv_ring r = {type, D, slots, heads, 0, 0, NULL, NULL, NULL, NULL, head};
    uint64_t hb;
    assert_int_equal(g3_type_row_bytes(type, D, &hb, NULL), 0);
    r.head_bytes = hb;
    r.row_bytes = heads * r.head_bytes;
    /* exactly the ring, so that ASan sees a read past the last head */
    r.k = malloc(slots * r.row_bytes);
    r.v = malloc(slots * r.row_bytes);
    r.kf = malloc(sizeof(float) * slots * D);
    r.vf = malloc(sizeof(float) * slots * D);
    float *tmp = malloc(sizeof(float) * D);
    const g3_type_ops *ops = g3_type_ops_get(type);
    for (uint32_t s = 0; s < slots; s++)
        for (uint32_t h = 0; h < heads; h++) {
            uint8_t *kp = r.k + s * r.row_bytes + h * r.head_bytes, *vp = r.v + s * r.row_bytes + h * r.head_bytes;
            for (uint32_t d = 0; d < D; d++) tmp[d] = gauss();
            ops->from_float(tmp, kp, D);
            for (uint32_t d = 0; d < D; d++) tmp[d] = gauss();
            ops->from_float(tmp, vp, D);
            if (h == head) {
                ops->to_float(kp, r.kf + (size_t)s * D, D);
                ops->to_float(vp, r.vf + (size_t)s * D, D);
            }
        }
    free(tmp);
    return r;
}

static void free_kv_ring(kv_ring *r) {
    free(r->k); free(r->v); free(r->kf); free(r->vf);
}

#define ATTN_LD 32       /* ld_s of the score rows (> n, to see stray writes) */
#define ATTN_SENTINEL 12345.0f

/* The scores of nq queries against positions lo .. lo+n-1 of the tested head. */
static void ring_scores(const g3_kernels *k, const kv_ring *r, const float *q, uint32_t nq, uint32_t lo, uint32_t n,
                        float *s) {
    for (uint32_t i = 0; i < nq * ATTN_LD; i++) s[i] = ATTN_SENTINEL;
    k->attn_scores[r->type](q, nq, r->k + r->head * r->head_bytes, r->row_bytes, r->slots, lo, n, r->D, s, ATTN_LD);
}

static void ring_values(const g3_kernels *k, const kv_ring *r, const float *s, uint32_t nq, uint32_t lo, uint32_t n,
                        float *out) {
    k->attn_values[r->type](s, ATTN_LD, nq, r->v + r->head * r->head_bytes, r->row_bytes, r->slots, lo, n, r->D, out);
}

/* Compares nq x n scores with the reference, each within float rounding of
 * sum_d |q_d k_d|, and checks nothing was written between n and ld_s. */
static void check_scores(const char *what, const kv_ring *r, const float *q, uint32_t nq, uint32_t lo, uint32_t n,
                         const float *got, const float *want) {
    for (uint32_t i = 0; i < nq; i++) {
        for (uint32_t j = 0; j < n; j++) {
            const float *kr = r->kf + (size_t)((lo + j) % r->slots) * r->D;
            double scale = 0;
            for (uint32_t d = 0; d < r->D; d++) scale += fabs((double)q[i * r->D + d] * kr[d]);
            char msg[320];
            snprintf(msg, sizeof msg, "%s query %u key %u", what, i, j);
            check_close(msg, got[i * ATTN_LD + j], want[i * ATTN_LD + j], 4 * scale);
        }
        for (uint32_t j = n; j < ATTN_LD; j++)
            if (got[i * ATTN_LD + j] != ATTN_SENTINEL) fail_msg("%s query %u: wrote score %u >= n = %u", what, i, j, n);
    }
}

/* Likewise for the outputs, within rounding of sum_j |s_j V_j[d]|. */
static void check_values(const char *what, const kv_ring *r, const float *s, uint32_t nq, uint32_t lo, uint32_t n,
                         const float *got, const float *want) {
    for (uint32_t i = 0; i < nq; i++)
        for (uint32_t d = 0; d < r->D; d++) {
            double scale = 0;
            for (uint32_t j = 0; j < n; j++)
                scale += fabs((double)s[i * ATTN_LD + j] * r->vf[(size_t)((lo + j) % r->slots) * r->D + d]);
            char msg[320];
            snprintf(msg, sizeof msg, "%s query %u [%u]", what, i, d);
            check_close(msg, got[i * r->D + d], want[i * r->D + d], 4 * scale);
        }
}

/* One (path, ring, nq, window): scores and values against the reference,
 * and each query's results against the same query run alone. */
static void check_attention_case(const g3_kernels *k, const kv_ring *r, uint32_t nq, uint32_t lo, uint32_t n) {
    const uint32_t D = r->D;
    char what[128];
    snprintf(what, sizeof what, "%s attn %s D=%u nq=%u lo=%u n=%u", g3_cpu_path_name(k->path),
             g3_type_info_get(r->type)->name, D, nq, lo, n);
    /* buffers of exactly their size, so that ASan sees stray accesses */
    float *q = malloc(sizeof(float) * nq * D);
    float *s_ref = malloc(sizeof(float) * nq * ATTN_LD), *s_got = malloc(sizeof(float) * nq * ATTN_LD);
    float *o_ref = malloc(sizeof(float) * nq * D), *o_got = malloc(sizeof(float) * nq * D);
    float *s_one = malloc(sizeof(float) * ATTN_LD), *o_one = malloc(sizeof(float) * D);
    for (uint32_t i = 0; i < nq * D; i++) q[i] = gauss();

    ring_scores(&g3_kernels_scalar, r, q, nq, lo, n, s_ref);
    ring_scores(k, r, q, nq, lo, n, s_got);
    check_scores(what, r, q, nq, lo, n, s_got, s_ref);
    for (uint32_t i = 0; i < nq; i++) { /* query i alone gives the same row */
        ring_scores(k, r, q + (size_t)i * D, 1, lo, n, s_one);
        char alone[160];
        snprintf(alone, sizeof alone, "%s (query %u alone)", what, i);
        check_scores(alone, r, q + (size_t)i * D, 1, lo, n, s_one, s_got + i * ATTN_LD);
    }

    for (uint32_t i = 0; i < nq; i++) g3_kernels_scalar.softmax(s_ref + i * ATTN_LD, n);
    ring_values(&g3_kernels_scalar, r, s_ref, nq, lo, n, o_ref);
    for (uint32_t i = 0; i < nq * D; i++) o_got[i] = ATTN_SENTINEL; /* the kernel overwrites, not adds */
    ring_values(k, r, s_ref, nq, lo, n, o_got);
    check_values(what, r, s_ref, nq, lo, n, o_got, o_ref);
    for (uint32_t i = 0; i < nq; i++) {
        ring_values(k, r, s_ref + i * ATTN_LD, 1, lo, n, o_one);
        char alone[160];
        snprintf(alone, sizeof alone, "%s (query %u alone)", what, i);
        check_values(alone, r, s_ref + i * ATTN_LD, 1, lo, n, o_one, o_got + (size_t)i * D);
    }
    free(q); free(s_ref); free(s_got); free(o_ref); free(o_got); free(s_one); free(o_one);
}

static void test_attention(void **state) {
    const g3_kernels *paths[2];
    size_t np = simd_paths(paths);
    const uint32_t dims[] = {256, 128, 64, 32, 40, 12}, nqs[] = {1, 2, 3, 4, 8};
    /* (lo, n) windows of a ring of 23 slots: wrapping after 6 rows, the
     * whole ring in order and wrapped, one row at the ring's last slot */
    const uint32_t slots = 23, windows[][2] = {{17, 19}, {0, 23}, {28, 23}, {45, 1}};
    for (size_t ti = 0; ti < sizeof k_kvtypes / sizeof k_kvtypes[0]; ti++) {
        const uint32_t type = k_kvtypes[ti];
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            const uint32_t D = dims[di];
            if (D % g3_type_info_get(type)->block_size) continue;
            /* three heads per row; the last one is tested, so the ring's
             * last row ends the buffer */
            kv_ring r = make_kv_ring(type, D, slots, 3, 2);
            for (size_t p = 0; p < np; p++)
                for (size_t qi = 0; qi < sizeof nqs / sizeof nqs[0]; qi++)
                    for (size_t wi = 0; wi < sizeof windows / sizeof windows[0]; wi++)
                        check_attention_case(paths[p], &r, nqs[qi], windows[wi][0], windows[wi][1]);
            free_kv_ring(&r);
        }
    }
}

/* ---- thread pool ---- */

typedef struct pool_probe {
    uint32_t nth;
    uint32_t seen[8];
    int round;
} pool_probe;

static void probe_task(void *arg, uint32_t ith, uint32_t nth) {
    pool_probe *p = arg;
    p->nth = nth;
    p->seen[ith] = (uint32_t)p->round;
}

/* Each share counts its runs; some sleep a little, so that workers are
 * late now and then (more threads than CPUs make it likelier). */
typedef struct pool_count {
    atomic_uint runs[8];
    int round;
} pool_count;

static void count_task(void *arg, uint32_t ith, uint32_t nth) {
    pool_count *p = arg;
    (void)nth;
    atomic_fetch_add(&p->runs[ith], 1);
    if ((p->round + ith) % 7 == 0) {
        struct timespec ts = {0, 20 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Every share runs exactly once per task, whoever runs it: a worker, or
 * the caller when the worker is late (pinned to one CPU, the workers are
 * late most of the time and the caller takes their shares over). */
static void test_thread_pool_late_workers(void **state) {
    (void)state;
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    for (int pinned = 0; pinned < 2; pinned++) {
        if (pinned) { /* threads created from now on inherit it */
            CPU_ZERO(&one);
            for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &all)) {
                    CPU_SET(c, &one);
                    break;
                }
            assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
        }
        for (uint32_t n = 2; n <= 6; n += 2) {
            g3_thread_pool *pool;
            g3_error err;
            assert_int_equal(g3_thread_pool_new(n, &pool, &err), 0);
            pool_count p;
            for (uint32_t i = 0; i < 8; i++) atomic_init(&p.runs[i], 0);
            for (int round = 1; round <= 2000; round++) {
                p.round = round;
                g3_thread_pool_run(pool, count_task, &p);
                for (uint32_t i = 0; i < n; i++)
                    if (atomic_load(&p.runs[i]) != (unsigned)round)
                        fail_msg("%u threads%s, task %d: share %u ran %u times in all", n, pinned ? " on one CPU" : "",
                                 round, i, atomic_load(&p.runs[i]));
            }
            const uint64_t taken = g3_thread_pool_taken_over(pool);
            printf("  %u threads%s: the caller ran %llu of %u late workers' shares\n", n, pinned ? " on one CPU" : "",
                   (unsigned long long)taken, 2000 * (n - 1));
            if (pinned) assert_true(taken > 0);
            g3_thread_pool_free(pool);
        }
    }
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
}

static void test_thread_pool(void **state) {
    for (uint32_t n = 1; n <= 4; n++) {
        g3_thread_pool *pool;
        g3_error err;
        assert_int_equal(g3_thread_pool_new(n, &pool, &err), 0);
        assert_int_equal(g3_thread_pool_size(pool), n);
        pool_probe p = {0};
        for (int round = 1; round <= 300; round++) {
            p.round = round;
            g3_thread_pool_run(pool, probe_task, &p);
            assert_int_equal(p.nth, n);
            for (uint32_t i = 0; i < n; i++) assert_int_equal(p.seen[i], (uint32_t)round);
            if (round % 100 == 0) { /* let the workers fall asleep, then wake them */
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        g3_thread_pool_free(pool);
    }
    g3_thread_pool *pool;
    g3_error err;
    assert_int_equal(g3_thread_pool_new(0, &pool, &err), -1);
    assert_non_null(strstr(err.msg, "at least one thread"));
    /* ranges cover [0, n) exactly, aligned */
    for (uint32_t nth = 1; nth <= 5; nth++) {
        uint64_t next = 0;
        for (uint32_t i = 0; i < nth; i++) {
            uint64_t lo, hi;
            g3_split_range(1000, 32, i, nth, &lo, &hi);
            assert_int_equal(lo, next);
            assert_true(lo % 32 == 0 || lo == 1000);
            next = hi;
        }
        assert_int_equal(next, 1000);
    }
}

/* ---- the matrix-product driver, on the active path, through 3 threads ---- */

static void test_matmul_driver(void **state) {
    g3_cpu_path path;
    assert_int_equal(g3_cpu_active_path(&path, NULL), 0);
    const g3_kernels *k = g3_kernels_get(path);
    g3_thread_pool *pool;
    g3_error err;
    assert_int_equal(g3_thread_pool_new(3, &pool, &err), 0);
    /* T: decode (1, 5), one tile step (9), more rows than a GeGLU step (70) */
    const uint32_t K = 256, N1 = 208, N2 = 67, F = 96, Tmax = 70;
    const uint32_t Ts[] = {1, 5, 9, Tmax};
    g3_mm mm;
    assert_int_equal(g3_mm_init(&mm, pool, k, Tmax, K, &err), 0);
    const uint32_t types[] = {G3_TYPE_Q4_0, G3_TYPE_Q5_0, G3_TYPE_Q8_0, G3_TYPE_Q4_K, G3_TYPE_Q6_K, G3_TYPE_Q4_1, G3_TYPE_Q5_1, G3_TYPE_IQ4_NL,
                              G3_TYPE_BF16, G3_TYPE_F32};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        size_t rb;
        uint8_t *w1 = make_qrows(type, N1, K, &rb), *w2 = make_qrows(type, N2, K, &rb);
        uint8_t *wg = make_qrows(type, F, K, &rb), *wu = make_qrows(type, F, K, &rb);
        g3_matrix m1 = {w1, type, K, N1, rb, NULL}, m2 = {w2, type, K, N2, rb, NULL}, mg = {wg, type, K, F, rb, NULL},
                  mu = {wu, type, K, F, rb, NULL};
        /* Q4_0, Q5_0, Q8_0, Q4_K, Q6_K: all four also interleaved (repack.h), as a model
         * makes them for a path that reads them: m1 (208 rows: a share ends
         * at a multiple of 16, not of 32), m2 (67 rows: 3 left without a
         * group, in the last tile and the last decode share) */
        m1.x16 = g3_x16_pack_matrix(&m1, pool);
        m2.x16 = g3_x16_pack_matrix(&m2, pool);
        mg.x16 = g3_x16_pack_matrix(&mg, pool);
        mu.x16 = g3_x16_pack_matrix(&mu, pool);
        assert_true((m2.x16 != NULL) == (type == G3_TYPE_Q4_0 || type == G3_TYPE_Q5_0 || type == G3_TYPE_Q8_0 ||
                                         type == G3_TYPE_Q4_K || type == G3_TYPE_Q6_K));
        float *x = malloc(sizeof(float) * Tmax * K), *o1 = malloc(sizeof(float) * Tmax * N1),
              *o2 = malloc(sizeof(float) * Tmax * N2), *h = malloc(sizeof(float) * Tmax * F);
        float *ref = malloc(sizeof(float) * (N1 + 2 * F)), *xq = malloc(sizeof(float) * K);
        g3_qa qa, qh;
        assert_int_equal(g3_qa_alloc(&qa, Tmax, K), 0);
        assert_int_equal(g3_qa_alloc(&qh, Tmax, F), 0);
        fill_acts(x, Tmax * K);
        for (size_t ts = 0; ts < sizeof Ts / sizeof Ts[0]; ts++) {
            const uint32_t T = Ts[ts];
            const bool q8 = g3_mm_wants_q8(&mm, &m1);
            if (q8) g3_mm_quantize_input(&mm, x, K, T, K, &qa);
            const g3_mm_in in = {T, K, x, K, q8 ? &qa : NULL};
            const g3_mm_out outs[2] = {{&m1, o1, N1}, {&m2, o2, N2}};
            g3_matmul(&mm, &in, outs, 2);
            g3_mm_geglu(&mm, &in, &mg, &mu, h, F, q8 ? &qh : NULL);
            for (uint32_t t = 0; t < T; t++) {
                const float *xt = x + (size_t)t * K;
                if (q8) dequant_act(&qa, t, xq);
                else memcpy(xq, xt, sizeof(float) * K);
                const g3_qa_row a = g3_qa_get_row(&qa, t);
                for (uint32_t r = 0; r < N1 + N2; r++) {
                    const uint8_t *row = r < N1 ? w1 + r * rb : w2 + (r - N1) * rb;
                    const float got = r < N1 ? o1[t * N1 + r] : o2[t * N2 + r - N1];
                    const float want = q8 ? g3_qa_dot_ref(type, row, &a, K) : g3_type_ops_get(type)->dot_f32(row, xt, K);
                    check_close("g3_matmul", got, want, abs_dot(type, row, xq, K));
                }
                for (uint32_t r = 0; r < F; r++) {
                    float g = q8 ? g3_qa_dot_ref(type, wg + r * rb, &a, K) : g3_type_ops_get(type)->dot_f32(wg + r * rb, xt, K);
                    float u = q8 ? g3_qa_dot_ref(type, wu + r * rb, &a, K) : g3_type_ops_get(type)->dot_f32(wu + r * rb, xt, K);
                    g3_kernels_scalar.gelu_mul(&g, &u, 1);
                    const double scale = abs_dot(type, wg + r * rb, xq, K) * (fabs(u) + 1) + abs_dot(type, wu + r * rb, xq, K) * (fabs(g) + 1);
                    /* gelu(g) * u passes g's summation-order error on times u * gelu'(g),
                     * and gelu' reaches 1.13: twice the products' bound */
                    check_close("g3_mm_geglu", h[t * F + r], g, 2 * scale);
                }
                if (q8) { /* the fused quantization of h is the reference's */
                    g3_qa one;
                    assert_int_equal(g3_qa_alloc(&one, 1, F), 0);
                    quantize_rows_ref(&one, h + (size_t)t * F, 1, F);
                    assert_memory_equal(one.q1, qh.q1 + (size_t)t * F, F);
                    assert_memory_equal(one.q2, qh.q2 + (size_t)t * F, F);
                    g3_qa_free(&one);
                }
            }
        }
        g3_qa_free(&qa);
        g3_qa_free(&qh);
        free(w1); free(w2); free(wg); free(wu); free(x); free(o1); free(o2); free(h); free(ref); free(xq);
        free((void *)m1.x16); free((void *)m2.x16); free((void *)mg.x16); free((void *)mu.x16);
    }
    g3_mm_free(&mm);
    g3_thread_pool_free(pool);
}

/* ---- forcing a path ---- */

static void test_forced_path_is_checked(void **state) {
    const char *model = G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q4_0.gguf";
    char cmd[1024];
    int status;
    snprintf(cmd, sizeof cmd, "G3_CPU=sse9 %s eval -m %s --tokens 2,3 2>&1", G3_BINARY, model);
    char *out = tu_run(cmd, &status);
    assert_non_null(out);
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(out, "G3_CPU=sse9"));
    free(out);
    for (int p = 0; p < G3_CPU_PATH_COUNT; p++) {
        snprintf(cmd, sizeof cmd, "G3_CPU=%s %s eval -m %s --tokens 2,3 2>&1", g3_cpu_path_name((g3_cpu_path)p),
                 G3_BINARY, model);
        out = tu_run(cmd, &status);
        assert_non_null(out);
        if (g3_cpu_has_path((g3_cpu_path)p)) {
            if (status != 0) fail_msg("G3_CPU=%s failed: %s", g3_cpu_path_name((g3_cpu_path)p), out);
        } else {
            assert_int_not_equal(status, 0); /* never silently another path */
            assert_non_null(strstr(out, "runs at most"));
        }
        free(out);
    }
    printf("  CPU: %s; best path %s\n", g3_cpu_features_get()->model, g3_cpu_path_name(g3_cpu_features_get()->best));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_is_bit_identical),
        cmocka_unit_test(test_qgemv_all_types),
        cmocka_unit_test(test_qdot_rows8_all_types),
        cmocka_unit_test(test_x16_kernels),
        cmocka_unit_test(test_qgemm_tiles),
        cmocka_unit_test(test_float_kernels),
        cmocka_unit_test(test_vector_ops),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_thread_pool),
        cmocka_unit_test(test_thread_pool_late_workers),
        cmocka_unit_test(test_matmul_driver),
        cmocka_unit_test(test_forced_path_is_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
