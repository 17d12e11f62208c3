/* g3n generate - token ids in, token ids out, with the language model.
 * Prints each id on stdout as it is produced; speed and memory on stderr. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "generate.h"
#include "matmul.h"
#include "ops.h"
#include "option_groups.h"
#include "submodel.h"
#include "text_model.h"
#include "weights.h"

static int parse_ids(const char *text, int32_t **ids, int64_t *count)
{
    int64_t capacity = 16, n = 0;
    int32_t *out = malloc((size_t)capacity * sizeof(int32_t));
    if (!out)
        return -1;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff) {
            free(out);
            return -1;
        }
        if (n == capacity) {
            capacity *= 2;
            int32_t *grown = realloc(out, (size_t)capacity * sizeof(int32_t));
            if (!grown) {
                free(out);
                return -1;
            }
            out = grown;
        }
        out[n++] = (int32_t)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p) {
            free(out);
            return -1;
        }
    }
    if (n == 0) {
        free(out);
        return -1;
    }
    *ids = out;
    *count = n;
    return 0;
}

static int print_token(void *user, int64_t step, int32_t token)
{
    (void)user;
    (void)step;
    printf("%d\n", token);
    fflush(stdout);
    return 0;
}

typedef struct generate_args {
    const char *model_dir, *synth_spec, *prompt_text, *cache_file, *submodel_spec;
    g3n_weight_format weight_format;
    int64_t max_new, context, chunk;
    int threads, no_eos, all_vocab, greedy;
    int set_temperature, set_top_k, set_top_p, set_min_p, set_seed;
    double temperature, top_p, min_p;
    int top_k;
    uint64_t seed;
    int32_t *prompt; /* the parsed --prompt-ids (owned) */
    int64_t prompt_count;
} generate_args;

static const g3n_command_spec generate_spec = {
    .name = "g3n generate",
    .usage = "g3n generate (--model DIR | --synth CONFIG:SEED) --prompt-ids ID,ID,... [options]",
    .about = "Runs the Gemma 3n language model on prompt token ids and prints the generated ids\n"
             "(one per line, as they are produced). Prefill/decode tokens per second, session\n"
             "memory and peak RSS go to stderr.\n",
    .help_column = 24,
};

