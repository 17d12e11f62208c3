/* bench_text.c - `g3n bench text`: tokens/s of the language model's prefill
 * and decode on a checkpoint folder (the llama-bench pp/tg counterpart). */
#include "bench_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "config.h"
#include "generate.h"
#include "matmul.h"
#include "memory_report.h"
#include "ops.h"
#include "option_groups.h"
#include "quant.h"
#include "submodel.h"
#include "text_model.h"
#include "weights.h"

#define MAX_PREFILLS 16
#define MAX_BATCH 256

static const char *const kv_names[] = {"f16", "f32", NULL};

typedef struct bench_text_args {
    const char *model_dir, *prefill_list, *cache_file, *submodel_spec;
    int threads, repeat, json, batch_rows, kv_choice; /* kv_choice: index into kv_names, -1: the default */
    int64_t decode, chunk, context;
    g3n_weight_format format;
    int64_t prefills[MAX_PREFILLS];
    int num_prefills;
} bench_text_args;

static const g3n_command_spec bench_text_spec = {
    .name = "g3n bench text",
    .usage = "g3n bench text --model DIR [--weights f32|bf16|q8|q4] [--threads N] [--prefill 128,512]\n"
             "                      [--decode 64] [--repeat R] [--chunk N] [--cache FILE] [--json]\n"
             "                      [--batch B] [--kv f16|f32] [--context N] [--submodel SPEC]",
    .about = "Tokens/s of the language model on a checkpoint folder (e.g. g3n synth's E2B): prefill of each\n"
             "--prefill length from an empty context (logits of the last token only), and --decode one-token\n"
             "steps from an empty context (greedy, logits every step), as llama-bench's pp/tg. Reports the\n"
             "median of R runs, the min and max, load/cache time, resident memory and the bytes of the weight\n"
             "cache.\n",
    .help_column = 20,
};

