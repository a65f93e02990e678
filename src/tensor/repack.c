#include "tensor/repack.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tensor/type_info.h"

bool g3_x16_supported(uint32_t type, uint64_t n_in, uint64_t n_out) {
    const bool legacy = type == G3_TYPE_Q4_0 || type == G3_TYPE_Q5_0 || type == G3_TYPE_Q8_0;
    return (legacy || type == G3_TYPE_Q4_K || type == G3_TYPE_Q6_K) && n_in > 0 && n_in % g3_x16_unit_values(type) == 0 &&
           n_out >= G3_X16_ROWS;
}

/* Per block of 16 rows: code bytes, and Q5_0's fifth-bit masks */
static size_t block_code_bytes(uint32_t type) { return type == G3_TYPE_Q8_0 ? 512 : 256; }
static size_t block_mask_bytes(uint32_t type) { return type == G3_TYPE_Q5_0 ? 64 : 0; }

size_t g3_x16_unit_bytes(uint32_t type) {
    if (type == G3_TYPE_Q4_K) return 16 * 144;
    if (type == G3_TYPE_Q6_K) return 16 * 210;
    return 2 * (32 + block_mask_bytes(type) + block_code_bytes(type));
}

/* The file's block: bytes, where the codes start, and the 64-byte code
 * chunks of a block in the copy */
static size_t file_block_bytes(uint32_t type) { return type == G3_TYPE_Q8_0 ? 34 : type == G3_TYPE_Q5_0 ? 22 : 18; }
static size_t file_codes_at(uint32_t type) { return type == G3_TYPE_Q5_0 ? 6 : 2; }
static uint32_t chunks_per_block(uint32_t type) { return type == G3_TYPE_Q8_0 ? 8 : 4; }

/* Where block h (0, 1) of a unit keeps its scales, masks and codes */
typedef struct unit_parts {
    size_t scales, masks, codes;
} unit_parts;

static unit_parts parts_of(uint32_t type, uint32_t h) {
    const size_t mb = block_mask_bytes(type);
    return (unit_parts){32 * h, 64 + h * mb, 64 + 2 * mb + h * block_code_bytes(type)};
}

/* Q5_0 mask m (0..7) of a block: bit 4r + i is the fifth bit of value
 * 4m + i (m < 4: the low nibbles of chunk m) or 16 + 4(m-4) + i (the high
 * nibbles of chunk m - 4) of row r; in the file, bit j of qh is value j's */
static uint32_t q5_value_of_mask_bit(uint32_t m, uint32_t i) { return m < 4 ? 4 * m + i : 16 + 4 * (m - 4) + i; }

/* Q4_K, a super-block of 16 rows (2304 bytes): f16 d[16], f16 dmin[16],
 * the 12 scale bytes as 12 planes of 16 (plane k byte r = scales[k] of row
 * r), then the codes: chunk 8c + j (c < 4, j < 8) byte 4r + i = qs[32c +
 * 4j + i] of row r (low nibble: sub-block 2c value 4j+i, high nibble:
 * sub-block 2c+1 value 4j+i) */
enum { K4_DMIN = 32, K4_PLANES = 64, K4_CODES = 256 };

static void pack_q4_k(uint32_t type, const uint8_t *rows, size_t row_bytes, uint64_t K, uint8_t *dst) {
    (void)type;
    for (uint64_t sb = 0; sb < K / 256; sb++) {
        uint8_t *u = dst + sb * 2304;
        for (uint32_t r = 0; r < G3_X16_ROWS; r++) {
            const uint8_t *blk = rows + r * row_bytes + sb * 144;
            memcpy(u + 2 * r, blk, 2);
            memcpy(u + K4_DMIN + 2 * r, blk + 2, 2);
            for (uint32_t k = 0; k < 12; k++) u[K4_PLANES + 16 * k + r] = blk[4 + k];
            for (uint32_t c = 0; c < 32; c++) memcpy(u + K4_CODES + 64 * c + 4 * r, blk + 16 + 4 * c, 4);
        }
    }
}

static void unpack_q4_k(uint32_t type, const uint8_t *group, uint64_t K, uint32_t r, uint8_t *row) {
    (void)type;
    for (uint64_t sb = 0; sb < K / 256; sb++) {
        const uint8_t *u = group + sb * 2304;
        uint8_t *blk = row + sb * 144;
        memcpy(blk, u + 2 * r, 2);
        memcpy(blk + 2, u + K4_DMIN + 2 * r, 2);
        for (uint32_t k = 0; k < 12; k++) blk[4 + k] = u[K4_PLANES + 16 * k + r];
        for (uint32_t c = 0; c < 32; c++) memcpy(blk + 16 + 4 * c, u + K4_CODES + 64 * c + 4 * r, 4);
    }
}

/* Q6_K, a super-block of 16 rows (3360 bytes): the codes' low 4 bits in 32
 * chunks, chunk 16h + j byte 4r + i = ql[64h + 4j + i] of row r (low nibble:
 * value 128h + 4j + i, high nibble: value 128h + 64 + 4j + i); per chunk 4
 * masks of the high two bits (low nibbles' bit 4, their bit 5, high
 * nibbles' bit 4, bit 5: bit 4r + i); the 16 int8 scales as 16 planes of 16;
 * f16 d[16]. */