/* -1 to go on, else the exit code. */
static int parse_args(generate_args *a, int argc, char **argv)
{
    a->max_new = 32;
    g3n_option options[] = {
        G3N_OPTION_MODEL(&a->model_dir, "checkpoint folder (config.json, safetensors shards, optional\n"
                                        "generation_config.json for sampling defaults and eos ids)"),
        G3N_OPTION_SYNTH(&a->synth_spec),
        G3N_STRING("prompt-ids", &a->prompt_text, "LIST", "comma-separated prompt token ids (required)"),
        G3N_INT64("max-new-tokens", &a->max_new, 0, INT32_MAX, "N", "tokens to generate (default 32)"),
        G3N_OPTION_THREADS(&a->threads),
        G3N_FLAG("greedy", &a->greedy, "argmax decoding (default unless generation_config.json samples)"),
        G3N_DOUBLE("temperature", &a->temperature, 0, 1e6, "T", "sample with temperature T (0 = greedy)"),
        G3N_INT("top-k", &a->top_k, 0, INT_MAX, "K", "keep the K most likely ids (0 = off; default 50 or the config's)"),
        G3N_DOUBLE("top-p", &a->top_p, 0, 1, "P", "nucleus sampling (1 = off)"),
        G3N_DOUBLE("min-p", &a->min_p, 0, 1, "P", "drop ids below P x the top probability (0 = off)"),
        G3N_UINT64("seed", &a->seed, 0, 0, "N", "sampling seed (default 0)"),
        G3N_INT64("context", &a->context, 0, INT32_MAX, "N",
                  "positions the session holds (default: prompt + max-new-tokens)"),
        G3N_INT64("chunk", &a->chunk, 0, INT32_MAX, "N", "prefill chunk rows (default 64)"),
        G3N_OPTION_WEIGHTS(&a->weight_format, NULL, "f32 (exact, default), bf16 (stored weights + sparse MLP), q8 or q4\n"
                                                    "(block-quantised, cached next to the checkpoint on first use)"),
        G3N_STRING("cache", &a->cache_file, "FILE", "the weight cache file for --weights bf16|q8|q4"),
        G3N_OPTION_SUBMODEL(&a->submodel_spec, "generate with this MatFormer sub-model of the model (a preset: full,\n"
                                               "e2b, e1.96b, e2.54b; a JSON object; @FILE.json: g3n slice --help)"),
        G3N_FLAG("no-eos", &a->no_eos, "do not stop on the eos ids"),
        G3N_FLAG("all-vocab", &a->all_vocab, "allow every id (default: ids below vocab_size_per_layer_input,\n"
                                             "i.e. no multimodal hard tokens)"),
    };
    options[6].given = &a->set_temperature;
    options[7].given = &a->set_top_k;
    options[8].given = &a->set_top_p;
    options[9].given = &a->set_min_p;
    options[10].given = &a->set_seed;
    int rc = g3n_options_main(&generate_spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    if ((a->model_dir == NULL) == (a->synth_spec == NULL) || !a->prompt_text)
        return g3n_options_usage_error(&generate_spec, "give one of --model/--synth, and --prompt-ids");
    if (parse_ids(a->prompt_text, &a->prompt, &a->prompt_count) != 0)
        return g3n_options_usage_error(&generate_spec, "--prompt-ids wants comma-separated non-negative integers");
    return -1;
}

/* What generate loads and frees. */
typedef struct generate_state {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_text_model model, sub;
    const g3n_text_model *active; /* the model, or its --submodel (views into its weights) */
    g3n_text_session *session;
    g3n_text_session_params session_params;
} generate_state;

static int load_weights(const generate_args *a, generate_state *st, g3n_error *err)
{
    if (a->synth_spec) {
        char config_path[1024];
        uint64_t synth_seed = 0;
        if (g3n_parse_synth_spec(a->synth_spec, config_path, sizeof(config_path), &synth_seed, err) != G3N_OK ||
            g3n_config_load(&st->config, config_path, err) != G3N_OK ||
            g3n_weights_open_synth(&st->weights, synth_seed, G3N_DTYPE_BF16, err) != G3N_OK)
            return G3N_ERR;
    } else if (g3n_config_load(&st->config, a->model_dir, err) != G3N_OK ||
               g3n_weights_open_checkpoint(&st->weights, a->model_dir, err) != G3N_OK) {
        return G3N_ERR;
    }
    if (g3n_text_model_load(&st->model, st->weights, &st->config, err) != G3N_OK)
        return G3N_ERR;
    if (a->weight_format != G3N_WEIGHTS_EXACT) {
        g3n_quant_cache_info cache_info;
        if (g3n_text_model_select_weights(&st->model, a->weight_format, a->cache_file, &cache_info, err) != G3N_OK)
            return G3N_ERR;
        fprintf(stderr, "weights %s: cache %s in %.2f s (%.2f GiB%s%s)\n", g3n_weight_format_name(a->weight_format),
                cache_info.built ? "built" : "mapped", cache_info.seconds, (double)cache_info.bytes / (1u << 30),
                cache_info.persisted ? ", file in " : ", memory",
                cache_info.persisted ? g3n_file_pages_name(cache_info.pages) : "");
    }
    return G3N_OK;
}

/* Loads the model (and its --submodel) and opens the session. */
static int load_model(const generate_args *a, generate_state *st, g3n_error *err)
{
    if (load_weights(a, st, err) != G3N_OK)
        return G3N_ERR;
    st->active = &st->model;
    if (a->submodel_spec) {
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, a->submodel_spec, &st->config.text, err) != G3N_OK)
            return G3N_ERR;
        char line[512];
        g3n_submodel_describe(&spec, &st->config.text, line, sizeof(line));
        int derived = g3n_text_model_derive(&st->sub, &st->model, &spec, err);
        g3n_submodel_free(&spec);
        if (derived != G3N_OK)
            return G3N_ERR;
        fprintf(stderr, "g3n generate: sub-model %s\n", line);
        st->active = &st->sub;
    }
    st->session_params = g3n_text_session_default_params(st->active);
    st->session_params.max_positions = a->context > 0 ? a->context : a->prompt_count + a->max_new + 1;
    if (a->chunk > 0)
        st->session_params.chunk_tokens = a->chunk;
    return g3n_text_session_create(&st->session, st->active, &st->session_params, err);
}

