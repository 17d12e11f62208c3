/* g3n slice: write a MatFormer sub-model as a checkpoint folder of its own
 * (orchestrator/model_slice.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "model_slice.h"
#include "ops.h"
#include "submodel.h"
#include "weights.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: g3n slice (--model DIR | --synth CONFIG:SEED) --submodel SPEC --out DIR [--shard-size BYTES]\n"
            "\n"
            "Writes the MatFormer sub-model SPEC of a checkpoint as a new checkpoint folder in the Hugging Face\n"
            "layout: config.json with the sub-model's num_hidden_layers, per-layer intermediate_size, layer_types,\n"
            "activation_sparsity_pattern and num_kv_shared_layers; the kept layers' tensors (MLPs cut to their\n"
            "first units), the per-layer embedding slices and projection rows of the kept layers, everything else\n"
            "as stored; model.safetensors.index.json; the tokenizer and processor files. Streams from the source.\n"
            "\n"
            "  --model DIR        the full checkpoint folder\n"
            "  --synth CONFIG:SEED  synthetic bf16 weights for a config.json instead (tests)\n"
            "  --submodel SPEC    a preset, a JSON object {\"name\", \"layers_to_skip\", \"intermediate_size\"},\n"
            "                     or @FILE.json; presets:\n%s"
            "  --out DIR          the folder to write (created if missing)\n"
            "  --shard-size B     maximum bytes per shard (default 2000000000)\n",
            g3n_submodel_presets());
}

int g3n_command_slice(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model_dir = NULL, *synth = NULL, *spec = NULL, *out = NULL;
    uint64_t shard_size = 2000000000ull;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--model") == 0 && value)
            model_dir = argv[++i];
        else if (strcmp(argv[i], "--synth") == 0 && value)
            synth = argv[++i];
        else if (strcmp(argv[i], "--submodel") == 0 && value)
            spec = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && value)
            out = argv[++i];
        else if (strcmp(argv[i], "--shard-size") == 0 && value) {
            char *end;
            shard_size = strtoull(argv[++i], &end, 10);
            if (*end || shard_size == 0) {
                fprintf(stderr, "g3n slice: error: --shard-size must be a positive number of bytes\n");
                return 2;
            }
        } else {
            fprintf(stderr, "g3n slice: error: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!!model_dir + !!synth != 1 || !spec || !out) {
        fprintf(stderr, "g3n slice: error: give one of --model/--synth, --submodel and --out\n");
        usage(stderr);
        return 2;
    }
    char config_path[4096];
    uint64_t seed = 0;
    if (synth) {
        const char *colon = strrchr(synth, ':');
        char *end = NULL;
        if (colon)
            seed = strtoull(colon + 1, &end, 10);
        if (!colon || colon == synth || !end || *end || end == colon + 1) {
            fprintf(stderr, "g3n slice: error: --synth must be CONFIG:SEED\n");
            return 2;
        }
        snprintf(config_path, sizeof(config_path), "%.*s", (int)(colon - synth), synth);
    } else {
        snprintf(config_path, sizeof(config_path), "%s", model_dir);
    }
    g3n_error err = {{0}};
    g3n_model_config config;
    g3n_submodel submodel;
    memset(&submodel, 0, sizeof(submodel));
    g3n_weights *weights = NULL;
    int rc = 1;
    if (g3n_config_load(&config, config_path, &err) != G3N_OK) {
        fprintf(stderr, "g3n slice: error: %s\n", err.message);
        return 1;
    }
    if (g3n_submodel_parse(&submodel, spec, &config.text, &err) != G3N_OK) {
        fprintf(stderr, "g3n slice: error: %s\n", err.message);
        rc = 2;
        goto done;
    }
    if ((synth ? g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err)
               : g3n_weights_open_checkpoint(&weights, model_dir, &err)) != G3N_OK)
        goto fail;
    double start = g3n_now_seconds();
    g3n_slice_stats stats;
    if (g3n_slice_checkpoint(weights, &config, &submodel, model_dir, out, shard_size, &stats, &err) != G3N_OK)
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
