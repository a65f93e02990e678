#include "model/gemma3_model.h"

#include <stdlib.h>

#include "base/error.h"
#include "cuda/g3_cuda.h"
#include "model/gemma3_config.h"
#include "tensor/type_info.h"

int g3_model_load(const char *path, g3_model **out, g3_error *err) {
    *out = NULL;
    g3_model *m = calloc(1, sizeof *m);
    if (!m) return g3_fail(err, "out of memory");
    if (g3_gguf_open(path, &m->gguf, err)) goto fail; /* message names the file */
    if (g3_config_from_gguf(m->gguf, &m->cfg, err) || g3_weights_load(m->gguf, &m->cfg, &m->w, err)) {
        g3_error_prefix(err, "%s: ", path);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    g3_model_free(m);
    return -1;
}

void g3_model_free(g3_model *m) {
    if (!m) return;
    g3_cuda_model_free(m->cuda);
    g3_weights_free(&m->w);
    if (m->gguf) g3_gguf_close(m->gguf);
    free(m);
}

const g3_config *g3_model_config(const g3_model *m) { return &m->cfg; }

/* llama.cpp's converter copies the chat template of instruction-tuned
 * checkpoints into the file; a pretrained checkpoint has none. */
bool g3_model_is_instruction_tuned(const g3_model *m) {
    return g3_gguf_find_kv(m->gguf, "tokenizer.chat_template") != NULL;
}

static void print_tensor_summary(const g3_gguf *g, FILE *out) {
    /* bytes and counts per type, then the total */
    uint64_t bytes[G3_TYPE_COUNT] = {0}, count[G3_TYPE_COUNT] = {0}, total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        if (t->type < G3_TYPE_COUNT) {
            bytes[t->type] += t->n_bytes;
            count[t->type]++;
        }
        total += t->n_bytes;
    }
    fprintf(out, "tensors:            %llu, %.2f MiB\n", (unsigned long long)g->n_tensors, total / 1048576.0);
    for (int ty = 0; ty < G3_TYPE_COUNT; ty++) {
        if (!count[ty]) continue;
        fprintf(out, "  %-8s %5llu tensors %10.2f MiB\n", g3_type_info_get((uint32_t)ty)->name,
                (unsigned long long)count[ty], bytes[ty] / 1048576.0);
    }
}

void g3_model_print_info(const g3_model *m, FILE *out) {
    const g3_config *c = &m->cfg;
    char buf[32];
    fprintf(out, "architecture:       gemma3\n");
    fprintf(out, "layers:             %u\n", c->n_layer);
    fprintf(out, "embedding:          %u\n", c->n_embd);
    fprintf(out, "feed-forward:       %u\n", c->n_ff);
    fprintf(out, "heads:              %u (kv heads %u, head size %u)\n", c->n_head, c->n_head_kv, c->head_dim);
    fprintf(out, "vocabulary:         %u\n", c->n_vocab);
    fprintf(out, "context (trained):  %u\n", c->n_ctx_train);
    fprintf(out, "sliding window:     %u\n", c->window);
    fprintf(out, "rope base:          global %g (linear scaling %g), local %g\n", c->rope_base_global,
            c->rope_scale_global, c->rope_base_local);
    fprintf(out, "rms epsilon:        %g\n", c->rms_eps);
    fprintf(out, "attention scale:    %.6g\n", c->attn_scale);
    fprintf(out, "soft-capping:       attention %g, final %g (0 = none)\n", c->attn_softcap, c->final_softcap);
    /* a count, then the indices: "global layers: 5" read as five of them */
    uint32_t n_global = 0;
    for (uint32_t il = 0; il < c->n_layer; il++) n_global += c->is_global[il];
    fprintf(out, "global layers:      %u of %u (indices", n_global, c->n_layer);
    for (uint32_t il = 0; il < c->n_layer; il++)
        if (c->is_global[il]) fprintf(out, " %u", il);
    fprintf(out, "; the others: sliding window)\n");
    fprintf(out, "output:             %s (%s)\n", m->w.output_tied ? "tied to token_embd" : "output.weight",
            g3_type_name(m->w.output.type, buf));
    print_tensor_summary(m->gguf, out);
}
