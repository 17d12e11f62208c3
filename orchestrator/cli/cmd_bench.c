/* g3n bench: micro-benchmarks. `g3n bench matmul` measures y = x·Wᵀ. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "matmul.h"
#include "ops.h"
#include "synth.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: g3n bench matmul [--threads N] [--isa portable|avx2|avx512] [--dtype bf16|f16|f32]\n"
                 "                        [--shapes MxKxN,...] [--repeat R] [--json]\n"
                 "\n"
                 "matmul: GFLOP/s of y = x·Wᵀ (x: M×K f32, W: N×K in --dtype) for each shape\n"
                 "        (default 1x2048x8192,512x2048x8192, bf16), best of R runs (default 5).\n");
}

static int bench_matmul(int argc, char **argv)
{
    int threads = 0, repeat = 5, json = 0;
    const char *shapes = "1x2048x8192,512x2048x8192";
    g3n_dtype dtype = G3N_DTYPE_BF16;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--threads") == 0 && value)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && value)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--shapes") == 0 && value)
            shapes = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--isa") == 0 && value) {
            i++;
            g3n_isa isa = strcmp(value, "portable") == 0 ? G3N_ISA_PORTABLE
                          : strcmp(value, "avx2") == 0   ? G3N_ISA_AVX2
                                                         : G3N_ISA_AVX512;
            g3n_isa_set(isa);
        } else if (strcmp(argv[i], "--dtype") == 0 && value) {
            i++;
            dtype = strcmp(value, "f32") == 0 ? G3N_DTYPE_F32 : strcmp(value, "f16") == 0 ? G3N_DTYPE_F16
                                                                                           : G3N_DTYPE_BF16;
        } else {
            fprintf(stderr, "g3n bench matmul: error: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (repeat < 1)
        repeat = 1;
    g3n_set_threads(threads);
    if (!json)
        printf("matmul (%s weights, isa %s, %d threads)\n%-20s %12s %12s\n", g3n_dtype_name(dtype),
               g3n_isa_name(g3n_isa_active()), g3n_get_threads(), "M x K x N", "ms", "GFLOP/s");
    else
        printf("[");
    const char *p = shapes;
    int first = 1;
    while (*p) {
        long long m, k, n;
        int used = 0;
        if (sscanf(p, "%lldx%lldx%lld%n", &m, &k, &n, &used) != 3 || m <= 0 || k <= 0 || n <= 0) {
            fprintf(stderr, "g3n bench matmul: error: bad shape near '%s' (want MxKxN)\n", p);
            return 2;
        }
        p += used;
        if (*p == ',')
            p++;
        float *x = malloc(sizeof(float) * (size_t)(m * k));
        float *y = malloc(sizeof(float) * (size_t)(m * n));
        void *w = malloc(g3n_dtype_size(dtype) * (size_t)(n * k));
        if (!x || !y || !w) {
            fprintf(stderr, "g3n bench matmul: error: out of memory\n");
            free(x);
            free(y);
            free(w);
            return 1;
        }
        int64_t x_shape[2] = {m, k}, w_shape[2] = {n, k};
        g3n_synth_fill_f32("bench.x", 2, x_shape, 1, 0, m * k, x);
        if (dtype == G3N_DTYPE_BF16) {
            g3n_synth_fill_bf16("bench.w", 2, w_shape, 1, 0, n * k, w);
        } else {
            float *wf = dtype == G3N_DTYPE_F32 ? w : malloc(sizeof(float) * (size_t)(n * k));
            g3n_synth_fill_f32("bench.w", 2, w_shape, 1, 0, n * k, wf);
            if (dtype == G3N_DTYPE_F16) {
                for (long long i = 0; i < n * k; i++)
                    ((uint16_t *)w)[i] = g3n_f32_to_f16(wf[i]);
                free(wf);
            }
        }
        g3n_matrix matrix = {dtype, n, k, (size_t)k * g3n_dtype_size(dtype), w};
        g3n_matmul(x, m, (size_t)k, &matrix, y, (size_t)n); /* warm-up */
        double best = 1e30;
        for (int r = 0; r < repeat; r++) {
            double start = g3n_now_seconds();
            g3n_matmul(x, m, (size_t)k, &matrix, y, (size_t)n);
            double elapsed = g3n_now_seconds() - start;
            if (elapsed < best)
                best = elapsed;
        }
        double gflops = 2.0 * (double)m * (double)k * (double)n / best / 1e9;
        if (json)
            printf("%s{\"m\":%lld,\"k\":%lld,\"n\":%lld,\"dtype\":\"%s\",\"ms\":%.3f,\"gflops\":%.2f}",
                   first ? "" : ",", m, k, n, g3n_dtype_name(dtype), best * 1e3, gflops);
        else {
            char label[64];
            snprintf(label, sizeof(label), "%lldx%lldx%lld", m, k, n);
            printf("%-20s %12.3f %12.2f\n", label, best * 1e3, gflops);
        }
        first = 0;
        free(x);
        free(y);
        free(w);
    }
    if (json)
        printf("]\n");
    return 0;
}

int g3n_command_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "matmul") == 0) {
        if (g3n_wants_help(argc - 1, argv + 1)) {
            usage(stdout);
            return 0;
        }
        return bench_matmul(argc - 1, argv + 1);
    }
    fprintf(stderr, "g3n bench: error: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
