#include "tensor/matmul.h"

#include <stdlib.h>
#include <string.h>

#include "base/checked_math.h"
#include "tensor/repack.h"
#include "tensor/type_info.h"

/* Rows per work unit of the matrix-vector path: walked as G3_DOT_ROWS
 * streams of 32 rows (tens of KiB apart, so the prefetchers see separate
 * streams); a multiple of 32 so fused epilogues see whole activation
 * blocks; small enough that the threads share the work evenly. */
#define GEMV_UNIT_ROWS (32 * G3_DOT_ROWS)

typedef enum { KIND_Q8, KIND_F32, KIND_REF } mm_kind;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static const uint32_t k_quant_types[] = {G3_TYPE_Q8_0, G3_TYPE_Q4_0, G3_TYPE_Q5_0, G3_TYPE_Q4_1, G3_TYPE_Q5_1,
                                         G3_TYPE_IQ4_NL, G3_TYPE_Q4_K, G3_TYPE_Q5_K, G3_TYPE_Q6_K};

/* Per-thread sizes: packed tile (two are kept: the batched GeGLU's gate
 * and up tiles), packer scratch, staging floats. */
static void thread_sizes(const g3_kernels *k, uint32_t max_T, uint32_t max_K, size_t *tile, size_t *tmp,
                         size_t *stage) {
    *tile = *tmp = 0;
    if (k->panel_rows) {
        for (size_t i = 0; i < sizeof k_quant_types / sizeof k_quant_types[0]; i++) {
            /* a type whose block does not divide max_K never meets a K that large */
            const g3_type_info *ti = g3_type_info_get(k_quant_types[i]);
            uint32_t K = max_K - max_K % ti->block_size;
            size_t b = k->qtile_bytes(k_quant_types[i], K);
            if (b > *tile) *tile = b;
        }
        size_t fb = k->ftile_bytes(max_K);
        if (fb > *tile) *tile = fb;
        *tmp = k->qtile_tmp_bytes(max_K);
    }
    /* the "up" half of g3_mm_geglu: a thread's share of F for each of the
     * (< G3_MM_GEMM_MIN_T) decode rows; T x 32 per tile when batched; T x
     * GEMV_UNIT_ROWS when batched without tiles (scalar path) */
    const size_t decode = (size_t)(G3_MM_GEMM_MIN_T - 1) * (max_K + 32);
    const size_t batched = (size_t)max_T * (k->panel_rows ? G3_TILE_ROWS : GEMV_UNIT_ROWS);
    *stage = decode > batched ? decode : batched;
}

uint64_t g3_mm_bytes(const g3_kernels *k, uint32_t n_threads, uint32_t max_T, uint32_t max_K) {
    size_t tile, tmp, stage;
    thread_sizes(k, max_T, max_K, &tile, &tmp, &stage);
    return (uint64_t)n_threads *
           (2 * align64(tile) + align64(tmp) + align64(stage * sizeof(float)) + 4 * sizeof(g3_mm_chunks));
}

int g3_mm_init(g3_mm *mm, g3_thread_pool *pool, const g3_kernels *k, uint32_t max_T, uint32_t max_K,
               g3_error *err) {
    memset(mm, 0, sizeof *mm);
    mm->pool = pool;
    mm->k = k;
    mm->nth = g3_thread_pool_size(pool);
    mm->max_T = max_T;
    mm->max_K = max_K;
    thread_sizes(k, max_T, max_K, &mm->tile_bytes, &mm->tmp_bytes, &mm->stage_floats);
    mm->per_thread =
        2 * align64(mm->tile_bytes) + align64(mm->tmp_bytes) + align64(mm->stage_floats * sizeof(float));
    size_t total;
    void *p = NULL;
    if (g3_mul_overflow_size(mm->per_thread, mm->nth, &total) || posix_memalign(&p, 64, total) != 0)
        return g3_fail(err, "out of memory for the matrix-product buffers (%u threads x %zu bytes)", mm->nth,
                       mm->per_thread);
    mm->buf = p;
    if (posix_memalign(&p, 64, sizeof(g3_mm_chunks) * 4 * mm->nth) != 0) {
        g3_mm_free(mm);
        return g3_fail(err, "out of memory for the decode work lists");
    }
    mm->chunks = p;
    for (uint32_t i = 0; i < 4 * mm->nth; i++) atomic_init(&mm->chunks[i].fb, 0);
    return 0;
}

