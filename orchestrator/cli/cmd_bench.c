/* g3n bench: micro-benchmarks. `g3n bench matmul` measures y = x·Wᵀ;
 * `g3n bench text` the language model's prefill and decode speed on a
 * checkpoint folder (the llama-bench pp/tg counterpart). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_chat.h"
#include "bench_pipeline.h"
#include "bench_towers.h"
#include "bench_util.h"
#include "commands.h"
#include "config.h"
#include "generate.h"
#include "matmul.h"
#include "memory_report.h"
#include "ops.h"
#include "quant.h"
#include "submodel.h"
#include "synth.h"
#include "text_model.h"
#include "weights.h"

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

/* Current resident set (bytes), from /proc/self/statm. */
static uint64_t current_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * 4096u;
}

/* What the resident memory is: per mapped file (weight cache, checkpoint
 * shards: the per-layer table shows only the rows read) and anonymous memory. */
static void print_resident_by_mapping(void)
{
    g3n_memory_mapping entries[8];
    uint64_t total = 0;
    const int n = g3n_memory_mappings(entries, 8, &total);
    if (n == 0)
        return;
    printf("resident by mapping (of %.2f GiB):\n", (double)total / 1073741824.0);
    for (int i = 0; i < n; i++)
        printf("  %9.1f MiB resident (%9.1f in 2 MiB pages) of %9.1f MiB mapped  %s\n",
               (double)entries[i].resident_bytes / 1048576.0, (double)entries[i].huge_bytes / 1048576.0,
               (double)entries[i].mapped_bytes / 1048576.0, entries[i].path);
}

typedef struct bench_stat {
    double median, min, max; /* tokens/s */
    double share;            /* CPU time / (wall time x threads) over the runs: the part of the cores we got */
    double projected;        /* median / share (share < 1): tokens/s with the threads' cores to ourselves */
} bench_stat;

static void add_share(bench_stat *s, double cpu, double wall)
{
    const int threads = g3n_get_threads();
    s->share = wall > 0.0 ? cpu / (wall * (threads > 0 ? threads : 1)) : 0.0;
    s->projected = s->median / (s->share > 0.0 && s->share < 1.0 ? s->share : 1.0);
}

static bench_stat summarise(double *rates, int count)
{
    bench_stat s = {0.0, 0.0, 0.0, 1.0, 0.0};
    s.median = g3n_bench_median(rates, count, &s.min, &s.max);
    return s;
}