enum { K6_MASKS = 2048, K6_PLANES = 3072, K6_D = 3328 };

/* the two high bits of value t (0..127) of half h of a Q6_K block */
static uint32_t q6_high_bits(const uint8_t *blk, uint32_t h, uint32_t t) {
    return blk[128 + 32 * h + t % 32] >> (2 * (t / 32)) & 3;
}

static void pack_q6_k(uint32_t type, const uint8_t *rows, size_t row_bytes, uint64_t K, uint8_t *dst) {
    (void)type;
    for (uint64_t sb = 0; sb < K / 256; sb++) {
        uint8_t *u = dst + sb * 3360;
        uint64_t masks[32][4] = {{0}};
        for (uint32_t r = 0; r < G3_X16_ROWS; r++) {
            const uint8_t *blk = rows + r * row_bytes + sb * 210;
            memcpy(u + K6_D + 2 * r, blk + 208, 2);
            for (uint32_t k = 0; k < 16; k++) u[K6_PLANES + 16 * k + r] = blk[192 + k];
            for (uint32_t h = 0; h < 2; h++)
                for (uint32_t j = 0; j < 16; j++) {
                    memcpy(u + 64 * (16 * h + j) + 4 * r, blk + 64 * h + 4 * j, 4);
                    for (uint32_t i = 0; i < 4; i++) {
                        const uint32_t lo = q6_high_bits(blk, h, 4 * j + i), hi = q6_high_bits(blk, h, 64 + 4 * j + i);
                        uint64_t *m = masks[16 * h + j];
                        const uint32_t bit = 4 * r + i;
                        m[0] |= (uint64_t)(lo & 1) << bit;
                        m[1] |= (uint64_t)(lo >> 1) << bit;
                        m[2] |= (uint64_t)(hi & 1) << bit;
                        m[3] |= (uint64_t)(hi >> 1) << bit;
                    }
                }
        }
        memcpy(u + K6_MASKS, masks, sizeof masks);
    }
}

static void unpack_q6_k(uint32_t type, const uint8_t *group, uint64_t K, uint32_t r, uint8_t *row) {
    (void)type;
    for (uint64_t sb = 0; sb < K / 256; sb++) {
        const uint8_t *u = group + sb * 3360;
        uint8_t *blk = row + sb * 210;
        uint64_t masks[32][4];
        memcpy(masks, u + K6_MASKS, sizeof masks);
        memcpy(blk + 208, u + K6_D + 2 * r, 2);
        for (uint32_t k = 0; k < 16; k++) blk[192 + k] = u[K6_PLANES + 16 * k + r];
        memset(blk + 128, 0, 64);
        for (uint32_t h = 0; h < 2; h++)
            for (uint32_t j = 0; j < 16; j++) {
                memcpy(blk + 64 * h + 4 * j, u + 64 * (16 * h + j) + 4 * r, 4);
                const uint64_t *m = masks[16 * h + j];
                for (uint32_t i = 0; i < 4; i++) {
                    const uint32_t bit = 4 * r + i;
                    const uint32_t lo = (uint32_t)(m[0] >> bit & 1) | (uint32_t)(m[1] >> bit & 1) << 1;
                    const uint32_t hi = (uint32_t)(m[2] >> bit & 1) | (uint32_t)(m[3] >> bit & 1) << 1;
                    const uint32_t tl = 4 * j + i, th = 64 + 4 * j + i;
                    blk[128 + 32 * h + tl % 32] |= (uint8_t)(lo << (2 * (tl / 32)));
                    blk[128 + 32 * h + th % 32] |= (uint8_t)(hi << (2 * (th / 32)));
                }
            }
    }
}

/* Q4_0, Q5_0, Q8_0: units of two 32-blocks */
static void pack_legacy(uint32_t type, const uint8_t *rows, size_t row_bytes, uint64_t K, uint8_t *dst) {
    const size_t bb = file_block_bytes(type), qs = file_codes_at(type);
    const uint32_t nc = chunks_per_block(type);
    const uint8_t flip = type == G3_TYPE_Q8_0 ? 0x80 : 0x00;
    for (uint64_t p = 0; p < K / 64; p++) {
        uint8_t *u = dst + p * g3_x16_unit_bytes(type);
        for (uint32_t h = 0; h < 2; h++) {
            const unit_parts at = parts_of(type, h);
            uint64_t masks[8] = {0};
            for (uint32_t r = 0; r < G3_X16_ROWS; r++) {
                const uint8_t *blk = rows + r * row_bytes + (2 * p + h) * bb;
                memcpy(u + at.scales + 2 * r, blk, 2);
                for (uint32_t c = 0; c < nc; c++)
                    for (uint32_t i = 0; i < 4; i++) u[at.codes + 64 * c + 4 * r + i] = blk[qs + 4 * c + i] ^ flip;
                if (type != G3_TYPE_Q5_0) continue;
                const uint32_t qh = (uint32_t)blk[2] | (uint32_t)blk[3] << 8 | (uint32_t)blk[4] << 16 |
                                    (uint32_t)blk[5] << 24;
                for (uint32_t m = 0; m < 8; m++)
                    for (uint32_t i = 0; i < 4; i++)
                        masks[m] |= (uint64_t)(qh >> q5_value_of_mask_bit(m, i) & 1) << (4 * r + i);
            }
            if (type == G3_TYPE_Q5_0) memcpy(u + at.masks, masks, sizeof masks); /* little-endian, as the kernels read them */
        }
    }
}

