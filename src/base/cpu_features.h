/* cpu_features.h: what this x86-64 CPU can run, and which kernel path to use.
 *
 * One binary runs on any x86-64: the SIMD kernels are compiled per file with
 * their own -m flags and chosen at run time from CPUID (and XGETBV, so a
 * kernel whose registers the OS does not save is never picked). Paths:
 *   scalar  the reference kernels (any CPU, any architecture);
 *   avx2    AVX2 + FMA + F16C (Haswell, Zen 1 and later);
 *   avx512  AVX-512 F/BW/VL + VNNI (Ice Lake, Zen 4 and later); BF16 dot
 *           products are used when the CPU also has AVX512_BF16.
 * The environment variable G3_CPU=scalar|avx2|avx512 forces a path (tests run
 * every path the CPU has through it); the default is the best available.
 *
 * This table is the process's only global mutable state: it is filled once
 * (thread-safe) and read-only afterwards. */
#ifndef G3_BASE_CPU_FEATURES_H
#define G3_BASE_CPU_FEATURES_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

typedef enum g3_cpu_path {
    G3_CPU_SCALAR = 0,
    G3_CPU_AVX2 = 1,
    G3_CPU_AVX512 = 2,
    G3_CPU_PATH_COUNT
} g3_cpu_path;

typedef struct g3_cpu_features {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
    bool os_ymm, os_zmm;     /* XCR0: the OS saves ymm / zmm state */
    g3_cpu_path best;        /* best path this CPU runs */
    g3_cpu_path active;      /* G3_CPU, or best */
    bool env_invalid;        /* G3_CPU was set to an unknown or unavailable path */
    char env_value[16];
    char model[64];          /* CPUID brand string */
} g3_cpu_features;

/* The feature table (detected on first use). */
const g3_cpu_features *g3_cpu_features_get(void);

/* The path kernels use. Fails when G3_CPU names an unknown path or one this
 * CPU lacks: a forced path must never silently become another. */
int g3_cpu_active_path(g3_cpu_path *out, g3_error *err);

/* Whether this CPU can run a path (scalar always). */
bool g3_cpu_has_path(g3_cpu_path path);

/* "scalar", "avx2", "avx512". */
const char *g3_cpu_path_name(g3_cpu_path path);

/* CPUs this process may run on (affinity mask), and the physical cores
 * among them (SMT siblings counted once). Both at least 1. */
uint32_t g3_cpu_usable_cpus(void);
uint32_t g3_cpu_physical_cores(void);

/* Memory the system can give without swapping (MemAvailable), capped by
 * the cgroup limit and G3_MEM_LIMIT (see gemma3_plan.h), in bytes; 0 if
 * unknown. */
uint64_t g3_mem_available_bytes(void);

#endif
