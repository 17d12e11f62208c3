/* g3n bench: micro-benchmarks. `g3n bench matmul` measures y = x·Wᵀ;
 * `g3n bench text` the language model's prefill and decode speed on a
 * checkpoint folder (the llama-bench pp/tg counterpart). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_chat.h"
#include "bench_pipeline.h"
#include "bench_text.h"
#include "bench_towers.h"
#include "commands.h"
#include "matmul.h"
#include "ops.h"
#include "options.h"
#include "quant.h"
#include "synth.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: g3n bench matmul [--threads N] [--isa portable|avx2|avx512] [--dtype bf16|f16|f32|q8|q4]\n"
                 "                        [--bf16-products]\n"
                 "                        [--shapes MxKxN,...] [--repeat R] [--json]\n"
                 "       g3n bench text --model DIR [--weights f32|bf16|q8|q4] [--threads N] [--prefill 128,512]\n"
                 "                      [--decode 64] [--repeat R] [--chunk N] [--cache FILE] [--json]\n"
                 "                      [--batch B] [--kv f16|f32] [--context N] [--submodel SPEC]\n"
                 "       g3n bench vision|audio|gemm ... (the towers and their GEMM: g3n bench vision --help)\n"
                 "       g3n bench pipeline ... (decode in one process vs through the daemons over TCP: --help)\n"
                 "       g3n bench chat ... (time to first token of a multi-turn chat with and without prefix\n"
                 "                          reuse, same tokens: --help)\n"
                 "\n"
                 "matmul: GFLOP/s of y = x·Wᵀ (x: M×K f32, W: N×K in --dtype) for each shape\n"
                 "        (default 1x2048x8192,512x2048x8192, bf16), best of R runs (default 5).\n"
                 "        --bf16-products: bf16 weights with x rounded to bf16 (vdpbf16ps) from 16 rows,\n"
                 "        as the bf16 weight format's prefill.\n"
                 "text:   tokens/s of the language model on a checkpoint folder (e.g. g3n synth's E2B):\n"
                 "        prefill of each --prefill length from an empty context (logits of the last\n"
                 "        token only), and --decode one-token steps from an empty context (greedy, logits\n"
                 "        every step), as llama-bench's pp/tg. --weights (default bf16): f32 = the exact\n"
                 "        path; bf16 = stored weights + sparse MLP; q8/q4 = block-quantised, cached in\n"
                 "        DIR/g3n-cache (or $G3N_CACHE_DIR, or --cache FILE) on first use.\n"
                 "        Reports the median of R runs (default 3), the min and max, load/cache time,\n"
                 "        resident memory and the bytes of the weight cache.\n"
                 "        --batch B (default 1): B sessions decode together (continuous batching: one\n"
                 "        forward per step whose rows are the sessions); the decode figure is the\n"
                 "        aggregate B x steps / wall. --kv: the KV cache's element type (default f16\n"
                 "        with bf16/q8/q4, f32 with f32). --context N: the sessions' max_positions\n"
                 "        (default the longest test + 1); the session's KV and scratch bytes are reported.\n"
                 "        --submodel SPEC: measure this MatFormer sub-model (g3n slice --help) of the model,\n"
                 "        served as views into its weights.\n");
}

static const char *const isa_names[] = {"portable", "avx2", "avx512", NULL};
static const g3n_isa isa_values[] = {G3N_ISA_PORTABLE, G3N_ISA_AVX2, G3N_ISA_AVX512};
static const char *const dtype_names[] = {"bf16", "f16", "f32", "q8", "q4", NULL};
static const g3n_dtype dtype_values[] = {G3N_DTYPE_BF16, G3N_DTYPE_F16, G3N_DTYPE_F32, G3N_DTYPE_Q8, G3N_DTYPE_Q4};

typedef struct bench_matmul_args {
    int threads, repeat, json, bf16_products, isa, dtype; /* isa, dtype: indexes into the tables above */
    const char *shapes;
} bench_matmul_args;

