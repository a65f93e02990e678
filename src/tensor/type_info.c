#include "tensor/type_info.h"

#include <stdio.h>
#include <strings.h>

#include "base/checked_math.h"

/* Block geometry as ggml defines it (ggml.c type_traits). QK_K = 256. */
static const g3_type_info k_types[G3_TYPE_COUNT] = {
    [G3_TYPE_F32] = {"F32", 1, 4, true},
    [G3_TYPE_F16] = {"F16", 1, 2, true},
    [G3_TYPE_Q4_0] = {"Q4_0", 32, 18, true},
    [G3_TYPE_Q4_1] = {"Q4_1", 32, 20, true},
    [G3_TYPE_Q5_0] = {"Q5_0", 32, 22, true},
    [G3_TYPE_Q5_1] = {"Q5_1", 32, 24, true},
    [G3_TYPE_Q8_0] = {"Q8_0", 32, 34, true},
    [G3_TYPE_Q8_1] = {"Q8_1", 32, 36, false},
    [G3_TYPE_Q2_K] = {"Q2_K", 256, 84, false},
    [G3_TYPE_Q3_K] = {"Q3_K", 256, 110, false},
    [G3_TYPE_Q4_K] = {"Q4_K", 256, 144, true},
    [G3_TYPE_Q5_K] = {"Q5_K", 256, 176, true},
    [G3_TYPE_Q6_K] = {"Q6_K", 256, 210, true},
    [G3_TYPE_Q8_K] = {"Q8_K", 256, 292, false},
    [G3_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, false},
    [G3_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, false},
    [G3_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, false},
    [G3_TYPE_IQ1_S] = {"IQ1_S", 256, 50, false},
    [G3_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, true},
    [G3_TYPE_IQ3_S] = {"IQ3_S", 256, 110, false},
    [G3_TYPE_IQ2_S] = {"IQ2_S", 256, 82, false},
    [G3_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, false},
    [G3_TYPE_I8] = {"I8", 1, 1, false},
    [G3_TYPE_I16] = {"I16", 1, 2, false},
    [G3_TYPE_I32] = {"I32", 1, 4, false},
    [G3_TYPE_I64] = {"I64", 1, 8, false},
    [G3_TYPE_F64] = {"F64", 1, 8, false},
    [G3_TYPE_IQ1_M] = {"IQ1_M", 256, 56, false},
    [G3_TYPE_BF16] = {"BF16", 1, 2, true},
    [G3_TYPE_TQ1_0] = {"TQ1_0", 256, 54, false},
    [G3_TYPE_TQ2_0] = {"TQ2_0", 256, 66, false},
    [G3_TYPE_MXFP4] = {"MXFP4", 32, 17, false},
};

const g3_type_info *g3_type_info_get(uint32_t type) {
    if (type >= G3_TYPE_COUNT || k_types[type].name == NULL) return NULL;
    return &k_types[type];
}

const char *g3_type_name(uint32_t type, char buf[32]) {
    const g3_type_info *ti = g3_type_info_get(type);
    if (ti) return ti->name;
    snprintf(buf, 32, "unknown type %u", type);
    return buf;
}

int g3_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out, g3_error *err) {
    const g3_type_info *ti = g3_type_info_get(type);
    if (!ti) return g3_fail(err, "unknown tensor type id %u", type);
    if (n % ti->block_size != 0)
        return g3_fail(err, "row of %llu elements is not a multiple of the %s block size %u",
                       (unsigned long long)n, ti->name, ti->block_size);
    if (g3_mul_overflow_u64(n / ti->block_size, ti->block_bytes, out))
        return g3_fail(err, "size of %llu %s elements overflows", (unsigned long long)n, ti->name);
    return 0;
}

int g3_type_from_name(const char *name) {
    for (int i = 0; i < G3_TYPE_COUNT; i++)
        if (k_types[i].name && strcasecmp(k_types[i].name, name) == 0) return i;
    return -1;
}