/* --prefill's list into a->prefills (0 entries are skipped). */
static int parse_prefills(bench_text_args *a)
{
    for (const char *p = a->prefill_list; *p && a->num_prefills < MAX_PREFILLS;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || (*end && *end != ','))
            return g3n_options_usage_error(&bench_text_spec, "--prefill wants comma-separated token counts");
        if (v > 0)
            a->prefills[a->num_prefills++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    return -1;
}

/* -1 to go on, else the exit code. */
static int parse_args(bench_text_args *a, int argc, char **argv)
{
    a->prefill_list = "128,512";
    a->repeat = 3;
    a->batch_rows = 1;
    a->kv_choice = -1;
    a->decode = 64;
    a->format = G3N_WEIGHTS_BF16;
    g3n_option options[] = {
        G3N_OPTION_MODEL(&a->model_dir, "the checkpoint folder (required)"),
        G3N_OPTION_WEIGHTS(&a->format, NULL, "f32 = the exact path; bf16 (default) = stored weights + sparse MLP;\n"
                                             "q8/q4 = block-quantised, cached in DIR/g3n-cache (or $G3N_CACHE_DIR,\n"
                                             "or --cache FILE) on first use"),
        G3N_OPTION_THREADS(&a->threads),
        G3N_STRING("prefill", &a->prefill_list, "N,N", "prompt lengths to measure (default 128,512)"),
        G3N_INT64("decode", &a->decode, 0, 1 << 24, "N", "one-token steps to measure (default 64; 0: none)"),
        G3N_INT("repeat", &a->repeat, 1, 100000, "R", "runs of each test (default 3)"),
        G3N_INT64("chunk", &a->chunk, 0, 1 << 24, "N", "prefill chunk rows (default: the session's)"),
        G3N_STRING("cache", &a->cache_file, "FILE", "the weight cache file for --weights bf16|q8|q4"),
        G3N_FLAG("json", &a->json, "one JSON object on stdout"),
        G3N_INT("batch", &a->batch_rows, 1, MAX_BATCH, "B",
                "B sessions decode together (continuous batching: one forward per step whose\n"
                "rows are the sessions); the decode figure is the aggregate B x steps / wall (default 1)"),
        G3N_ENUM("kv", &a->kv_choice, kv_names,
                 "the KV cache's element type (default f16 with bf16/q8/q4, f32 with f32)"),
        G3N_INT64("context", &a->context, 0, 1 << 30, "N",
                  "the sessions' max_positions (default the longest test + 1); the session's KV\n"
                  "and scratch bytes are reported"),
        G3N_OPTION_SUBMODEL(&a->submodel_spec, "measure this MatFormer sub-model (g3n slice --help) of the model,\n"
                                               "served as views into its weights"),
    };
    options[0].required = 1;
    int rc = g3n_options_main(&bench_text_spec, options, G3N_OPTION_COUNT(options), argc, argv);
    return rc >= 0 ? rc : parse_prefills(a);
}

typedef struct bench_stat {
    double median, min, max; /* tokens/s */
    double share;            /* CPU time / (wall time x threads) over the runs: the part of the cores we got */
    double projected;        /* median / share (share < 1): tokens/s with the threads' cores to ourselves */
} bench_stat;

/* Summarises rates[0..count) measured between cpu_start and wall_start and now. */
static bench_stat summarise(double *rates, int count, double cpu_start, double wall_start)
{
    bench_stat s = {0.0, 0.0, 0.0, 1.0, 0.0};
    s.median = g3n_bench_median(rates, count, &s.min, &s.max);
    const double cpu = g3n_bench_process_cpu_seconds() - cpu_start, wall = g3n_now_seconds() - wall_start;
    const int threads = g3n_get_threads();
    s.share = wall > 0.0 ? cpu / (wall * (threads > 0 ? threads : 1)) : 0.0;
    s.projected = s.median / (s.share > 0.0 && s.share < 1.0 ? s.share : 1.0);
    return s;
}

/* Everything bench text loads, makes and frees. */
typedef struct bench_text_state {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_text_model model, sub;
    const g3n_text_model *measured; /* the model, or its --submodel */
    char submodel_line[512];
    g3n_quant_cache_info cache_info;
    double load_seconds;
    g3n_text_session_params params;
    g3n_text_session *session;
    g3n_text_session *others[MAX_BATCH]; /* --batch: sessions 1..B-1 (others[0] = session) */
    g3n_text_session_memory session_memory;
    g3n_text_batch *batch;
    float *logits, *batch_embeds, *batch_per_layer, *batch_scratch;
    int32_t *ids;
    int64_t longest, vocab, text_vocab;
    double *rates;
    bench_stat prefill_stats[MAX_PREFILLS], decode_stat;
    double load_before;
} bench_text_state;

static int load_model(const bench_text_args *a, bench_text_state *st, g3n_error *err)
{
    const double load_start = g3n_now_seconds();
    if (g3n_config_load(&st->config, a->model_dir, err) != G3N_OK ||
        g3n_weights_open_checkpoint(&st->weights, a->model_dir, err) != G3N_OK ||
        g3n_text_model_load(&st->model, st->weights, &st->config, err) != G3N_OK ||
        g3n_text_model_select_weights(&st->model, a->format, a->cache_file, &st->cache_info, err) != G3N_OK)
        return G3N_ERR;
    st->load_seconds = g3n_now_seconds() - load_start;
    st->measured = &st->model;
    if (a->submodel_spec) {
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, a->submodel_spec, &st->config.text, err) != G3N_OK)
            return G3N_ERR;
        int derived = g3n_text_model_derive(&st->sub, &st->model, &spec, err);
        g3n_submodel_describe(&spec, &st->config.text, st->submodel_line, sizeof(st->submodel_line));
        g3n_submodel_free(&spec);
        if (derived != G3N_OK)
            return G3N_ERR;
        st->measured = &st->sub;
    }
    return G3N_OK;
}