void g3_mm_free(g3_mm *mm) {
    free(mm->buf);
    free(mm->chunks);
    memset(mm, 0, sizeof *mm);
}

/* which: 0 or 1 (two tiles per thread) */
static uint8_t *thread_tile(const g3_mm *mm, uint32_t ith, int which) {
    return mm->buf + ith * mm->per_thread + which * align64(mm->tile_bytes);
}
static void *thread_tmp(const g3_mm *mm, uint32_t ith) {
    return thread_tile(mm, ith, 0) + 2 * align64(mm->tile_bytes);
}
static float *thread_stage(const g3_mm *mm, uint32_t ith) {
    return (float *)((uint8_t *)thread_tmp(mm, ith) + align64(mm->tmp_bytes));
}

static mm_kind kind_of(const g3_mm *mm, const g3_mm_in *in, const g3_matrix *w) {
    if (in->q && g3_mm_wants_q8(mm, w)) return KIND_Q8;
    if (mm->k->fdot_rows[w->type]) return KIND_F32;
    return KIND_REF;
}

/* The decode kernel of a quantized type: 8-bit activations when asked for
 * and the path has them, else 15-bit. */
static g3_qdot_rows_fn qdot_kernel(const g3_mm *mm, const g3_kernels *kk, uint32_t type) {
    return mm->int8_acts && kk->qdot_rows8[type] ? kk->qdot_rows8[type] : kk->qdot_rows[type];
}

/* Whether the products with w read its x16 copy (repack.h): group g of
 * it starts at byte 16 g row_bytes, as row 16 g of the file's layout. */
static bool uses_x16(const g3_mm *mm, const g3_matrix *w) { return w->x16 && mm->k->qdot_x16; }

static bool use_tiles(const g3_mm *mm, mm_kind kind, uint32_t T) {
    return T >= G3_MM_GEMM_MIN_T && mm->k->panel_rows && kind != KIND_REF;
}

/* Packs the n (<= G3_TILE_ROWS) rows of w from r0 into a tile. */
static void pack_tile(const g3_mm *mm, uint32_t ith, mm_kind kind, const g3_mm_in *in, const g3_matrix *w,
                      uint64_t r0, uint32_t n, uint8_t *tile) {
    if (kind == KIND_Q8 && uses_x16(mm, w) && r0 + n <= g3_x16_grouped_rows(w)) { /* r0: a multiple of 32 */
        mm->k->qpack_tile_x16(w->type, w->x16 + r0 * w->row_bytes, n, in->K, tile);
        return;
    }
    const uint8_t *rows = (const uint8_t *)w->data + r0 * w->row_bytes;
    if (kind == KIND_Q8) mm->k->qpack_tile(w->type, rows, w->row_bytes, n, in->K, tile, thread_tmp(mm, ith));
    else mm->k->fpack_tile(w->type, rows, w->row_bytes, n, in->K, (float *)tile);
}

/* out[t*ldo + i] = row i of a packed tile (n rows) . input row t, t in [t0, t1) */
static void tile_product(const g3_mm *mm, mm_kind kind, const g3_mm_in *in, const g3_matrix *w,
                         const uint8_t *tile, uint32_t n, uint32_t t0, uint32_t t1, float *out, size_t ldo) {
    if (kind == KIND_Q8)
        (mm->int8_acts && mm->k->qgemm_tile8 ? mm->k->qgemm_tile8 : mm->k->qgemm_tile)(w->type, tile, in->K, in->q,
                                                                                      t0, t1, out, ldo, n);
    else mm->k->fgemm_tile((const float *)tile, in->K, in->x, in->ldx, t0, t1, out, ldo, n);
}

