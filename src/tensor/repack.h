/* repack.h: Q4_0, Q5_0, Q8_0, Q4_K and Q6_K matrices with their rows interleaved
 * 16 at a time ("x16"), the layout the AVX-512 decode and panel kernels read.
 *
 * Why: in the file's layout a decode kernel multiplies one row's block with
 * the activation and must then spread that block's scale over the vector
 * lanes of its partial sums (a permute per block pair) and sum lanes at
 * the end; on a 2-core Zen 5 that arithmetic, not memory, capped Q4_0
 * decode near 76 GB/s (bench/RESULTS.md). With 16 rows interleaved, one
 * vpdpbusd multiplies 4 values of each of 16 rows with one broadcast group
 * of 4 activation bytes: lane r holds row r's sum, the 16 f16 scales of a
 * block are one vector load, and nothing is permuted or reduced. The bytes
 * are the same (a group of 16 rows takes exactly 16 rows of the file) and
 * so are the sums: only the order of the f32 additions changes.
 *
 * Layout of a group of 16 rows (16 * row_bytes bytes, 64-byte aligned in
 * the copy): K/64 units of two blocks b = 2p, 2p+1, each unit
 *   f16 scale[2][16]        the blocks' scales, row order (64 bytes)
 *   u64 mask[2][8]          Q5_0 only: the fifth bits (below; 128 bytes)
 *   codes of block 2p, then of 2p+1: chunks of 64 bytes, byte 4r + i of
 *                           chunk c belonging to row r
 *     Q4_0, Q5_0: 4 chunks; chunk c byte 4r+i = the file's byte qs[4c+i] of
 *           row r: low nibble value 4c+i, high nibble value 16+4c+i (Q4_0
 *           value = code - 8; Q5_0 value = code + 16 fifth bit - 16)
 *     Q8_0: 8 chunks; chunk c byte 4r+i = value 4c+i + 128 (unsigned, the
 *           vpdpbusd operand; value = code - 128)
 *   Q5_0's fifth bits, as the masks of a masked byte add: mask m < 4 holds
 *   in bit 4r+i the fifth bit of row r's value 4m+i (chunk m's low
 *   nibbles), mask 4+m that of value 16+4m+i (its high nibbles)
 * so a unit is 9 (Q4_0), 11 (Q5_0) or 17 (Q8_0) cache lines. Q4_K's unit is
 * a super-block of 256 values of 16 rows (2304 bytes, 36 lines): f16 d[16],
 * f16 dmin[16], the 12 scale bytes as 12 planes of 16 (plane k byte r =
 * scales[k] of row r), then 32 code chunks, chunk 8c + j byte 4r + i =
 * qs[32c + 4j + i] of row r (low nibble: sub-block 2c, high: 2c+1, value
 * 4j+i of it). Q6_K's super-block of 16 rows (3360 bytes, not a whole
 * number of lines: its kernels load unaligned): 32 chunks of the codes' low
 * 4 bits (chunk 16h + j byte 4r + i = ql[64h + 4j + i] of row r), per chunk
 * 4 masks of 64 bits with the two high bits (of the low nibbles' values,
 * then of the high ones'), the 16 int8 scales as 16 planes of 16, f16 d[16].
 * Rows of whole units only (n_in % 64 == 0, % 256 for the K-quants: every
 * Gemma 3 matrix). The copy holds the
 * first n_out - n_out % 16 rows; the last few rows of a matrix like the
 * output (262145 rows: the vocabulary plus the image token) have no group
 * and are read from the file's layout. */
#ifndef G3_TENSOR_REPACK_H
#define G3_TENSOR_REPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/thread_pool.h"
#include "tensor/matrix.h"
#include "tensor/type_info.h"

#define G3_X16_ROWS 16

/* Whether a matrix of this type and shape can be repacked. */
bool g3_x16_supported(uint32_t type, uint64_t n_in, uint64_t n_out);

/* The rows a matrix's x16 copy holds (0 without one). */
static inline uint64_t g3_x16_grouped_rows(const g3_matrix *m) {
    return m->x16 ? m->n_out - m->n_out % G3_X16_ROWS : 0;
}

/* Values of a row per unit (64: two blocks; 256 for Q4_K and Q6_K: a
 * super-block), and the unit's bytes for 16 rows (576 for Q4_0, 704 for
 * Q5_0, 1088 for Q8_0, 2304 for Q4_K, 3360 for Q6_K). */
static inline uint32_t g3_x16_unit_values(uint32_t type) {
    return type == G3_TYPE_Q4_K || type == G3_TYPE_Q6_K ? 256 : 64;
}
size_t g3_x16_unit_bytes(uint32_t type);

/* Bytes of a group of 16 rows of K values: 16 row_bytes. */
static inline size_t g3_x16_group_bytes(uint32_t type, uint64_t K) {
    return (size_t)(K / g3_x16_unit_values(type)) * g3_x16_unit_bytes(type);
}

/* Rows [16 g, 16 g + 16) of rows (row_bytes apart) into one group at dst. */
void g3_x16_pack_group(uint32_t type, const uint8_t *rows, size_t row_bytes, uint64_t K, uint8_t *dst);

/* Row r of a group back in the file's block layout (tests). */
void g3_x16_unpack_row(uint32_t type, const uint8_t *group, uint64_t K, uint32_t r, uint8_t *row);

/* The x16 copy of a matrix (its n_out / 16 whole groups), 64-byte aligned,
 * made on the pool's threads (pool NULL: on this one); NULL when out of
 * memory or when the matrix cannot be repacked. Free it with free(). */
uint8_t *g3_x16_pack_matrix(const g3_matrix *m, g3_thread_pool *pool);

#endif