/* The sessions (B of them with --batch), the ids, the buffers, and a warm-up. */
static int prepare_sessions(const bench_text_args *a, bench_text_state *st, g3n_error *err)
{
    const g3n_text_model *bm = st->measured;
    st->longest = a->decode;
    for (int i = 0; i < a->num_prefills; i++)
        st->longest = a->prefills[i] > st->longest ? a->prefills[i] : st->longest;
    st->params = g3n_text_session_default_params(bm);
    st->params.max_positions = a->context > st->longest ? a->context : st->longest + 1;
    if (a->chunk > 0)
        st->params.chunk_tokens = a->chunk;
    if (a->kv_choice >= 0)
        st->params.kv_type = a->kv_choice == 0 ? G3N_KV_F16 : G3N_KV_F32;
    st->vocab = bm->vocab_size;
    st->logits = malloc(sizeof(float) * (size_t)st->vocab * (size_t)a->batch_rows);
    st->ids = malloc(sizeof(int32_t) * (size_t)(st->longest > 0 ? st->longest : 1));
    st->rates = malloc(sizeof(double) * (size_t)a->repeat);
    if (!st->logits || !st->ids || !st->rates)
        return g3n_error_set(err, "out of memory");
    const int64_t per_layer_input = st->config.text.vocab_size_per_layer_input;
    st->text_vocab = per_layer_input > 0 ? per_layer_input : st->vocab;
    for (int64_t i = 0; i < st->longest; i++) /* fixed pseudo-random text ids */
        st->ids[i] = (int32_t)(((uint64_t)i * 2654435761u + 12345u) % (uint64_t)st->text_vocab);
    if (g3n_text_session_create(&st->session, bm, &st->params, err) != G3N_OK)
        return G3N_ERR;
    st->session_memory = g3n_text_session_memory_usage(st->session);
    const int64_t D = bm->hidden_size, LP = g3n_text_model_per_layer_width(bm), rows = a->batch_rows;
    if (rows > 1) {
        st->others[0] = st->session;
        for (int r = 1; r < rows; r++)
            if (g3n_text_session_create(&st->others[r], bm, &st->params, err) != G3N_OK)
                return G3N_ERR;
        st->batch_embeds = malloc(sizeof(float) * (size_t)(rows * D));
        st->batch_per_layer = malloc(sizeof(float) * (size_t)(rows * LP));
        st->batch_scratch = malloc(sizeof(float) * (size_t)(rows * LP));
        if (!st->batch_embeds || !st->batch_per_layer || !st->batch_scratch)
            return g3n_error_set(err, "out of memory");
        if (g3n_text_batch_create(&st->batch, bm, (int)rows, err) != G3N_OK)
            return G3N_ERR;
    }
    /* warm-up: one short prefill (page-in, thread pool) */
    return g3n_text_session_forward_ids(st->session, st->ids, st->longest < 16 ? st->longest : 16, st->logits, 0, err);
}

static int measure_prefills(const bench_text_args *a, bench_text_state *st, g3n_error *err)
{
    for (int p = 0; p < a->num_prefills; p++) {
        const double cpu_start = g3n_bench_process_cpu_seconds(), wall_start = g3n_now_seconds();
        for (int r = 0; r < a->repeat; r++) {
            g3n_text_session_reset(st->session);
            const double start = g3n_now_seconds();
            if (g3n_text_session_forward_ids(st->session, st->ids, a->prefills[p], st->logits, 0, err) != G3N_OK)
                return G3N_ERR;
            st->rates[r] = (double)a->prefills[p] / (g3n_now_seconds() - start);
        }
        st->prefill_stats[p] = summarise(st->rates, a->repeat, cpu_start, wall_start);
    }
    return G3N_OK;
}

/* --batch B: B sessions from an empty context, each its own greedy text (first tokens differ). */
static int measure_batched_decode(const bench_text_args *a, bench_text_state *st, g3n_error *err)
{
    const int rows = a->batch_rows;
    const g3n_text_model *bm = st->measured;
    const double cpu_start = g3n_bench_process_cpu_seconds(), wall_start = g3n_now_seconds();
    int32_t tokens[MAX_BATCH];
    for (int r = 0; r < a->repeat; r++) {
        for (int b = 0; b < rows; b++) {
            g3n_text_session_reset(st->others[b]);
            tokens[b] = st->ids[b % st->longest];
        }
        const double start = g3n_now_seconds();
        for (int64_t i = 0; i < a->decode; i++) {
            if (g3n_text_embedder_embed_ids(&bm->embedder, tokens, rows, st->batch_embeds, st->batch_per_layer,
                                            st->batch_scratch, err) != G3N_OK ||
                g3n_text_batch_forward(st->batch, st->others, rows, st->batch_embeds, st->batch_per_layer, st->logits,
                                       err) != G3N_OK)
                return G3N_ERR;
            for (int b = 0; b < rows; b++)
                tokens[b] = g3n_argmax(st->logits + (int64_t)b * st->vocab, st->text_vocab);
        }
        st->rates[r] = (double)(a->decode * rows) / (g3n_now_seconds() - start);
    }
    st->decode_stat = summarise(st->rates, a->repeat, cpu_start, wall_start);
    return G3N_OK;
}

