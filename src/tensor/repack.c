#include "tensor/repack.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/type_info.h"

bool g3_x16_supported(uint32_t type, uint64_t n_in, uint64_t n_out) {
    return (type == G3_TYPE_Q4_0 || type == G3_TYPE_Q8_0) && n_in > 0 && n_in % 64 == 0 && n_out >= G3_X16_ROWS;
}

/* code bytes of one block of 16 rows */
static size_t block_code_bytes(uint32_t type) { return type == G3_TYPE_Q8_0 ? 512 : 256; }

size_t g3_x16_unit_bytes(uint32_t type) { return 2 * (32 + block_code_bytes(type)); }

/* block size in the file and the number of 64-byte code chunks per block */
static size_t file_block_bytes(uint32_t type) { return type == G3_TYPE_Q8_0 ? 34 : 18; }
static uint32_t chunks_per_block(uint32_t type) { return type == G3_TYPE_Q8_0 ? 8 : 4; }

void g3_x16_pack_group(uint32_t type, const uint8_t *rows, size_t row_bytes, uint64_t K, uint8_t *dst) {
    const size_t bb = file_block_bytes(type), cb = block_code_bytes(type);
    const uint32_t nc = chunks_per_block(type);
    const uint8_t flip = type == G3_TYPE_Q8_0 ? 0x80 : 0x00;
    for (uint64_t p = 0; p < K / 64; p++) {
        uint8_t *u = dst + p * g3_x16_unit_bytes(type);
        for (uint32_t h = 0; h < 2; h++) {
            uint8_t *codes = u + 64 + h * cb;
            for (uint32_t r = 0; r < G3_X16_ROWS; r++) {
                const uint8_t *blk = rows + r * row_bytes + (2 * p + h) * bb;
                memcpy(u + 32 * h + 2 * r, blk, 2);
                for (uint32_t c = 0; c < nc; c++)
                    for (uint32_t i = 0; i < 4; i++) codes[64 * c + 4 * r + i] = blk[2 + 4 * c + i] ^ flip;
            }
        }
    }
}

void g3_x16_unpack_row(uint32_t type, const uint8_t *group, uint64_t K, uint32_t r, uint8_t *row) {
    const size_t bb = file_block_bytes(type), cb = block_code_bytes(type);
    const uint32_t nc = chunks_per_block(type);
    const uint8_t flip = type == G3_TYPE_Q8_0 ? 0x80 : 0x00;
    for (uint64_t b = 0; b < K / 32; b++) {
        const uint8_t *u = group + (b / 2) * g3_x16_unit_bytes(type);
        const uint32_t h = (uint32_t)(b % 2);
        uint8_t *blk = row + b * bb;
        memcpy(blk, u + 32 * h + 2 * r, 2);
        for (uint32_t c = 0; c < nc; c++)
            for (uint32_t i = 0; i < 4; i++) blk[2 + 4 * c + i] = u[64 + h * cb + 64 * c + 4 * r + i] ^ flip;
    }
}

uint8_t *g3_x16_pack_matrix(const g3_matrix *m) {
    if (!g3_x16_supported(m->type, m->n_in, m->n_out)) return NULL;
    const size_t gb = g3_x16_group_bytes(m->type, m->n_in);
    const uint64_t n_groups = m->n_out / G3_X16_ROWS;
    if (gb != G3_X16_ROWS * m->row_bytes || n_groups > SIZE_MAX / gb) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, gb * n_groups) != 0) return NULL;
    uint8_t *dst = p;
    for (uint64_t g = 0; g < n_groups; g++)
        g3_x16_pack_group(m->type, (const uint8_t *)m->data + g * gb, m->row_bytes, m->n_in, dst + g * gb);
    return dst;
}