/* out (first output of the unit; out[t*ldo + i]) = rows r0..r0+nr of w . in */
static void run_rows(const g3_mm *mm, uint32_t ith, const g3_mm_in *in, const g3_matrix *w, uint64_t r0,
                     uint32_t nr, float *out, size_t ldo) {
    const g3_kernels *k = mm->k;
    const mm_kind kind = kind_of(mm, in, w);
    const uint8_t *rows = (const uint8_t *)w->data + r0 * w->row_bytes;
    const size_t rb = w->row_bytes;
    if (use_tiles(mm, kind, in->T)) {
        uint8_t *tile = thread_tile(mm, ith, 0);
        for (uint32_t done = 0; done < nr; done += G3_TILE_ROWS) {
            const uint32_t n = nr - done < G3_TILE_ROWS ? nr - done : G3_TILE_ROWS;
            pack_tile(mm, ith, kind, in, w, r0 + done, n, tile);
            tile_product(mm, kind, in, w, tile, n, 0, in->T, out + done, ldo);
        }
        return;
    }
    /* decode: G3_DOT_ROWS streams through the unit, one row of each per step;
     * the other input rows reuse the weights while they are in cache */
    const uint32_t per = (nr + G3_DOT_ROWS - 1) / G3_DOT_ROWS;
    const g3_kernels *kk = kind == KIND_REF ? &g3_kernels_scalar : k;
    for (uint32_t i = 0; i < per; i++) {
        const uint8_t *ptr[G3_DOT_ROWS];
        uint32_t idx[G3_DOT_ROWS], m = 0;
        for (uint32_t st = 0; st < G3_DOT_ROWS; st++) {
            const uint32_t r = st * per + i;
            if (r < nr) {
                ptr[m] = rows + r * rb;
                idx[m++] = r;
            }
        }
        for (uint32_t t = 0; t < in->T; t++) {
            float o[G3_DOT_ROWS];
            if (kind == KIND_Q8) {
                const g3_qa_row a = g3_qa_get_row(in->q, t);
                qdot_kernel(mm, kk, w->type)(ptr, m, in->K, &a, o);
            } else {
                kk->fdot_rows[w->type](ptr, m, in->K, in->x + t * in->ldx, o);
            }
            for (uint32_t j = 0; j < m; j++) out[t * ldo + idx[j]] = o[j];
        }
    }
}

static uint32_t unit_rows(const g3_mm *mm, const g3_mm_in *in, const g3_matrix *w) {
    return use_tiles(mm, kind_of(mm, in, w), in->T) ? G3_TILE_ROWS : GEMV_UNIT_ROWS;
}

/* Work split. Decode (T < G3_MM_GEMM_MIN_T): each thread owns an equal
 * share of every matrix (multiples of 32 rows), walked as G3_DOT_ROWS
 * streams; the streams advance a chunk of steps at a time, so the owner's
 * streams stay long and its prefetches run on into its next chunk. A
 * thread that runs out of work steals chunks from the back of another's
 * share: a core that is busy with something else (or just slower) does
 * not hold the step up, and nothing is stolen when both keep pace.
 * Batched: 32-row tiles (or GEMV_UNIT_ROWS rows on the scalar path) from
 * an atomic counter. */
#define DECODE_CHUNKS 8 /* chunks per share: the granularity of stealing */

static bool decode_split(const g3_mm_in *in) { return in->T < G3_MM_GEMM_MIN_T; }

/* The geometry of thread ith's share of a matrix of n rows: rows [lo, hi)
 * as `streams` streams of `per` rows (a multiple of 32), chunks of `cs`
 * steps. */
typedef struct share {
    uint64_t lo, hi;
    uint32_t per, cs, n_chunks;
} share;