static int measure_decode(const bench_text_args *a, bench_text_state *st, g3n_error *err)
{
    if (a->decode <= 0)
        return G3N_OK;
    if (a->batch_rows > 1)
        return measure_batched_decode(a, st, err);
    const double cpu_start = g3n_bench_process_cpu_seconds(), wall_start = g3n_now_seconds();
    for (int r = 0; r < a->repeat; r++) {
        g3n_text_session_reset(st->session);
        int32_t token = st->ids[0];
        const double start = g3n_now_seconds();
        for (int64_t i = 0; i < a->decode; i++) {
            if (g3n_text_session_forward_ids(st->session, &token, 1, st->logits, 0, err) != G3N_OK)
                return G3N_ERR;
            token = g3n_argmax(st->logits, st->text_vocab);
        }
        st->rates[r] = (double)a->decode / (g3n_now_seconds() - start);
    }
    st->decode_stat = summarise(st->rates, a->repeat, cpu_start, wall_start);
    return G3N_OK;
}

static void print_json(const bench_text_args *a, const bench_text_state *st, uint64_t rss, uint64_t peak)
{
    const g3n_quant_cache_info *c = &st->cache_info;
    printf("{\"submodel\":\"%s\",", st->submodel_line);
    printf("\"model\":\"%s\",\"weights\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"repeat\":%d,"
           "\"load_seconds\":%.3f,\"cache_built\":%d,\"cache_persisted\":%d,\"cache_bytes\":%llu,\"cache_pages\":\"%s\","
           "\"rss_bytes\":%llu,\"peak_rss_bytes\":%llu,\"kv\":\"%s\",\"context\":%lld,"
           "\"session_kv_bytes\":%llu,\"session_scratch_bytes\":%llu,\"batch\":%d,\"results\":[",
           a->model_dir, g3n_weight_format_name(a->format), g3n_get_threads(), g3n_isa_name(g3n_isa_active()),
           a->repeat, st->load_seconds, c->built, c->persisted, (unsigned long long)c->bytes,
           c->persisted ? g3n_file_pages_name(c->pages) : "memory", (unsigned long long)rss, (unsigned long long)peak,
           st->params.kv_type == G3N_KV_F16 ? "f16" : "f32", (long long)st->params.max_positions,
           (unsigned long long)st->session_memory.kv_cache_bytes, (unsigned long long)st->session_memory.scratch_bytes,
           a->batch_rows);
    for (int p = 0; p < a->num_prefills; p++) {
        const bench_stat *s = &st->prefill_stats[p];
        printf("%s{\"test\":\"pp%lld\",\"tokens\":%lld,\"tok_s\":%.3f,\"tok_s_min\":%.3f,\"tok_s_max\":%.3f,"
               "\"cpu_share\":%.3f,\"tok_s_projected\":%.3f}",
               p ? "," : "", (long long)a->prefills[p], (long long)a->prefills[p], s->median, s->min, s->max, s->share,
               s->projected);
    }
    const bench_stat *d = &st->decode_stat;
    if (a->decode > 0)
        printf("%s{\"test\":\"tg%lld\",\"sessions\":%d,\"tokens\":%lld,\"tok_s\":%.3f,\"tok_s_min\":%.3f,\"tok_s_max\":%.3f,"
               "\"cpu_share\":%.3f,\"tok_s_projected\":%.3f}",
               a->num_prefills ? "," : "", (long long)a->decode, a->batch_rows, (long long)(a->decode * a->batch_rows),
               d->median, d->min, d->max, d->share, d->projected);
    printf("],\"load_average\":%.2f}\n", st->load_before);
}