static void unpack_legacy(uint32_t type, const uint8_t *group, uint64_t K, uint32_t r, uint8_t *row) {
    const size_t bb = file_block_bytes(type), qs = file_codes_at(type);
    const uint32_t nc = chunks_per_block(type);
    const uint8_t flip = type == G3_TYPE_Q8_0 ? 0x80 : 0x00;
    for (uint64_t b = 0; b < K / 32; b++) {
        const uint8_t *u = group + (b / 2) * g3_x16_unit_bytes(type);
        const unit_parts at = parts_of(type, (uint32_t)(b % 2));
        uint8_t *blk = row + b * bb;
        memcpy(blk, u + at.scales + 2 * r, 2);
        for (uint32_t c = 0; c < nc; c++)
            for (uint32_t i = 0; i < 4; i++) blk[qs + 4 * c + i] = u[at.codes + 64 * c + 4 * r + i] ^ flip;
        if (type != G3_TYPE_Q5_0) continue;
        uint64_t masks[8];
        memcpy(masks, u + at.masks, sizeof masks);
        uint32_t qh = 0;
        for (uint32_t m = 0; m < 8; m++)
            for (uint32_t i = 0; i < 4; i++) qh |= (uint32_t)(masks[m] >> (4 * r + i) & 1) << q5_value_of_mask_bit(m, i);
        for (int k = 0; k < 4; k++) blk[2 + k] = (uint8_t)(qh >> (8 * k));
    }
}

/* Each layout's packer and unpacker */
typedef struct x16_codec {
    void (*pack)(uint32_t type, const uint8_t *rows, size_t row_bytes, uint64_t K, uint8_t *dst);
    void (*unpack)(uint32_t type, const uint8_t *group, uint64_t K, uint32_t r, uint8_t *row);
} x16_codec;

static const x16_codec *codec_of(uint32_t type) {
    static const x16_codec legacy = {pack_legacy, unpack_legacy}, q4_k = {pack_q4_k, unpack_q4_k},
                           q6_k = {pack_q6_k, unpack_q6_k};
    return type == G3_TYPE_Q4_K ? &q4_k : type == G3_TYPE_Q6_K ? &q6_k : &legacy;
}

void g3_x16_pack_group(uint32_t type, const uint8_t *rows, size_t row_bytes, uint64_t K, uint8_t *dst) {
    codec_of(type)->pack(type, rows, row_bytes, K, dst);
}

void g3_x16_unpack_row(uint32_t type, const uint8_t *group, uint64_t K, uint32_t r, uint8_t *row) {
    codec_of(type)->unpack(type, group, K, r, row);
}

typedef struct pack_task {
    const g3_matrix *m;
    uint8_t *dst;
    size_t group_bytes;
    uint64_t n_groups;
} pack_task;

static void pack_groups(void *arg, uint32_t ith, uint32_t nth) {
    const pack_task *t = arg;
    uint64_t lo, hi;
    g3_split_range(t->n_groups, 1, ith, nth, &lo, &hi);
    for (uint64_t g = lo; g < hi; g++)
        g3_x16_pack_group(t->m->type, (const uint8_t *)t->m->data + g * t->group_bytes, t->m->row_bytes,
                          t->m->n_in, t->dst + g * t->group_bytes);
}

uint8_t *g3_x16_pack_matrix(const g3_matrix *m, g3_thread_pool *pool) {
    if (!g3_x16_supported(m->type, m->n_in, m->n_out)) return NULL;
    pack_task t = {.m = m, .group_bytes = g3_x16_group_bytes(m->type, m->n_in), .n_groups = m->n_out / G3_X16_ROWS};
    if (t.group_bytes != G3_X16_ROWS * m->row_bytes || t.n_groups > SIZE_MAX / t.group_bytes) return NULL;
    /* 2 MiB aligned and marked for transparent huge pages (where the kernel
     * gives them on request): the decode walks gigabytes a token, and a
     * TLB entry per 2 MiB instead of per 4 KiB saves a page walk every
     * 4 KiB of it; the first touch also faults 512 times less often */
    const size_t bytes = t.group_bytes * t.n_groups, huge = (size_t)2 << 20;
    void *p = NULL;
    if (posix_memalign(&p, bytes >= huge ? huge : 64, bytes) != 0) return NULL;
    if (bytes >= huge) madvise(p, bytes - bytes % huge, MADV_HUGEPAGE);
    t.dst = p;
    if (pool) g3_thread_pool_run(pool, pack_groups, &t);
    else pack_groups(&t, 0, 1);
    return t.dst;
}