static share share_of(uint64_t n, uint32_t ith, uint32_t nth, uint32_t streams) {
    share sh;
    g3_split_range(n, 32, ith, nth, &sh.lo, &sh.hi);
    const uint64_t nr = sh.hi - sh.lo;
    sh.per = (uint32_t)((nr + 32 * streams - 1) / (32 * streams) * 32);
    sh.cs = (sh.per / DECODE_CHUNKS + 31) / 32 * 32;
    if (sh.cs == 0) sh.cs = 32;
    sh.n_chunks = sh.per ? (sh.per + sh.cs - 1) / sh.cs : 0;
    return sh;
}

/* Streams of a decode share: G3_DOT_ROWS for the file's layout (rows far
 * apart keep more bytes in flight than one), one for an x16 copy: its
 * groups are long stretches that the kernel prefetches ahead, and one
 * stretch per share has no restarts for the prefetch to catch up with. */
static uint32_t decode_streams(const g3_mm *mm, const g3_matrix *w) {
    return g3_mm_wants_q8(mm, w) && uses_x16(mm, w) ? 1 : G3_DOT_ROWS;
}

static void chunks_reset(g3_mm_chunks *c, uint32_t n_chunks) {
    atomic_store_explicit(&c->fb, (uint64_t)n_chunks, memory_order_relaxed); /* front 0, back n */
}

/* Takes a chunk from the front (owner) or the back (thief); -1 when none is left. */
static int64_t chunks_take(g3_mm_chunks *c, bool back) {
    uint64_t v = atomic_load_explicit(&c->fb, memory_order_relaxed);
    for (;;) {
        const uint32_t f = (uint32_t)(v >> 32), b = (uint32_t)v;
        if (f >= b) return -1;
        const uint64_t nv = back ? ((uint64_t)f << 32 | (b - 1)) : ((uint64_t)(f + 1) << 32 | b);
        if (atomic_compare_exchange_weak_explicit(&c->fb, &v, nv, memory_order_relaxed, memory_order_relaxed))
            return back ? (int64_t)(b - 1) : (int64_t)f;
    }
}

/* run_steps for a matrix with an x16 copy: the piece [i0, i1) of each
 * stream in turn, a group of 16 rows at a time. A group is one stretch of
 * memory (23 KiB at K = 2560), so a piece is one long stretch too and the
 * kernel's prefetch runs on from one group into the next; taking a group
 * of each stream in turn instead cost a prefetch distance of misses per
 * group. (Streams, chunks and shares start at multiples of 32; a share
 * ends at a multiple of 32 or at n_out.) The last n_out % 16 rows have no
 * group: they are read in the file's layout. */
static void run_steps_x16(const g3_mm *mm, const g3_mm_in *in, const g3_matrix *w, const share *sh, uint32_t i0,
                          uint32_t i1, float *out, size_t ldo, uint64_t out_row0) {
    const uint64_t grouped = g3_x16_grouped_rows(w);
    for (uint32_t st = 0; st < G3_DOT_ROWS; st++)
        for (uint32_t i = i0; i < i1; i += G3_X16_ROWS) {
            const uint64_t r = sh->lo + (uint64_t)st * sh->per + i;
            if (r >= sh->hi) break;
            const uint8_t *group = w->x16 + r * w->row_bytes;
            for (uint32_t t = 0; t < in->T; t++) {
                float o[G3_X16_ROWS];
                const g3_qa_row a = g3_qa_get_row(in->q, t);
                if (r + G3_X16_ROWS <= grouped) {
                    mm->k->qdot_x16(w->type, group, in->K, &a, mm->int8_acts, o);
                    memcpy(out + t * ldo + (r - out_row0), o, sizeof o);
                    continue;
                }
                const uint32_t n = (uint32_t)((sh->hi < r + G3_X16_ROWS ? sh->hi : r + G3_X16_ROWS) - r);
                for (uint32_t j = 0; j < n; j += G3_DOT_ROWS) {
                    const uint8_t *ptr[G3_DOT_ROWS];
                    const uint32_t m = n - j < G3_DOT_ROWS ? n - j : G3_DOT_ROWS;
                    for (uint32_t q = 0; q < m; q++) ptr[q] = (const uint8_t *)w->data + (r + j + q) * w->row_bytes;
                    qdot_kernel(mm, mm->k, w->type)(ptr, m, in->K, &a, o);
                    memcpy(out + t * ldo + (r + j - out_row0), o, sizeof(float) * m);
                }
            }
        }
}