static int bench_text(int argc, char **argv)
{
    const char *model_dir = NULL, *prefill_list = "128,512", *cache_file = NULL, *submodel_spec = NULL;
    int threads = 0, repeat = 3, json = 0, batch_rows = 1, kv_choice = -1;
    int64_t decode = 64, chunk = 0, context = 0;
    g3n_weight_format format = G3N_WEIGHTS_BF16;
    g3n_error err = {{0}};
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--model") == 0 && value)
            model_dir = argv[++i];
        else if (strcmp(argv[i], "--weights") == 0 && value) {
            if (g3n_parse_weights_option("bench text", argv[++i], &format) != 0)
                return 2;
        } else if (strcmp(argv[i], "--threads") == 0 && value)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prefill") == 0 && value)
            prefill_list = argv[++i];
        else if (strcmp(argv[i], "--decode") == 0 && value)
            decode = atoll(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && value)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--chunk") == 0 && value)
            chunk = atoll(argv[++i]);
        else if (strcmp(argv[i], "--cache") == 0 && value)
            cache_file = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--submodel") == 0 && value)
            submodel_spec = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && value)
            batch_rows = atoi(argv[++i]);
        else if (strcmp(argv[i], "--context") == 0 && value)
            context = atoll(argv[++i]);
        else if (strcmp(argv[i], "--kv") == 0 && value) {
            const char *kv = argv[++i];
            if (strcmp(kv, "f16") == 0)
                kv_choice = G3N_KV_F16;
            else if (strcmp(kv, "f32") == 0)
                kv_choice = G3N_KV_F32;
            else {
                fprintf(stderr, "g3n bench text: error: --kv wants f16 or f32, not '%s'\n", kv);
                return 2;
            }
        } else {
            fprintf(stderr, "g3n bench text: error: unknown or incomplete option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!model_dir) {
        fprintf(stderr, "g3n bench text: error: --model DIR is required (see --help)\n");
        return 2;
    }
    int64_t prefills[16];
    int num_prefills = 0;
    for (const char *p = prefill_list; *p && num_prefills < 16;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0) {
            fprintf(stderr, "g3n bench text: error: --prefill wants comma-separated token counts\n");
            return 2;
        }
        if (v > 0)
            prefills[num_prefills++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    if (repeat < 1)
        repeat = 1;
    if (batch_rows < 1 || batch_rows > 256) {
        fprintf(stderr, "g3n bench text: error: --batch wants 1 to 256 sessions\n");
        return 2;
    }
    g3n_set_threads(threads);

    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_weights *weights = NULL;
    g3n_text_model model, sub;
    memset(&model, 0, sizeof(model));
    memset(&sub, 0, sizeof(sub));
    char submodel_line[512] = "";
    g3n_text_session *session = NULL;
    g3n_text_session *others[256] = {NULL}; /* --batch: sessions 1..B-1 (others[0] = session) */
    g3n_text_batch *batch = NULL;
    float *logits = NULL, *batch_embeds = NULL, *batch_per_layer = NULL, *batch_scratch = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    const double load_start = g3n_now_seconds();
    g3n_quant_cache_info cache_info;
    if (g3n_config_load(&config, model_dir, &err) != G3N_OK ||
        g3n_weights_open_checkpoint(&weights, model_dir, &err) != G3N_OK ||
        g3n_text_model_load(&model, weights, &config, &err) != G3N_OK ||
        g3n_text_model_select_weights(&model, format, cache_file, &cache_info, &err) != G3N_OK)
        goto done;
    const double load_seconds = g3n_now_seconds() - load_start;
    const g3n_text_model *bm = &model; /* what is measured: the model, or its --submodel */
    if (submodel_spec) {
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, submodel_spec, &config.text, &err) != G3N_OK)
            goto done;
        int derived = g3n_text_model_derive(&sub, &model, &spec, &err);
        g3n_submodel_describe(&spec, &config.text, submodel_line, sizeof(submodel_line));
        g3n_submodel_free(&spec);
        if (derived != G3N_OK)
            goto done;
        bm = &sub;
    }
    int64_t longest = decode;
    for (int i = 0; i < num_prefills; i++)
        longest = prefills[i] > longest ? prefills[i] : longest;
    g3n_text_session_params params = g3n_text_session_default_params(bm);
    params.max_positions = context > longest ? context : longest + 1;
    if (chunk > 0)
        params.chunk_tokens = chunk;
    if (kv_choice >= 0)
        params.kv_type = (g3n_kv_type)kv_choice;
    const int64_t V = bm->vocab_size;
    logits = malloc(sizeof(float) * (size_t)V * (size_t)batch_rows);
    ids = malloc(sizeof(int32_t) * (size_t)longest);
    if (!logits || !ids) {
        g3n_error_set(&err, "out of memory");
        goto done;
    }
    const int64_t text_vocab = config.text.vocab_size_per_layer_input > 0 ? config.text.vocab_size_per_layer_input : V;
    for (int64_t i = 0; i < longest; i++) /* fixed pseudo-random text ids */
        ids[i] = (int32_t)(((uint64_t)i * 2654435761u + 12345u) % (uint64_t)text_vocab);
    if (g3n_text_session_create(&session, bm, &params, &err) != G3N_OK)
        goto done;
    const g3n_text_session_memory session_memory = g3n_text_session_memory_usage(session);
    const int64_t D = bm->hidden_size, LP = g3n_text_model_per_layer_width(bm);
    if (batch_rows > 1) {
        others[0] = session;
        for (int r = 1; r < batch_rows; r++)
            if (g3n_text_session_create(&others[r], bm, &params, &err) != G3N_OK)
                goto done;
        batch_embeds = malloc(sizeof(float) * (size_t)(batch_rows * D));
        batch_per_layer = malloc(sizeof(float) * (size_t)(batch_rows * LP));
        batch_scratch = malloc(sizeof(float) * (size_t)(batch_rows * LP));
        if (!batch_embeds || !batch_per_layer || !batch_scratch) {
            g3n_error_set(&err, "out of memory");
            goto done;
        }
        if (g3n_text_batch_create(&batch, bm, batch_rows, &err) != G3N_OK)
            goto done;
    }
    /* warm-up: one short prefill and a decode step (page-in, thread pool) */
    if (g3n_text_session_forward_ids(session, ids, longest < 16 ? longest : 16, logits, 0, &err) != G3N_OK)
        goto done;

    bench_stat prefill_stats[16], decode_stat = {0, 0, 0, 0, 0};
    const double load_before = g3n_bench_load_average();
    double *rates = malloc(sizeof(double) * (size_t)repeat);
    if (!rates) {
        g3n_error_set(&err, "out of memory");
        goto done;
    }
    for (int p = 0; p < num_prefills; p++) {
        const double cpu_start = g3n_bench_process_cpu_seconds(), wall_start = g3n_now_seconds();
        for (int r = 0; r < repeat; r++) {
            g3n_text_session_reset(session);
            const double start = g3n_now_seconds();
            if (g3n_text_session_forward_ids(session, ids, prefills[p], logits, 0, &err) != G3N_OK) {
                free(rates);
                goto done;
            }
            rates[r] = (double)prefills[p] / (g3n_now_seconds() - start);
        }
        prefill_stats[p] = summarise(rates, repeat);
        add_share(&prefill_stats[p], g3n_bench_process_cpu_seconds() - cpu_start, g3n_now_seconds() - wall_start);
    }
    if (decode > 0 && batch_rows > 1) {
        /* B sessions from an empty context, each its own greedy text (first tokens differ) */
        const double cpu_start = g3n_bench_process_cpu_seconds(), wall_start = g3n_now_seconds();
        int32_t tokens[256];
        for (int r = 0; r < repeat; r++) {
            for (int b = 0; b < batch_rows; b++) {
                g3n_text_session_reset(others[b]);
                tokens[b] = ids[b % longest];
            }
            const double start = g3n_now_seconds();
            for (int64_t i = 0; i < decode; i++) {
                if (g3n_text_embedder_embed_ids(&bm->embedder, tokens, batch_rows, batch_embeds, batch_per_layer,
                                                batch_scratch, &err) != G3N_OK ||
                    g3n_text_batch_forward(batch, others, batch_rows, batch_embeds, batch_per_layer, logits, &err) !=
                        G3N_OK) {
                    free(rates);
                    goto done;
                }
                for (int b = 0; b < batch_rows; b++)
                    tokens[b] = g3n_argmax(logits + (int64_t)b * V, text_vocab);
            }
            rates[r] = (double)(decode * batch_rows) / (g3n_now_seconds() - start);
        }
        decode_stat = summarise(rates, repeat);
        add_share(&decode_stat, g3n_bench_process_cpu_seconds() - cpu_start, g3n_now_seconds() - wall_start);
    } else if (decode > 0) {
        const double cpu_start = g3n_bench_process_cpu_seconds(), wall_start = g3n_now_seconds();
        for (int r = 0; r < repeat; r++) {
            g3n_text_session_reset(session);
            int32_t token = ids[0];
            const double start = g3n_now_seconds();
            for (int64_t i = 0; i < decode; i++) {
                if (g3n_text_session_forward_ids(session, &token, 1, logits, 0, &err) != G3N_OK) {
                    free(rates);
                    goto done;
                }
                token = g3n_argmax(logits, text_vocab);
            }
            rates[r] = (double)decode / (g3n_now_seconds() - start);
        }
        decode_stat = summarise(rates, repeat);
        add_share(&decode_stat, g3n_bench_process_cpu_seconds() - cpu_start, g3n_now_seconds() - wall_start);
    }
    free(rates);
    const uint64_t rss = current_rss_bytes(), peak = g3n_peak_rss_bytes();
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (json) {
        printf("{\"submodel\":\"%s\",", submodel_line);
        printf("\"model\":\"%s\",\"weights\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"repeat\":%d,"
               "\"load_seconds\":%.3f,\"cache_built\":%d,\"cache_persisted\":%d,\"cache_bytes\":%llu,\"cache_pages\":\"%s\","
               "\"rss_bytes\":%llu,\"peak_rss_bytes\":%llu,\"kv\":\"%s\",\"context\":%lld,"
               "\"session_kv_bytes\":%llu,\"session_scratch_bytes\":%llu,\"batch\":%d,\"results\":[",
               model_dir, g3n_weight_format_name(format), g3n_get_threads(), g3n_isa_name(g3n_isa_active()), repeat,
               load_seconds, cache_info.built, cache_info.persisted, (unsigned long long)cache_info.bytes,
               cache_info.persisted ? g3n_file_pages_name(cache_info.pages) : "memory",
               (unsigned long long)rss, (unsigned long long)peak, params.kv_type == G3N_KV_F16 ? "f16" : "f32",
               (long long)params.max_positions, (unsigned long long)session_memory.kv_cache_bytes,
               (unsigned long long)session_memory.scratch_bytes, batch_rows);
        for (int p = 0; p < num_prefills; p++)
            printf("%s{\"test\":\"pp%lld\",\"tokens\":%lld,\"tok_s\":%.3f,\"tok_s_min\":%.3f,\"tok_s_max\":%.3f,"
                   "\"cpu_share\":%.3f,\"tok_s_projected\":%.3f}",
                   p ? "," : "", (long long)prefills[p], (long long)prefills[p], prefill_stats[p].median,
                   prefill_stats[p].min, prefill_stats[p].max, prefill_stats[p].share, prefill_stats[p].projected);
        if (decode > 0)
            printf("%s{\"test\":\"tg%lld\",\"sessions\":%d,\"tokens\":%lld,\"tok_s\":%.3f,\"tok_s_min\":%.3f,\"tok_s_max\":%.3f,"
                   "\"cpu_share\":%.3f,\"tok_s_projected\":%.3f}",
                   num_prefills ? "," : "", (long long)decode, batch_rows, (long long)(decode * batch_rows),
                   decode_stat.median, decode_stat.min,
                   decode_stat.max, decode_stat.share, decode_stat.projected);
        printf("],\"load_average\":%.2f}\n", load_before);
    } else {
        printf("text model %s, --weights %s, %d threads, isa %s, median of %d\n", model_dir,
               g3n_weight_format_name(format), g3n_get_threads(), g3n_isa_name(g3n_isa_active()), repeat);
        if (submodel_line[0])
            printf("sub-model %s\n", submodel_line);
        printf("load %.2f s (weight cache: %s, %.2f GiB%s%s)\n", load_seconds,
               format == G3N_WEIGHTS_EXACT ? "none" : cache_info.built ? "built now" : "mapped",
               (double)cache_info.bytes / gib, cache_info.persisted ? ", file in " : ", memory",
               cache_info.persisted ? g3n_file_pages_name(cache_info.pages) : "");
        printf("session: context %lld, KV cache %s %.1f MiB, scratch %.1f MiB\n", (long long)params.max_positions,
               params.kv_type == G3N_KV_F16 ? "f16" : "f32", (double)session_memory.kv_cache_bytes / 1048576.0,
               (double)session_memory.scratch_bytes / 1048576.0);
        printf("load average %.2f at the start; share = CPU time / (wall x threads): the part of the cores the run\n"
               "got on a shared host; projected = tok/s / share (the threads' cores to ourselves, no contention)\n",
               load_before);
        printf("%-14s %12s %12s %12s %8s %12s\n", "test", "tok/s", "min", "max", "share", "projected");
        for (int p = 0; p < num_prefills; p++) {
            char label[32];
            snprintf(label, sizeof(label), "prefill %lld", (long long)prefills[p]);
            printf("%-14s %12.2f %12.2f %12.2f %8.2f %12.2f\n", label, prefill_stats[p].median, prefill_stats[p].min,
                   prefill_stats[p].max, prefill_stats[p].share, prefill_stats[p].projected);
        }
        if (decode > 0) {
            char label[32];
            if (batch_rows > 1)
                snprintf(label, sizeof(label), "decode %lldx%d", (long long)decode, batch_rows);
            else
                snprintf(label, sizeof(label), "decode %lld", (long long)decode);
            printf("%-14s %12.2f %12.2f %12.2f %8.2f %12.2f\n", label, decode_stat.median, decode_stat.min,
                   decode_stat.max, decode_stat.share, decode_stat.projected);
        }
        printf("RSS %.2f GiB now, peak %.2f GiB\n", (double)rss / gib, (double)peak / gib);
    }
    if (!json)
        print_resident_by_mapping();
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "g3n bench text: error: %s\n", err.message);
    free(logits);
    free(ids);
    g3n_text_session_free(session);
    for (int r = 1; r < batch_rows; r++)
        g3n_text_session_free(others[r]);
    g3n_text_batch_free(batch);
    free(batch_embeds);
    free(batch_per_layer);
    free(batch_scratch);
    g3n_text_model_free(&sub);
    g3n_text_model_free(&model);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    return rc;
}

