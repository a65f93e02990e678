/* siglip.h: the SigLIP vision encoder + Gemma 3 projector, inside the
 * library (the public surface is include/gemma3_vision.h).
 *
 * siglip_load.c reads the mmproj GGUF (clip.* keys, v.* and mm.* tensors)
 * into this struct and sizes the scratch of one image; siglip_forward.c runs
 * an image through it as one batched pass. Matrices point into the file's
 * map; vectors (biases, norms, position embeddings) and the transposed
 * projection are f32 copies. */
#ifndef G3_MODEL_SIGLIP_H
#define G3_MODEL_SIGLIP_H

#include <stdint.h>

#include "gemma3_vision.h"
#include "model/gguf.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/matrix.h"
#include "tensor/quant_act.h"

typedef struct g3_siglip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *bq, *bk, *bv, *bo, *b_up, *b_down;
    g3_matrix wq, wk, wv, wo; /* W -> W */
    g3_matrix w_up;           /* W -> F (SigLIP fc1) */
    g3_matrix w_down;         /* F -> W (fc2) */
} g3_siglip_layer;

struct g3_vision {
    char path[256];
    g3_gguf *gguf;

    /* hyperparameters */
    uint32_t image_size, patch, side; /* side = image_size / patch */
    uint32_t n_patches;               /* side * side */
    uint32_t n_embd;                  /* W: SigLIP width */
    uint32_t n_ff, n_layer, n_head, head_dim;
    uint32_t pool;                    /* average-pool kernel = stride */
    uint32_t n_tokens;                /* (side / pool)^2 */
    uint32_t n_proj;                  /* text model n_embd */
    float eps;                        /* LayerNorm and the projector's RMSNorm */
    float mean[3], std[3];

    /* weights */
    g3_matrix patch_w;                /* 3*p*p -> W (conv kernel rows, [c][ky][kx]) */
    const float *patch_b, *pos;       /* W; n_patches x W */
    g3_siglip_layer *layers;
    const float *post_w, *post_b, *soft_norm;
    g3_matrix proj;                   /* W -> n_proj, f32 rows of proj_t */
    float *proj_t;                    /* n_proj x W: input_projection transposed */
    float *vecs;                      /* storage for the f32 vectors */

    /* run state, sized for one image */
    g3_thread_pool *pool_threads;
    const g3_kernels *k;
    g3_mm mm;
    uint32_t q_rows;                  /* queries per attention chunk */
    float *x, *xb, *q, *kk, *vv, *att; /* n_patches x W each */
    float *h;                         /* n_patches x F; also the im2col patches */
    float *scores;                    /* q_rows x n_patches */
    float *vt;                        /* head_dim x n_patches: one head's V transposed */
    float *ot;                        /* head_dim x q_rows: one head's output, transposed */
    float *ones;                      /* F ones: gelu through the kernel table's gelu_mul */
    float *pooled;                    /* n_tokens x W */
    g3_qa qa;                         /* 8-bit inputs for quantized weights (cap_K 0: none) */
};

/* The shape that sizes an image's scratch. */
typedef struct g3_siglip_dims {
    uint32_t n_patches, n_embd, n_ff, head_dim;
    uint32_t patch_in; /* 3 * patch * patch */
    uint32_t n_tokens, n_proj;
} g3_siglip_dims;

/* Bytes g3_vision_load allocates besides the mapped weights: the scratch
 * of one image (activations, scores, per-thread product buffers, 8-bit
 * inputs for quantized matrices up to cap_k wide) and the f32 transposed
 * projection. The memory planner counts the same figure. */
uint64_t g3_siglip_scratch_bytes(const g3_siglip_dims *d, uint32_t cap_k, uint32_t n_threads);
/* The same for an mmproj file (its clip.* keys and tensor types); fails
 * when its projection does not match n_embd_text (0: not checked). */
int g3_siglip_plan_file(const g3_gguf *g, uint32_t n_embd_text, uint32_t n_threads, uint64_t *bytes,
                        g3_error *err);

/* siglip_forward.c */
int g3_siglip_encode(g3_vision *v, const float *pixels, float *out, g3_error *err);

#endif