/* Steps [i0, i1) of the streams of a share: rows r = lo + s*per + i for i
 * in [i0, i1); out[t*ldo + r - out_row0]. */
static void run_steps(const g3_mm *mm, const g3_mm_in *in, const g3_matrix *w, const share *sh, uint32_t i0,
                      uint32_t i1, float *out, size_t ldo, uint64_t out_row0) {
    const g3_kernels *k = mm->k;
    const mm_kind kind = kind_of(mm, in, w);
    const g3_kernels *kk = kind == KIND_REF ? &g3_kernels_scalar : k;
    if (kind == KIND_Q8 && uses_x16(mm, w)) {
        run_steps_x16(mm, in, w, sh, i0, i1, out, ldo, out_row0);
        return;
    }
    const uint8_t *base = (const uint8_t *)w->data;
    for (uint32_t i = i0; i < i1; i++) {
        const uint8_t *ptr[G3_DOT_ROWS];
        uint64_t row[G3_DOT_ROWS];
        uint32_t m = 0;
        for (uint32_t st = 0; st < G3_DOT_ROWS; st++) {
            const uint64_t r = sh->lo + (uint64_t)st * sh->per + i;
            if (r < sh->hi) {
                ptr[m] = base + r * w->row_bytes;
                row[m++] = r;
            }
        }
        if (!m) continue;
        for (uint32_t t = 0; t < in->T; t++) {
            float o[G3_DOT_ROWS];
            if (kind == KIND_Q8) {
                const g3_qa_row a = g3_qa_get_row(in->q, t);
                qdot_kernel(mm, kk, w->type)(ptr, m, in->K, &a, o);
            } else {
                kk->fdot_rows[w->type](ptr, m, in->K, in->x + t * in->ldx, o);
            }
            for (uint32_t j = 0; j < m; j++) out[t * ldo + (row[j] - out_row0)] = o[j];
        }
    }
}

/* ---- g3_matmul ---- */

typedef struct matmul_task {
    const g3_mm *mm;
    const g3_mm_in *in;
    const g3_mm_out *outs;
    uint32_t n;
    uint32_t rows_per_unit[4];
    uint64_t unit_end[4]; /* cumulative unit counts */
    atomic_uint_fast64_t next;
} matmul_task;

static void matmul_chunk(const matmul_task *task, uint32_t i, uint32_t owner, uint32_t c) {
    const g3_mm_out *o = &task->outs[i];
    const share sh = share_of(o->w->n_out, owner, task->mm->nth, decode_streams(task->mm, o->w));
    const uint32_t i0 = c * sh.cs, i1 = i0 + sh.cs < sh.per ? i0 + sh.cs : sh.per;
    run_steps(task->mm, task->in, o->w, &sh, i0, i1, o->out, o->ldo, 0);
}