static const g3n_command_spec bench_matmul_spec = {
    .name = "g3n bench matmul",
    .usage = "g3n bench matmul [--threads N] [--isa portable|avx2|avx512] [--dtype bf16|f16|f32|q8|q4]\n"
             "                        [--bf16-products]\n"
             "                        [--shapes MxKxN,...] [--repeat R] [--json]",
    .about = "GFLOP/s of y = x·Wᵀ (x: M×K f32, W: N×K in --dtype) for each shape, best of R runs.\n",
    .help_column = 22,
};

/* -1 to go on, else the exit code. */
static int parse_matmul_args(bench_matmul_args *a, int argc, char **argv)
{
    a->repeat = 5;
    a->isa = -1;
    a->shapes = "1x2048x8192,512x2048x8192";
    const g3n_option options[] = {
        G3N_OPTION_THREADS(&a->threads),
        G3N_ENUM("isa", &a->isa, isa_names, "the kernels to measure (default: the best this CPU has)"),
        G3N_ENUM("dtype", &a->dtype, dtype_names, "W's element type (default bf16)"),
        G3N_FLAG("bf16-products", &a->bf16_products, "bf16 weights with x rounded to bf16 (vdpbf16ps) from 16 rows,\n"
                                                     "as the bf16 weight format's prefill"),
        G3N_STRING("shapes", &a->shapes, "MxKxN,...", "the shapes (default 1x2048x8192,512x2048x8192)"),
        G3N_INT("repeat", &a->repeat, 1, 1000000, "R", "runs of each shape; the best counts (default 5)"),
        G3N_FLAG("json", &a->json, "a JSON array on stdout"),
    };
    return g3n_options_main(&bench_matmul_spec, options, G3N_OPTION_COUNT(options), argc, argv);
}

/* W (n x k) of synthetic values in dtype (bf16 storage for q8/q4, quantised into *quant_storage). */
static int make_matrix(g3n_dtype dtype, long long n, long long k, int bf16_products, g3n_matrix *matrix, void **w,
                       void **quant_storage)
{
    const int quantised = dtype == G3N_DTYPE_Q8 || dtype == G3N_DTYPE_Q4;
    const g3n_dtype stored = quantised ? G3N_DTYPE_BF16 : dtype;
    *w = malloc(g3n_dtype_size(stored) * (size_t)(n * k));
    if (!*w)
        return G3N_ERR;
    int64_t w_shape[2] = {n, k};
    if (stored == G3N_DTYPE_BF16) {
        g3n_synth_fill_bf16("bench.w", 2, w_shape, 1, 0, n * k, *w);
    } else {
        float *wf = dtype == G3N_DTYPE_F32 ? *w : malloc(sizeof(float) * (size_t)(n * k));
        if (!wf)
            return G3N_ERR;
        g3n_synth_fill_f32("bench.w", 2, w_shape, 1, 0, n * k, wf);
        if (dtype == G3N_DTYPE_F16) {
            for (long long i = 0; i < n * k; i++)
                ((uint16_t *)*w)[i] = g3n_f32_to_f16(wf[i]);
            free(wf);
        }
    }
    *matrix = (g3n_matrix){stored, n, k, (size_t)k * g3n_dtype_size(stored), *w};
    matrix->bf16_products = bf16_products;
    if (quantised) {
        *quant_storage = g3n_aligned_alloc(g3n_quant_row_bytes(dtype, k) * (size_t)n);
        if (!*quant_storage)
            return G3N_ERR;
        *matrix = g3n_quantize_matrix(matrix, dtype, *quant_storage);
    }
    return G3N_OK;
}