static void print_row(const char *label, const bench_stat *s)
{
    printf("%-14s %12.2f %12.2f %12.2f %8.2f %12.2f\n", label, s->median, s->min, s->max, s->share, s->projected);
}

static void print_table(const bench_text_args *a, const bench_text_state *st, uint64_t rss, uint64_t peak)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    const g3n_quant_cache_info *c = &st->cache_info;
    printf("text model %s, --weights %s, %d threads, isa %s, median of %d\n", a->model_dir,
           g3n_weight_format_name(a->format), g3n_get_threads(), g3n_isa_name(g3n_isa_active()), a->repeat);
    if (st->submodel_line[0])
        printf("sub-model %s\n", st->submodel_line);
    printf("load %.2f s (weight cache: %s, %.2f GiB%s%s)\n", st->load_seconds,
           a->format == G3N_WEIGHTS_EXACT ? "none" : c->built ? "built now" : "mapped", (double)c->bytes / gib,
           c->persisted ? ", file in " : ", memory", c->persisted ? g3n_file_pages_name(c->pages) : "");
    printf("session: context %lld, KV cache %s %.1f MiB, scratch %.1f MiB\n", (long long)st->params.max_positions,
           st->params.kv_type == G3N_KV_F16 ? "f16" : "f32", (double)st->session_memory.kv_cache_bytes / 1048576.0,
           (double)st->session_memory.scratch_bytes / 1048576.0);
    printf("load average %.2f at the start; share = CPU time / (wall x threads): the part of the cores the run\n"
           "got on a shared host; projected = tok/s / share (the threads' cores to ourselves, no contention)\n",
           st->load_before);
    printf("%-14s %12s %12s %12s %8s %12s\n", "test", "tok/s", "min", "max", "share", "projected");
    char label[32];
    for (int p = 0; p < a->num_prefills; p++) {
        snprintf(label, sizeof(label), "prefill %lld", (long long)a->prefills[p]);
        print_row(label, &st->prefill_stats[p]);
    }
    if (a->decode > 0) {
        if (a->batch_rows > 1)
            snprintf(label, sizeof(label), "decode %lldx%d", (long long)a->decode, a->batch_rows);
        else
            snprintf(label, sizeof(label), "decode %lld", (long long)a->decode);
        print_row(label, &st->decode_stat);
    }
    printf("RSS %.2f GiB now, peak %.2f GiB\n", (double)rss / gib, (double)peak / gib);
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

static void free_state(bench_text_state *st, int batch_rows)
{
    free(st->rates);
    free(st->logits);
    free(st->ids);
    g3n_text_session_free(st->session);
    for (int r = 1; r < batch_rows; r++)
        g3n_text_session_free(st->others[r]);
    g3n_text_batch_free(st->batch);
    free(st->batch_embeds);
    free(st->batch_per_layer);
    free(st->batch_scratch);
    g3n_text_model_free(&st->sub);
    g3n_text_model_free(&st->model);
    g3n_weights_close(st->weights);
    g3n_config_free(&st->config);
}

int g3n_bench_text(int argc, char **argv)
{
    bench_text_args args;
    memset(&args, 0, sizeof(args));
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    g3n_set_threads(args.threads);
    bench_text_state *st = calloc(1, sizeof(*st));
    if (!st)
        return 1;
    g3n_error err = {{0}};
    int status = load_model(&args, st, &err);
    if (status == G3N_OK)
        status = prepare_sessions(&args, st, &err);
    st->load_before = g3n_bench_load_average();
    if (status == G3N_OK)
        status = measure_prefills(&args, st, &err);
    if (status == G3N_OK)
        status = measure_decode(&args, st, &err);
    if (status == G3N_OK) {
        const uint64_t rss = current_rss_bytes(), peak = g3n_peak_rss_bytes();
        if (args.json) {
            print_json(&args, st, rss, peak);
        } else {
            print_table(&args, st, rss, peak);
            print_resident_by_mapping();
        }
    } else {
        fprintf(stderr, "g3n bench text: error: %s\n", err.message);
    }
    free_state(st, args.batch_rows);
    free(st);
    return status == G3N_OK ? 0 : 1;
}