static void matmul_worker(void *arg, uint32_t ith, uint32_t nth) {
    matmul_task *task = arg;
    if (decode_split(task->in)) {
        g3_mm_chunks *lists = task->mm->chunks;
        for (uint32_t i = 0; i < task->n; i++)
            for (int64_t c; (c = chunks_take(&lists[i * nth + ith], false)) >= 0;)
                matmul_chunk(task, i, ith, (uint32_t)c);
        for (uint32_t d = 1; d < nth; d++) /* then help the others, from the back */
            for (uint32_t i = 0; i < task->n; i++) {
                const uint32_t other = (ith + d) % nth;
                for (int64_t c; (c = chunks_take(&lists[i * nth + other], true)) >= 0;)
                    matmul_chunk(task, i, other, (uint32_t)c);
            }
        return;
    }
    const uint64_t total = task->unit_end[task->n - 1];
    for (;;) {
        uint64_t u = atomic_fetch_add_explicit(&task->next, 1, memory_order_relaxed);
        if (u >= total) break;
        uint32_t i = 0;
        while (u >= task->unit_end[i]) i++;
        const uint64_t first = i ? task->unit_end[i - 1] : 0;
        const g3_mm_out *o = &task->outs[i];
        const uint64_t r0 = (u - first) * task->rows_per_unit[i];
        const uint64_t left = o->w->n_out - r0;
        const uint32_t nr = left < task->rows_per_unit[i] ? (uint32_t)left : task->rows_per_unit[i];
        run_rows(task->mm, ith, task->in, o->w, r0, nr, o->out + r0, o->ldo);
    }
}

void g3_matmul(g3_mm *mm, const g3_mm_in *in, const g3_mm_out *outs, uint32_t n) {
    matmul_task task = {.mm = mm, .in = in, .outs = outs, .n = n < 4 ? n : 4};
    uint64_t units = 0;
    for (uint32_t i = 0; i < task.n; i++) {
        task.rows_per_unit[i] = unit_rows(mm, in, outs[i].w);
        units += (outs[i].w->n_out + task.rows_per_unit[i] - 1) / task.rows_per_unit[i];
        task.unit_end[i] = units;
        if (decode_split(in))
            for (uint32_t t = 0; t < mm->nth; t++)
                chunks_reset(&mm->chunks[i * mm->nth + t],
                             share_of(outs[i].w->n_out, t, mm->nth, decode_streams(mm, outs[i].w)).n_chunks);
    }
    atomic_init(&task.next, 0);
    g3_thread_pool_run(mm->pool, matmul_worker, &task);
}

/* ---- g3_mm_geglu ---- */

typedef struct geglu_task {
    const g3_mm *mm;
    const g3_mm_in *in;
    const g3_matrix *wg, *wu;
    float *h;
    size_t ldh;
    g3_qa *hq;
    uint32_t rows_per_unit;
    uint64_t units;
    atomic_uint_fast64_t next;
} geglu_task;

/* h rows of a chunk: gate into h, up into the staging area (indexed from
 * the share's first row), then gelu(gate) * up and its 8-bit form, per
 * stream piece (whole 32-row blocks: shares, streams and chunks start at
 * multiples of 32) */
static void geglu_epilogue(const geglu_task *task, uint64_t r0, uint32_t nr, uint32_t t0, uint32_t t1,
                           const float *stage, size_t lds) {
    const g3_mm *mm = task->mm;
    for (uint32_t t = t0; t < t1; t++) {
        float *hr = task->h + t * task->ldh;
        mm->k->gelu_mul(hr + r0, stage + t * lds, nr);
        if (task->hq) {
            const g3_qa_row_out o = g3_qa_row_out_get(task->hq, t);
            mm->k->quantize_blocks(hr, (uint32_t)(r0 / 32), (uint32_t)((r0 + nr) / 32), &o);
        }
    }
}

/* gate and up walk the same geometry (the epilogue pairs their rows) */
static uint32_t geglu_streams(const g3_mm *mm, const g3_matrix *wg, const g3_matrix *wu) {
    const uint32_t a = decode_streams(mm, wg), b = decode_streams(mm, wu);
    return a > b ? a : b;
}

