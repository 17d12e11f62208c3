/* g3n generate - token ids in, token ids out, with the language model.
 * Prints each id on stdout as it is produced; speed and memory on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "generate.h"
#include "matmul.h"
#include "ops.h"
#include "submodel.h"
#include "text_model.h"
#include "weights.h"

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: g3n generate (--model DIR | --synth CONFIG:SEED) --prompt-ids ID,ID,... [options]\n"
            "\n"
            "Runs the Gemma 3n language model on prompt token ids and prints the generated ids\n"
            "(one per line, as they are produced). Prefill/decode tokens per second, session\n"
            "memory and peak RSS go to stderr.\n"
            "\n"
            "  --model DIR           checkpoint folder (config.json, safetensors shards, optional\n"
            "                        generation_config.json for sampling defaults and eos ids)\n"
            "  --synth CONFIG:SEED   synthetic weights for a config.json (bf16, in memory)\n"
            "  --prompt-ids LIST     comma-separated prompt token ids (required)\n"
            "  --max-new-tokens N    tokens to generate (default 32)\n"
            "  --threads N           OpenMP threads (default: all)\n"
            "  --greedy              argmax decoding (default unless generation_config.json samples)\n"
            "  --temperature T       sample with temperature T (0 = greedy)\n"
            "  --top-k K             keep the K most likely ids (0 = off; default 50 or the config's)\n"
            "  --top-p P             nucleus sampling (1 = off)\n"
            "  --min-p P             drop ids below P x the top probability (0 = off)\n"
            "  --seed N              sampling seed (default 0)\n"
            "  --context N           positions the session holds (default: prompt + max-new-tokens)\n"
            "  --chunk N             prefill chunk rows (default 64)\n"
            "  --weights F           f32 (exact, default), bf16 (stored weights + sparse MLP), q8 or q4\n"
            "                        (block-quantised, cached next to the checkpoint on first use)\n"
            "  --cache FILE          the weight cache file for --weights bf16|q8|q4\n"
            "  --submodel SPEC       generate with this MatFormer sub-model of the model (a preset: full,\n"
            "                        e2b, e1.96b, e2.54b; a JSON object; @FILE.json: g3n slice --help)\n"
            "  --no-eos              do not stop on the eos ids\n"
            "  --all-vocab           allow every id (default: ids below vocab_size_per_layer_input,\n"
            "                        i.e. no multimodal hard tokens)\n");
}

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

int g3n_command_generate(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        print_help(stdout);
        return 0;
    }
    const char *model_dir = NULL, *synth_spec = NULL, *prompt_text = NULL, *cache_file = NULL;
    const char *submodel_spec = NULL;
    g3n_weight_format weight_format = G3N_WEIGHTS_EXACT;
    int64_t max_new = 32, context = 0, chunk = 0;
    int threads = 0, no_eos = 0, all_vocab = 0, greedy = 0;
    int set_temperature = 0, set_top_k = 0, set_top_p = 0, set_min_p = 0, set_seed = 0;
    double temperature = 1.0, top_p = 1.0, min_p = 0.0;
    long top_k = 0;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                                                \
    do {                                                                                                            \
        if (!v) {                                                                                                   \
            fprintf(stderr, "g3n generate: error: %s needs a value\n", a);                                          \
            return 2;                                                                                               \
        }                                                                                                           \
        i++;                                                                                                        \
    } while (0)
        if (strcmp(a, "--model") == 0) {
            NEED_VALUE();
            model_dir = v;
        } else if (strcmp(a, "--synth") == 0) {
            NEED_VALUE();
            synth_spec = v;
        } else if (strcmp(a, "--prompt-ids") == 0) {
            NEED_VALUE();
            prompt_text = v;
        } else if (strcmp(a, "--max-new-tokens") == 0) {
            NEED_VALUE();
            max_new = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--threads") == 0) {
            NEED_VALUE();
            threads = atoi(v);
        } else if (strcmp(a, "--temperature") == 0) {
            NEED_VALUE();
            temperature = strtod(v, NULL);
            set_temperature = 1;
        } else if (strcmp(a, "--top-k") == 0) {
            NEED_VALUE();
            top_k = strtol(v, NULL, 10);
            set_top_k = 1;
        } else if (strcmp(a, "--top-p") == 0) {
            NEED_VALUE();
            top_p = strtod(v, NULL);
            set_top_p = 1;
        } else if (strcmp(a, "--min-p") == 0) {
            NEED_VALUE();
            min_p = strtod(v, NULL);
            set_min_p = 1;
        } else if (strcmp(a, "--seed") == 0) {
            NEED_VALUE();
            seed = strtoull(v, NULL, 10);
            set_seed = 1;
        } else if (strcmp(a, "--context") == 0) {
            NEED_VALUE();
            context = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--chunk") == 0) {
            NEED_VALUE();
            chunk = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--weights") == 0) {
            NEED_VALUE();
            if (g3n_parse_weights_option("generate", v, &weight_format) != 0)
                return 2;
        } else if (strcmp(a, "--cache") == 0) {
            NEED_VALUE();
            cache_file = v;
        } else if (strcmp(a, "--submodel") == 0) {
            NEED_VALUE();
            submodel_spec = v;
        } else if (strcmp(a, "--greedy") == 0) {
            greedy = 1;
        } else if (strcmp(a, "--no-eos") == 0) {
            no_eos = 1;
        } else if (strcmp(a, "--all-vocab") == 0) {
            all_vocab = 1;
        } else {
            fprintf(stderr, "g3n generate: error: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
#undef NEED_VALUE
    }
    if ((model_dir == NULL) == (synth_spec == NULL) || !prompt_text) {
        fprintf(stderr, "g3n generate: error: give one of --model/--synth, and --prompt-ids (see --help)\n");
        return 2;
    }
    int32_t *prompt = NULL;
    int64_t prompt_count = 0;
    if (parse_ids(prompt_text, &prompt, &prompt_count) != 0) {
        fprintf(stderr, "g3n generate: error: --prompt-ids wants comma-separated non-negative integers\n");
        return 2;
    }
    if (max_new < 0) {
        fprintf(stderr, "g3n generate: error: --max-new-tokens must be >= 0\n");
        free(prompt);
        return 2;
    }
    if (threads > 0)
        g3n_set_threads(threads);

    g3n_error err = {{0}};
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_weights *weights = NULL;
    g3n_text_model model, sub;
    memset(&model, 0, sizeof(model));
    memset(&sub, 0, sizeof(sub));
    g3n_text_session *session = NULL;
    int rc = 1;
    double t_load = g3n_now_seconds();

    char config_path[1024];
    uint64_t synth_seed = 0;
    if (synth_spec) {
        if (g3n_parse_synth_spec(synth_spec, config_path, sizeof(config_path), &synth_seed, &err) != G3N_OK ||
            g3n_config_load(&config, config_path, &err) != G3N_OK ||
            g3n_weights_open_synth(&weights, synth_seed, G3N_DTYPE_BF16, &err) != G3N_OK)
            goto done;
    } else {
        if (g3n_config_load(&config, model_dir, &err) != G3N_OK ||
            g3n_weights_open_checkpoint(&weights, model_dir, &err) != G3N_OK)
            goto done;
    }
    if (g3n_text_model_load(&model, weights, &config, &err) != G3N_OK)
        goto done;
    if (weight_format != G3N_WEIGHTS_EXACT) {
        g3n_quant_cache_info cache_info;
        if (g3n_text_model_select_weights(&model, weight_format, cache_file, &cache_info, &err) != G3N_OK)
            goto done;
        fprintf(stderr, "weights %s: cache %s in %.2f s (%.2f GiB%s%s)\n", g3n_weight_format_name(weight_format),
                cache_info.built ? "built" : "mapped", cache_info.seconds, (double)cache_info.bytes / (1u << 30),
                cache_info.persisted ? ", file in " : ", memory",
                cache_info.persisted ? g3n_file_pages_name(cache_info.pages) : "");
    }

    const g3n_text_model *gm = &model; /* the model, or its --submodel (views into its weights) */
    if (submodel_spec) {
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, submodel_spec, &config.text, &err) != G3N_OK)
            goto done;
        char line[512];
        g3n_submodel_describe(&spec, &config.text, line, sizeof(line));
        int derived = g3n_text_model_derive(&sub, &model, &spec, &err);
        g3n_submodel_free(&spec);
        if (derived != G3N_OK)
            goto done;
        fprintf(stderr, "g3n generate: sub-model %s\n", line);
        gm = &sub;
    }

    g3n_generate_params gen = g3n_generate_default_params(gm);
    if (model_dir) {
        int found = 0;
        if (g3n_generation_config_load(model_dir, &gen.sampling, gen.eos_ids, &gen.num_eos_ids, &found, &err) !=
            G3N_OK)
            goto done;
    }
    gen.max_new_tokens = max_new;
    if (set_temperature) {
        gen.sampling.temperature = (float)temperature;
        gen.sampling.do_sample = temperature > 0.0;
    }
    if (set_top_k)
        gen.sampling.top_k = (int)top_k;
    if (set_top_p)
        gen.sampling.top_p = (float)top_p;
    if (set_min_p)
        gen.sampling.min_p = (float)min_p;
    if (set_seed)
        gen.sampling.seed = seed;
    if (greedy)
        gen.sampling.do_sample = 0;
    if (no_eos)
        gen.num_eos_ids = 0;
    if (all_vocab)
        gen.allowed_vocab = 0;
    gen.on_token = print_token;

    g3n_text_session_params sp = g3n_text_session_default_params(gm);
    sp.max_positions = context > 0 ? context : prompt_count + max_new + 1;
    if (chunk > 0)
        sp.chunk_tokens = chunk;
    if (g3n_text_session_create(&session, gm, &sp, &err) != G3N_OK)
        goto done;
    t_load = g3n_now_seconds() - t_load;

    g3n_generate_stats stats;
    int64_t produced = 0;
    if (max_new > 0) {
        if (g3n_text_generate(session, prompt, prompt_count, &gen, NULL, &produced, &stats, &err) != G3N_OK)
            goto done;
    } else {
        memset(&stats, 0, sizeof(stats));
        double t0 = g3n_now_seconds();
        if (g3n_text_session_forward_ids(session, prompt, prompt_count, NULL, 0, &err) != G3N_OK)
            goto done;
        stats.prompt_tokens = prompt_count;
        stats.prefill_seconds = g3n_now_seconds() - t0;
    }
    g3n_text_session_memory mem = g3n_text_session_memory_usage(session);
    fprintf(stderr, "g3n generate: %s, %d threads, isa %s, load %.2f s\n", g3n_weights_describe(weights),
            g3n_get_threads(), g3n_isa_name(g3n_isa_active()), t_load);
    fprintf(stderr, "g3n generate: prefill %lld tokens in %.3f s = %.2f tok/s\n", (long long)stats.prompt_tokens,
            stats.prefill_seconds, stats.prefill_seconds > 0 ? stats.prompt_tokens / stats.prefill_seconds : 0.0);
    fprintf(stderr, "g3n generate: decode %lld tokens (%lld forwards) in %.3f s = %.2f tok/s%s\n",
            (long long)produced, (long long)stats.decode_forwards, stats.decode_seconds,
            stats.decode_seconds > 0 ? stats.decode_forwards / stats.decode_seconds : 0.0,
            stats.stopped_on_eos ? " (stopped on eos)" : "");
    fprintf(stderr, "g3n generate: session memory %.1f MiB (kv cache %.1f MiB for %lld positions, scratch %.1f MiB); "
                    "weights allocated %.1f MiB; peak RSS %.1f MiB\n",
            (mem.kv_cache_bytes + mem.scratch_bytes) / 1048576.0, mem.kv_cache_bytes / 1048576.0,
            (long long)sp.max_positions, mem.scratch_bytes / 1048576.0,
            g3n_weights_allocated_bytes(weights) / 1048576.0, g3n_peak_rss_bytes() / 1048576.0);
    rc = 0;

done:
    if (rc != 0)
        fprintf(stderr, "g3n generate: error: %s\n", err.message);
    g3n_text_session_free(session);
    g3n_text_model_free(&sub);
    g3n_text_model_free(&model);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    free(prompt);
    return rc;
}
