/* isa.c - run-time choice of the kernels' instruction-set level (isa.h). */
#include "isa.h"

#include <cpuid.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -1 until the first g3n_isa_active() or g3n_isa_set(); atomic because the
 * first call may come from several threads at once (they all store the same). */
static _Atomic int active_isa = -1;

/* CPUID leaf 1, ECX bit 29: clang 14's __builtin_cpu_supports does not know "f16c". */
static int cpu_has_f16c(void)
{
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}

g3n_isa g3n_isa_detect(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni"))
        return G3N_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
        return G3N_ISA_AVX2;
    return G3N_ISA_PORTABLE;
}

const char *g3n_isa_name(g3n_isa isa)
{
    switch (isa) {
    case G3N_ISA_AVX512:
        return "avx512";
    case G3N_ISA_AVX2:
        return "avx2";
    default:
        return "portable";
    }
}

g3n_isa g3n_isa_set(g3n_isa isa)
{
    g3n_isa best = g3n_isa_detect();
    if ((int)isa < 0)
        isa = G3N_ISA_PORTABLE;
    isa = isa > best ? best : isa;
    atomic_store_explicit(&active_isa, (int)isa, memory_order_relaxed);
    return isa;
}

g3n_isa g3n_isa_active(void)
{
    int level = atomic_load_explicit(&active_isa, memory_order_relaxed);
    if (level < 0) {
        g3n_isa isa = g3n_isa_detect();
        const char *cap = getenv("G3N_ISA");
        if (cap && strcmp(cap, "portable") == 0)
            isa = G3N_ISA_PORTABLE;
        else if (cap && strcmp(cap, "avx2") == 0 && isa > G3N_ISA_AVX2)
            isa = G3N_ISA_AVX2;
        level = (int)isa;
        atomic_store_explicit(&active_isa, level, memory_order_relaxed);
    }
    return (g3n_isa)level;
}