static void geglu_chunk(const geglu_task *task, uint32_t ith, uint32_t owner, uint32_t c) {
    const g3_mm *mm = task->mm;
    const share sh = share_of(task->wg->n_out, owner, mm->nth, geglu_streams(mm, task->wg, task->wu));
    const uint32_t i0 = c * sh.cs, i1 = i0 + sh.cs < sh.per ? i0 + sh.cs : sh.per;
    const size_t lds = (size_t)(sh.hi - sh.lo); /* stage row stride: the share */
    float *stage = thread_stage(mm, ith);
    run_steps(mm, task->in, task->wg, &sh, i0, i1, task->h, task->ldh, 0);
    run_steps(mm, task->in, task->wu, &sh, i0, i1, stage, lds, sh.lo);
    for (uint32_t st = 0; st < G3_DOT_ROWS; st++) {
        const uint64_t a = sh.lo + (uint64_t)st * sh.per + i0;
        uint64_t b = sh.lo + (uint64_t)st * sh.per + i1;
        if (b > sh.hi) b = sh.hi;
        if (a < b) geglu_epilogue(task, a, (uint32_t)(b - a), 0, task->in->T, stage + (a - sh.lo), lds);
    }
}

/* Input rows per step of the tiled GeGLU: their gate outputs and staged up
 * outputs are still in L1/L2 when the epilogue reads them (all T rows of
 * a tile at once went out to L3 first: 128 bytes, 27 KiB apart, per row) */
#define GEGLU_T_STEP 64

/* batched: rows [r0, r0+nr) (multiples of 32) of the unit, up staged */
static void geglu_rows(const geglu_task *task, uint32_t ith, uint64_t r0, uint32_t nr) {
    const g3_mm *mm = task->mm;
    const g3_mm_in *in = task->in;
    float *stage = thread_stage(mm, ith);
    const mm_kind kg = kind_of(mm, in, task->wg), ku = kind_of(mm, in, task->wu);
    if (nr <= G3_TILE_ROWS && use_tiles(mm, kg, in->T) && use_tiles(mm, ku, in->T)) {
        uint8_t *tg = thread_tile(mm, ith, 0), *tu = thread_tile(mm, ith, 1);
        pack_tile(mm, ith, kg, in, task->wg, r0, nr, tg);
        pack_tile(mm, ith, ku, in, task->wu, r0, nr, tu);
        for (uint32_t t0 = 0; t0 < in->T; t0 += GEGLU_T_STEP) {
            const uint32_t t1 = in->T - t0 < GEGLU_T_STEP ? in->T : t0 + GEGLU_T_STEP;
            tile_product(mm, kg, in, task->wg, tg, nr, t0, t1, task->h + r0, task->ldh);
            tile_product(mm, ku, in, task->wu, tu, nr, t0, t1, stage, nr);
            geglu_epilogue(task, r0, nr, t0, t1, stage, nr);
        }
        return;
    }
    run_rows(mm, ith, task->in, task->wg, r0, nr, task->h + r0, task->ldh);
    run_rows(mm, ith, task->in, task->wu, r0, nr, stage, nr);
    geglu_epilogue(task, r0, nr, 0, in->T, stage, nr);
}

static void geglu_worker(void *arg, uint32_t ith, uint32_t nth) {
    geglu_task *task = arg;
    if (decode_split(task->in)) {
        g3_mm_chunks *lists = task->mm->chunks;
        for (int64_t c; (c = chunks_take(&lists[ith], false)) >= 0;) geglu_chunk(task, ith, ith, (uint32_t)c);
        for (uint32_t d = 1; d < nth; d++) {
            const uint32_t other = (ith + d) % nth;
            for (int64_t c; (c = chunks_take(&lists[other], true)) >= 0;) geglu_chunk(task, ith, other, (uint32_t)c);
        }
        return;
    }
    for (;;) {
        uint64_t u = atomic_fetch_add_explicit(&task->next, 1, memory_order_relaxed);
        if (u >= task->units) break;
        const uint64_t r0 = u * task->rows_per_unit, left = task->wg->n_out - r0;
        geglu_rows(task, ith, r0, left < task->rows_per_unit ? (uint32_t)left : task->rows_per_unit);
    }
}

