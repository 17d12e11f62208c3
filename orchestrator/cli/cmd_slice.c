/* g3n slice: write a MatFormer sub-model as a checkpoint folder of its own
 * (orchestrator/model_slice.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "model_slice.h"
#include "ops.h"
#include "option_groups.h"
#include "submodel.h"
#include "weights.h"

typedef struct slice_args {
    const char *model_dir, *synth, *spec, *out;
    uint64_t shard_size;
} slice_args;

/* -1 to go on, else the exit code. */
static int parse_args(slice_args *args, int argc, char **argv)
{
    args->shard_size = 2000000000ull;
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&args->model_dir, "the full checkpoint folder"),
        G3N_OPTION_SYNTH(&args->synth),
        G3N_OPTION_SUBMODEL(&args->spec,
                            "a preset, a JSON object {\"name\", \"layers_to_skip\", \"intermediate_size\"},\n"
                            "or @FILE.json; presets: below"),
        G3N_STRING("out", &args->out, "DIR", "the folder to write (created if missing)"),
        G3N_UINT64("shard-size", &args->shard_size, 1, LLONG_MAX, "B", "maximum bytes per shard (default 2000000000)"),
    };
    char footer[2048];
    snprintf(footer, sizeof(footer), "presets of --submodel:\n%s", g3n_submodel_presets());
    const g3n_command_spec spec = {
        .name = "g3n slice",
        .usage = "g3n slice (--model DIR | --synth CONFIG:SEED) --submodel SPEC --out DIR [--shard-size BYTES]",
        .about = "Writes the MatFormer sub-model SPEC of a checkpoint as a new checkpoint folder in the Hugging Face\n"
                 "layout: config.json with the sub-model's num_hidden_layers, per-layer intermediate_size, layer_types,\n"
                 "activation_sparsity_pattern and num_kv_shared_layers; the kept layers' tensors (MLPs cut to their\n"
                 "first units), the per-layer embedding slices and projection rows of the kept layers, everything else\n"
                 "as stored; model.safetensors.index.json; the tokenizer and processor files. Streams from the source.\n",
        .footer = footer,
        .help_column = 21,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc < 0 && (!!args->model_dir + !!args->synth != 1 || !args->spec || !args->out))
        return g3n_options_usage_error(&spec, "give one of --model/--synth, --submodel and --out");
    return rc;
}

/* Loads the source and writes the slice: the exit code. */
static int run_slice(const slice_args *args)
{
    const char *model_dir = args->model_dir, *synth = args->synth, *out = args->out;
    char config_path[4096];
    uint64_t seed = 0;
    g3n_error err = {{0}};
    if (synth) {
        if (g3n_parse_synth_spec(synth, config_path, sizeof(config_path), &seed, &err) != G3N_OK) {
            fprintf(stderr, "g3n slice: error: %s\n", err.message);
            return 2;
        }
    } else {
        snprintf(config_path, sizeof(config_path), "%s", model_dir);
    }
    g3n_model_config config;
    g3n_submodel submodel;
    memset(&submodel, 0, sizeof(submodel));
    g3n_weights *weights = NULL;
    int rc = 1;
    if (g3n_config_load(&config, config_path, &err) != G3N_OK) {
        fprintf(stderr, "g3n slice: error: %s\n", err.message);
        return 1;
    }
    if (g3n_submodel_parse(&submodel, args->spec, &config.text, &err) != G3N_OK) {
        fprintf(stderr, "g3n slice: error: %s\n", err.message);
        rc = 2;
        goto done;
    }
    if ((synth ? g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err)
               : g3n_weights_open_checkpoint(&weights, model_dir, &err)) != G3N_OK)
        goto fail;
    double start = g3n_now_seconds();
    g3n_slice_stats stats;
    if (g3n_slice_checkpoint(weights, &config, &submodel, model_dir, out, args->shard_size, &stats, &err) != G3N_OK)
        goto fail;
    char line[512];
    g3n_submodel_describe(&submodel, &config.text, line, sizeof(line));
    fprintf(stderr, "g3n slice: %s\ng3n slice: wrote %d tensors (%.2f GB) in %d shard(s) to %s in %.1f s\n", line,
            stats.tensors, (double)stats.bytes / 1e9, stats.shards, out, g3n_now_seconds() - start);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "g3n slice: error: %s\n", err.message);
done:
    g3n_weights_close(weights);
    g3n_submodel_free(&submodel);
    g3n_config_free(&config);
    return rc;
}

int g3n_command_slice(int argc, char **argv)
{
    slice_args args = {0};
    int rc = parse_args(&args, argc, argv);
    return rc >= 0 ? rc : run_slice(&args);
}