/* Measures one m x k x n shape; prints its line (first: the first of the JSON array). The exit code, -1 to go on. */
static int measure_shape(const bench_matmul_args *a, g3n_dtype dtype, long long m, long long k, long long n, int first)
{
    if ((dtype == G3N_DTYPE_Q8 || dtype == G3N_DTYPE_Q4) && !g3n_quant_supported(dtype, k)) {
        fprintf(stderr, "g3n bench matmul: error: %s needs K to be a multiple of 64\n", g3n_matrix_dtype_name(dtype));
        return 2;
    }
    float *x = malloc(sizeof(float) * (size_t)(m * k));
    float *y = malloc(sizeof(float) * (size_t)(m * n));
    void *w = NULL, *quant_storage = NULL;
    g3n_matrix matrix;
    int rc = -1;
    if (!x || !y || make_matrix(dtype, n, k, a->bf16_products, &matrix, &w, &quant_storage) != G3N_OK) {
        fprintf(stderr, "g3n bench matmul: error: out of memory\n");
        rc = 1;
    } else {
        int64_t x_shape[2] = {m, k};
        g3n_synth_fill_f32("bench.x", 2, x_shape, 1, 0, m * k, x);
        g3n_matmul(x, m, (size_t)k, &matrix, y, (size_t)n); /* warm-up */
        double best = 1e30;
        for (int r = 0; r < a->repeat; r++) {
            double start = g3n_now_seconds();
            g3n_matmul(x, m, (size_t)k, &matrix, y, (size_t)n);
            double elapsed = g3n_now_seconds() - start;
            if (elapsed < best)
                best = elapsed;
        }
        double gflops = 2.0 * (double)m * (double)k * (double)n / best / 1e9;
        if (a->json) {
            printf("%s{\"m\":%lld,\"k\":%lld,\"n\":%lld,\"dtype\":\"%s\",\"isa\":\"%s\",\"threads\":%d,"
                   "\"ms\":%.3f,\"gflops\":%.2f}",
                   first ? "" : ",", m, k, n, g3n_matrix_dtype_name(dtype), g3n_isa_name(g3n_isa_active()),
                   g3n_get_threads(), best * 1e3, gflops);
        } else {
            char label[64];
            snprintf(label, sizeof(label), "%lldx%lldx%lld", m, k, n);
            printf("%-20s %12.3f %12.2f\n", label, best * 1e3, gflops);
        }
    }
    free(x);
    free(y);
    free(w);
    g3n_aligned_free(quant_storage);
    return rc;
}

static int bench_matmul(int argc, char **argv)
{
    bench_matmul_args a;
    memset(&a, 0, sizeof(a));
    int rc = parse_matmul_args(&a, argc, argv);
    if (rc >= 0)
        return rc;
    if (a.isa >= 0)
        g3n_isa_set(isa_values[a.isa]);
    const g3n_dtype dtype = dtype_values[a.dtype];
    g3n_set_threads(a.threads);
    if (!a.json)
        printf("matmul (%s weights, isa %s, %d threads)\n%-20s %12s %12s\n", g3n_matrix_dtype_name(dtype),
               g3n_isa_name(g3n_isa_active()), g3n_get_threads(), "M x K x N", "ms", "GFLOP/s");
    else
        printf("[");
    for (const char *p = a.shapes; *p && rc < 0;) {
        long long m, k, n;
        int used = 0;
        if (sscanf(p, "%lldx%lldx%lld%n", &m, &k, &n, &used) != 3 || m <= 0 || k <= 0 || n <= 0) {
            fprintf(stderr, "g3n bench matmul: error: bad shape near '%s' (want MxKxN)\n", p);
            return 2;
        }
        rc = measure_shape(&a, dtype, m, k, n, p == a.shapes);
        p += used;
        if (*p == ',')
            p++;
    }
    if (rc >= 0)
        return rc;
    if (a.json)
        printf("]\n");
    return 0;
}

int g3n_command_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "matmul") == 0)
        return bench_matmul(argc - 1, argv + 1);
    if (g3n_bench_towers_handles(argv[1])) /* vision, audio, gemm: bench_towers.c */
        return g3n_bench_towers(argc - 1, argv + 1);
    if (strcmp(argv[1], "pipeline") == 0) /* bench_pipeline.c */
        return g3n_bench_pipeline(argc - 1, argv + 1);
    if (strcmp(argv[1], "chat") == 0) /* bench_chat.c */
        return g3n_bench_chat(argc - 1, argv + 1);
    if (strcmp(argv[1], "text") == 0) /* bench_text.c */
        return g3n_bench_text(argc - 1, argv + 1);
    fprintf(stderr, "g3n bench: error: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