/* The generation parameters: the model's defaults, generation_config.json, then the options. */
static int sampling_params(const generate_args *a, const generate_state *st, g3n_generate_params *gen, g3n_error *err)
{
    *gen = g3n_generate_default_params(st->active);
    if (a->model_dir) {
        int found = 0;
        if (g3n_generation_config_load(a->model_dir, &gen->sampling, gen->eos_ids, &gen->num_eos_ids, &found, err) !=
            G3N_OK)
            return G3N_ERR;
    }
    gen->max_new_tokens = a->max_new;
    if (a->set_temperature) {
        gen->sampling.temperature = (float)a->temperature;
        gen->sampling.do_sample = a->temperature > 0.0;
    }
    if (a->set_top_k)
        gen->sampling.top_k = a->top_k;
    if (a->set_top_p)
        gen->sampling.top_p = (float)a->top_p;
    if (a->set_min_p)
        gen->sampling.min_p = (float)a->min_p;
    if (a->set_seed)
        gen->sampling.seed = a->seed;
    if (a->greedy)
        gen->sampling.do_sample = 0;
    if (a->no_eos)
        gen->num_eos_ids = 0;
    if (a->all_vocab)
        gen->allowed_vocab = 0;
    gen->on_token = print_token;
    return G3N_OK;
}

static void report(const generate_state *st, const g3n_generate_stats *stats, int64_t produced, double t_load)
{
    g3n_text_session_memory mem = g3n_text_session_memory_usage(st->session);
    fprintf(stderr, "g3n generate: %s, %d threads, isa %s, load %.2f s\n", g3n_weights_describe(st->weights),
            g3n_get_threads(), g3n_isa_name(g3n_isa_active()), t_load);
    fprintf(stderr, "g3n generate: prefill %lld tokens in %.3f s = %.2f tok/s\n", (long long)stats->prompt_tokens,
            stats->prefill_seconds, stats->prefill_seconds > 0 ? stats->prompt_tokens / stats->prefill_seconds : 0.0);
    fprintf(stderr, "g3n generate: decode %lld tokens (%lld forwards) in %.3f s = %.2f tok/s%s\n",
            (long long)produced, (long long)stats->decode_forwards, stats->decode_seconds,
            stats->decode_seconds > 0 ? stats->decode_forwards / stats->decode_seconds : 0.0,
            stats->stopped_on_eos ? " (stopped on eos)" : "");
    fprintf(stderr, "g3n generate: session memory %.1f MiB (kv cache %.1f MiB for %lld positions, scratch %.1f MiB); "
                    "weights allocated %.1f MiB; peak RSS %.1f MiB\n",
            (mem.kv_cache_bytes + mem.scratch_bytes) / 1048576.0, mem.kv_cache_bytes / 1048576.0,
            (long long)st->session_params.max_positions, mem.scratch_bytes / 1048576.0,
            g3n_weights_allocated_bytes(st->weights) / 1048576.0, g3n_peak_rss_bytes() / 1048576.0);
}

/* Loads, generates and reports. */
static int run_generate(const generate_args *a, generate_state *st, g3n_error *err)
{
    double t_load = g3n_now_seconds();
    g3n_generate_params gen;
    if (load_model(a, st, err) != G3N_OK || sampling_params(a, st, &gen, err) != G3N_OK)
        return G3N_ERR;
    t_load = g3n_now_seconds() - t_load;
    g3n_generate_stats stats;
    int64_t produced = 0;
    if (a->max_new > 0) {
        if (g3n_text_generate(st->session, a->prompt, a->prompt_count, &gen, NULL, &produced, &stats, err) != G3N_OK)
            return G3N_ERR;
    } else {
        memset(&stats, 0, sizeof(stats));
        double t0 = g3n_now_seconds();
        if (g3n_text_session_forward_ids(st->session, a->prompt, a->prompt_count, NULL, 0, err) != G3N_OK)
            return G3N_ERR;
        stats.prompt_tokens = a->prompt_count;
        stats.prefill_seconds = g3n_now_seconds() - t0;
    }
    report(st, &stats, produced, t_load);
    return G3N_OK;
}

int g3n_command_generate(int argc, char **argv)
{
    generate_args args;
    memset(&args, 0, sizeof(args));
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0) {
        free(args.prompt);
        return rc;
    }
    if (args.threads > 0)
        g3n_set_threads(args.threads);
    generate_state st;
    memset(&st, 0, sizeof(st));
    g3n_error err = {{0}};
    rc = 0;
    if (run_generate(&args, &st, &err) != G3N_OK) {
        fprintf(stderr, "g3n generate: error: %s\n", err.message);
        rc = 1;
    }
    g3n_text_session_free(st.session);
    g3n_text_model_free(&st.sub);
    g3n_text_model_free(&st.model);
    g3n_weights_close(st.weights);
    g3n_config_free(&st.config);
    free(args.prompt);
    return rc;
}