static int bench_matmul(int argc, char **argv)
{
    int threads = 0, repeat = 5, json = 0, bf16_products = 0;
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
        else if (strcmp(argv[i], "--bf16-products") == 0)
            bf16_products = 1;
        else if (strcmp(argv[i], "--isa") == 0 && value) {
            i++;
            g3n_isa isa = strcmp(value, "portable") == 0 ? G3N_ISA_PORTABLE
                          : strcmp(value, "avx2") == 0   ? G3N_ISA_AVX2
                                                         : G3N_ISA_AVX512;
            g3n_isa_set(isa);
        } else if (strcmp(argv[i], "--dtype") == 0 && value) {
            i++;
            dtype = strcmp(value, "f32") == 0   ? G3N_DTYPE_F32
                    : strcmp(value, "f16") == 0 ? G3N_DTYPE_F16
                    : strcmp(value, "q8") == 0  ? G3N_DTYPE_Q8
                    : strcmp(value, "q4") == 0  ? G3N_DTYPE_Q4
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
        printf("matmul (%s weights, isa %s, %d threads)\n%-20s %12s %12s\n", g3n_matrix_dtype_name(dtype),
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
        const int quantised = dtype == G3N_DTYPE_Q8 || dtype == G3N_DTYPE_Q4;
        if (quantised && !g3n_quant_supported(dtype, k)) {
            fprintf(stderr, "g3n bench matmul: error: %s needs K to be a multiple of 64\n", g3n_matrix_dtype_name(dtype));
            return 2;
        }
        const g3n_dtype stored = quantised ? G3N_DTYPE_BF16 : dtype;
        void *w = malloc(g3n_dtype_size(stored) * (size_t)(n * k));
        if (!x || !y || !w) {
            fprintf(stderr, "g3n bench matmul: error: out of memory\n");
            free(x);
            free(y);
            free(w);
            return 1;
        }
        int64_t x_shape[2] = {m, k}, w_shape[2] = {n, k};
        g3n_synth_fill_f32("bench.x", 2, x_shape, 1, 0, m * k, x);
        if (stored == G3N_DTYPE_BF16) {
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
        g3n_matrix matrix = {stored, n, k, (size_t)k * g3n_dtype_size(stored), w};
        matrix.bf16_products = bf16_products;
        void *quant_storage = NULL;
        if (quantised) {
            quant_storage = g3n_aligned_alloc(g3n_quant_row_bytes(dtype, k) * (size_t)n);
            if (!quant_storage) {
                fprintf(stderr, "g3n bench matmul: error: out of memory\n");
                return 1;
            }
            matrix = g3n_quantize_matrix(&matrix, dtype, quant_storage);
        }
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
            printf("%s{\"m\":%lld,\"k\":%lld,\"n\":%lld,\"dtype\":\"%s\",\"isa\":\"%s\",\"threads\":%d,"
                   "\"ms\":%.3f,\"gflops\":%.2f}",
                   first ? "" : ",", m, k, n, g3n_matrix_dtype_name(dtype), g3n_isa_name(g3n_isa_active()),
                   g3n_get_threads(), best * 1e3, gflops);
        else {
            char label[64];
            snprintf(label, sizeof(label), "%lldx%lldx%lld", m, k, n);
            printf("%-20s %12.3f %12.2f\n", label, best * 1e3, gflops);
        }
        first = 0;
        free(x);
        free(y);
        free(w);
        g3n_aligned_free(quant_storage);
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
    if (g3n_bench_towers_handles(argv[1])) /* vision, audio, gemm: bench_towers.c */
        return g3n_bench_towers(argc - 1, argv + 1);
    if (strcmp(argv[1], "pipeline") == 0) /* bench_pipeline.c */
        return g3n_bench_pipeline(argc - 1, argv + 1);
    if (strcmp(argv[1], "chat") == 0) /* bench_chat.c */
        return g3n_bench_chat(argc - 1, argv + 1);
    if (strcmp(argv[1], "text") == 0) {
        if (g3n_wants_help(argc - 1, argv + 1)) {
            usage(stdout);
            return 0;
        }
        return bench_text(argc - 1, argv + 1);
    }
    fprintf(stderr, "g3n bench: error: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