void g3_mm_geglu(g3_mm *mm, const g3_mm_in *in, const g3_matrix *wg, const g3_matrix *wu, float *h, size_t ldh,
                 g3_qa *hq) {
    /* decode: the 8-bit form of h is made in the epilogue, while h is in
     * cache. Batched: afterwards, a row at a time. Made per 32-row tile it
     * would write 32 bytes (and 4-byte scales) of each of the T rows per
     * tile: half cache lines, whose other halves the other thread's tile is
     * writing at the same time (measured on the 1B prefill: the quantizer
     * stalled on these lines, 8% of the time) */
    const bool quantize_in_epilogue = decode_split(in);
    geglu_task task = {.mm = mm, .in = in, .wg = wg, .wu = wu, .h = h, .ldh = ldh,
                       .hq = quantize_in_epilogue ? hq : NULL};
    if (hq) {
        hq->K = (uint32_t)wg->n_out;
        hq->n_rows = in->T;
    }
    /* batched: 32-row tiles when either product runs on tiles (the staging
     * holds T x 32 then), else GEMV_UNIT_ROWS */
    const bool tiles = use_tiles(mm, kind_of(mm, in, wg), in->T) || use_tiles(mm, kind_of(mm, in, wu), in->T);
    task.rows_per_unit = tiles ? G3_TILE_ROWS : GEMV_UNIT_ROWS;
    task.units = (wg->n_out + task.rows_per_unit - 1) / task.rows_per_unit;
    if (decode_split(in))
        for (uint32_t t = 0; t < mm->nth; t++)
            chunks_reset(&mm->chunks[t], share_of(wg->n_out, t, mm->nth, geglu_streams(mm, wg, wu)).n_chunks);
    atomic_init(&task.next, 0);
    g3_thread_pool_run(mm->pool, geglu_worker, &task);
    if (hq && !quantize_in_epilogue) g3_mm_quantize_input(mm, h, ldh, in->T, hq->K, hq);
}

/* ---- inputs: norm and quantization ---- */

typedef struct input_task {
    const g3_mm *mm;
    const float *x;
    float *xb;
    size_t ld;
    uint32_t T, K;
    const float *w;
    float eps;
    g3_qa *q;
} input_task;

static void input_rows(const input_task *task, uint32_t t0, uint32_t t1) {
    const g3_kernels *k = task->mm->k;
    for (uint32_t t = t0; t < t1; t++) {
        const float *src = task->x + t * task->ld;
        if (task->w) {
            k->rmsnorm(task->xb + t * task->ld, src, task->w, task->K, task->eps);
            src = task->xb + t * task->ld;
        }
        if (task->q) {
            const g3_qa_row_out o = g3_qa_row_out_get(task->q, t);
            k->quantize_blocks(src, 0, task->K / 32, &o);
        }
    }
}

static void input_worker(void *arg, uint32_t ith, uint32_t nth) {
    const input_task *task = arg;
    uint64_t lo, hi;
    g3_split_range(task->T, 1, ith, nth, &lo, &hi);
    input_rows(task, (uint32_t)lo, (uint32_t)hi);
}

static void run_input(g3_mm *mm, input_task *task) {
    if (task->q) {
        task->q->K = task->K;
        task->q->n_rows = task->T;
    }
    if (task->T == 1) input_rows(task, 0, 1); /* not worth a dispatch */
    else g3_thread_pool_run(mm->pool, input_worker, task);
}

void g3_mm_norm_input(g3_mm *mm, const float *x, float *xb, size_t ld, uint32_t T, uint32_t K, const float *w,
                      float eps, g3_qa *q) {
    input_task task = {mm, x, xb, ld, T, K, w, eps, q};
    run_input(mm, &task);
}

void g3_mm_quantize_input(g3_mm *mm, const float *x, size_t ldx, uint32_t T, uint32_t K, g3_qa *q) {
    input_task task = {mm, x, NULL, ldx, T, K, NULL, 0.0f, q};
    run_input(mm, &task);
}
