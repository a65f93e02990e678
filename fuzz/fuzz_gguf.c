/* libFuzzer target: the GGUF parser on arbitrary bytes. Every accessor is
 * exercised on what parses, so an out-of-bounds pointer would be touched. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy, so ASan sees any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    g3_gguf *g;
    g3_error err;
    if (g3_gguf_parse(copy, size, &g, &err) == 0) {
        volatile uint64_t sink = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const g3_gguf_tensor *t = &g->tensors[i];
            if (t->n_bytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->n_bytes - 1];
        }
        for (uint64_t i = 0; i < g->n_kv; i++) {
            const g3_gguf_value *v = &g->kv[i].value;
            if (v->type == G3_GGUF_ARRAY && v->v.arr.elem_type != G3_GGUF_STRING &&
                v->v.arr.elem_type != G3_GGUF_ARRAY && v->v.arr.n)
                sink += g3_gguf_array_f64(&v->v.arr, v->v.arr.n - 1) != 0.0;
        }
        uint32_t u;
        g3_gguf_get_u32(g, "gemma3.block_count", false, 0, &u, &err);
        (void)sink;
        g3_gguf_close(g);
    }
    free(copy);
    return 0;
}
