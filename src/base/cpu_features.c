#include "base/cpu_features.h"
#include "gemma3.h" /* g3_system_info_get: the public API implemented here */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define G3_X86 1
#endif

static g3_cpu_features g_features;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static const char *const k_path_names[G3_CPU_PATH_COUNT] = {"scalar", "avx2", "avx512"};

#ifdef G3_X86
static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (uint64_t)edx << 32 | eax;
}

static void detect_x86(g3_cpu_features *f) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
    f->fma = c & (1u << 12);
    f->f16c = c & (1u << 29);
    if (osxsave && avx) {
        uint64_t xcr0 = xgetbv0();
        f->os_ymm = (xcr0 & 0x6) == 0x6;            /* SSE + AVX state */
        f->os_zmm = f->os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask + zmm state */
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->avx2 = b & (1u << 5);
        f->avx512f = b & (1u << 16);
        f->avx512bw = b & (1u << 30);
        f->avx512vl = b & (1u << 31);
        f->avx512vnni = c & (1u << 11);
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f->avx512bf16 = a & (1u << 5);
    unsigned brand[12];
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
        char tmp[49];
        memcpy(tmp, brand, 48);
        tmp[48] = 0;
        const char *p = tmp;
        while (*p == ' ') p++;
        snprintf(f->model, sizeof f->model, "%s", p);
    }
}
#endif

static void detect(void) {
    g3_cpu_features *f = &g_features;
    snprintf(f->model, sizeof f->model, "unknown CPU");
#ifdef G3_X86
    detect_x86(f);
#endif
    f->best = G3_CPU_SCALAR;
    if (f->os_ymm && f->avx2 && f->fma && f->f16c) f->best = G3_CPU_AVX2;
    if (f->best == G3_CPU_AVX2 && f->os_zmm && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni)
        f->best = G3_CPU_AVX512;
    f->active = f->best;
    const char *env = getenv("G3_CPU");
    if (env && *env) {
        snprintf(f->env_value, sizeof f->env_value, "%s", env);
        f->env_invalid = true;
        for (int p = 0; p < G3_CPU_PATH_COUNT; p++) {
            if (strcasecmp(env, k_path_names[p]) == 0 && p <= (int)f->best) {
                f->active = (g3_cpu_path)p;
                f->env_invalid = false;
            }
        }
    }
}

const g3_cpu_features *g3_cpu_features_get(void) {
    pthread_once(&g_once, detect);
    return &g_features;
}

int g3_cpu_active_path(g3_cpu_path *out, g3_error *err) {
    const g3_cpu_features *f = g3_cpu_features_get();
    *out = f->active;
    if (f->env_invalid)
        return g3_fail(err, "G3_CPU=%s: expected scalar, avx2 or avx512, and this CPU (%s) runs at most %s",
                       f->env_value, f->model, k_path_names[f->best]);
    return 0;
}

bool g3_cpu_has_path(g3_cpu_path path) { return path <= g3_cpu_features_get()->best; }

const char *g3_cpu_path_name(g3_cpu_path path) {
    return path < G3_CPU_PATH_COUNT ? k_path_names[path] : "unknown";
}

uint32_t g3_cpu_usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return (uint32_t)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint32_t)n : 1;
}

static long read_long(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

/* Distinct (package, core) pairs among the CPUs we may run on. */
uint32_t g3_cpu_physical_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return g3_cpu_usable_cpus();
    long seen[CPU_SETSIZE][2];
    uint32_t n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        long core = read_long(path);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        long pkg = read_long(path);
        if (core < 0 || pkg < 0) return g3_cpu_usable_cpus(); /* no topology: count CPUs */
        bool dup = false;
        for (uint32_t i = 0; i < n && !dup; i++) dup = seen[i][0] == pkg && seen[i][1] == core;
        if (!dup) {
            seen[n][0] = pkg;
            seen[n][1] = core;
            n++;
        }
    }
    return n ? n : 1;
}

static uint64_t meminfo_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                fclose(f);
                return kb > UINT64_MAX / 1024 ? UINT64_MAX : (uint64_t)kb * 1024;
            }
        }
        fclose(f);
    }
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/* One number from a file such as /sys/fs/cgroup/memory.max; 0 if absent
 * or not a number ("max"). */
static uint64_t read_u64_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return v;
}

uint64_t g3_mem_available_bytes(void) {
    uint64_t avail = meminfo_available();
    /* in a container, the cgroup's limit is what the process can really get */
    const uint64_t max = read_u64_file("/sys/fs/cgroup/memory.max");
    if (max) {
        const uint64_t cur = read_u64_file("/sys/fs/cgroup/memory.current");
        const uint64_t room = max > cur ? max - cur : 0;
        if (!avail || room < avail) avail = room;
    }
    /* G3_MEM_LIMIT=BYTES (K/M/G suffixes): plan within less, e.g. to leave
     * room for other programs */
    const char *env = getenv("G3_MEM_LIMIT");
    if (env && *env) {
        char *end;
        errno = 0;
        double v = strtod(env, &end);
        const double unit = *end == 'K' || *end == 'k' ? 1024.0 : *end == 'M' || *end == 'm' ? 1048576.0
                            : *end == 'G' || *end == 'g' ? 1073741824.0 : 1.0;
        if (!errno && v >= 0 && end != env) {
            v *= unit;
            const uint64_t limit = v >= 1.8e19 ? UINT64_MAX : (uint64_t)v;
            if (limit < avail || !avail) avail = limit;
        }
    }
    return avail;
}

int g3_system_info_get(g3_system_info *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    const g3_cpu_features *f = g3_cpu_features_get();
    memcpy(out->cpu, f->model, sizeof out->cpu - 1); /* both 64 bytes, NUL-terminated */
    out->physical_cores = g3_cpu_physical_cores();
    out->usable_cpus = g3_cpu_usable_cpus();
    g3_cpu_path path;
    int rc = g3_cpu_active_path(&path, err);
    snprintf(out->kernels, sizeof out->kernels, "%s", g3_cpu_path_name(path));
    return rc;
}
