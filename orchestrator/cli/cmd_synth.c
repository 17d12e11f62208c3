/* g3n synth: write a synthetic checkpoint folder in the Hugging Face layout
 * (config.json, model-0000i-of-0000N.safetensors shards, model.safetensors.index.json)
 * for every tensor the config implies. Streams tensor by tensor: memory stays
 * flat whatever the model size. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "config.h"
#include "json_util.h"
#include "model_tensors.h"
#include "ops.h"
#include "options.h"
#include "safetensors.h"
#include "synth.h"

#define CHUNK_ELEMENTS (1 << 20)

static int write_shard(const char *path, const g3n_tensor_list *list, int first, int last, uint64_t seed,
                       g3n_dtype dtype, void *chunk, g3n_error *err)
{
    g3n_safetensors_writer *w;
    if (g3n_safetensors_writer_open(&w, path, err) != G3N_OK)
        return G3N_ERR;
    for (int i = first; i < last; i++) {
        const g3n_tensor_spec *s = &list->items[i];
        if (g3n_safetensors_writer_declare(w, s->name, dtype, s->ndim, s->shape, err) != G3N_OK) {
            g3n_safetensors_writer_finish(w, NULL);
            return G3N_ERR;
        }
    }
    size_t element = g3n_dtype_size(dtype);
    for (int i = first; i < last; i++) {
        const g3n_tensor_spec *s = &list->items[i];
        int64_t n = g3n_shape_numel(s->ndim, s->shape);
        for (int64_t offset = 0; offset < n; offset += CHUNK_ELEMENTS) {
            int64_t count = n - offset < CHUNK_ELEMENTS ? n - offset : CHUNK_ELEMENTS;
            if (dtype == G3N_DTYPE_BF16)
                g3n_synth_fill_bf16(s->name, s->ndim, s->shape, seed, offset, count, chunk);
            else
                g3n_synth_fill_f32(s->name, s->ndim, s->shape, seed, offset, count, chunk);
            if (g3n_safetensors_writer_write(w, chunk, (size_t)count * element, err) != G3N_OK) {
                g3n_safetensors_writer_finish(w, NULL);
                return G3N_ERR;
            }
        }
    }
    return g3n_safetensors_writer_finish(w, err);
}

static int copy_file(const char *from, const char *to, g3n_error *err)
{
    char *data;
    size_t size;
    if (g3n_read_file(from, &data, &size, err) != G3N_OK)
        return G3N_ERR;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(data, 1, size, f) == size;
    if (f && fclose(f) != 0)
        ok = 0;
    free(data);
    return ok ? G3N_OK : g3n_error_set(err, "%s: cannot write: %s", to, strerror(errno));
}

static int run_synth(const char *config_path, uint64_t seed, const char *out_dir, g3n_dtype dtype,
                     uint64_t shard_size, g3n_error *err)
{
    g3n_model_config config;
    if (g3n_config_load(&config, config_path, err) != G3N_OK)
        return G3N_ERR;
    g3n_tensor_list list = {0};
    int *shard_of = NULL;
    void *chunk = NULL;
    cJSON *index = NULL;
    int status = G3N_ERR;
    if (g3n_model_list_tensors(&config, &list, err) != G3N_OK)
        goto done;
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        g3n_error_set(err, "%s: %s", out_dir, strerror(errno));
        goto done;
    }
    /* assign tensors to shards in order */
    shard_of = calloc((size_t)list.count + 1, sizeof(int));
    chunk = malloc((size_t)CHUNK_ELEMENTS * 4);
    if (!shard_of || !chunk) {
        g3n_error_set(err, "out of memory");
        goto done;
    }
    int shards = 1;
    uint64_t in_shard = 0, total = 0;
    size_t element = g3n_dtype_size(dtype);
    for (int i = 0; i < list.count; i++) {
        uint64_t bytes = (uint64_t)g3n_shape_numel(list.items[i].ndim, list.items[i].shape) * element;
        if (in_shard > 0 && in_shard + bytes > shard_size) {
            shards++;
            in_shard = 0;
        }
        shard_of[i] = shards;
        in_shard += bytes;
        total += bytes;
    }
    index = cJSON_CreateObject();
    cJSON *metadata = cJSON_AddObjectToObject(index, "metadata");
    cJSON_AddNumberToObject(metadata, "total_size", (double)total);
    cJSON *weight_map = cJSON_AddObjectToObject(index, "weight_map");
    double start = g3n_now_seconds();
    uint64_t written = 0;
    for (int shard = 1, first = 0; shard <= shards; shard++) {
        int last = first;
        uint64_t shard_bytes = 0;
        while (last < list.count && shard_of[last] == shard) {
            shard_bytes += (uint64_t)g3n_shape_numel(list.items[last].ndim, list.items[last].shape) * element;
            last++;
        }
        char name[64], path[4200];
        snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", shard, shards);
        snprintf(path, sizeof(path), "%s/%s", out_dir, name);
        if (write_shard(path, &list, first, last, seed, dtype, chunk, err) != G3N_OK)
            goto done;
        for (int i = first; i < last; i++)
            cJSON_AddStringToObject(weight_map, list.items[i].name, name);
        written += shard_bytes;
        fprintf(stderr, "g3n synth: %s: %d tensors, %.1f MB (%.0f%% of %.2f GB, %.1f s)\n", name, last - first,
                (double)shard_bytes / 1e6, 100.0 * (double)written / (double)(total ? total : 1), (double)total / 1e9,
                g3n_now_seconds() - start);
        first = last;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", out_dir);
    char *text = cJSON_Print(index);
    FILE *f = fopen(path, "wb");
    int ok = text && f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0)
        ok = 0;
    free(text);
    if (!ok) {
        g3n_error_set(err, "%s: cannot write", path);
        goto done;
    }
    snprintf(path, sizeof(path), "%s/config.json", out_dir);
    if (copy_file(config.path, path, err) != G3N_OK)
        goto done;
    fprintf(stderr, "g3n synth: wrote %d tensors (%.2f GB) in %d shard(s) to %s; peak RSS %.0f MB\n", list.count,
            (double)total / 1e9, shards, out_dir, (double)g3n_peak_rss_bytes() / 1e6);
    status = G3N_OK;
done:
    cJSON_Delete(index);
    free(chunk);
    free(shard_of);
    g3n_tensor_list_free(&list);
    g3n_config_free(&config);
    return status;
}

static const char *const dtype_names[] = {"bf16", "f32", NULL};

typedef struct synth_args {
    const char *config, *out;
    uint64_t seed, shard_size;
    int dtype; /* index into dtype_names */
} synth_args;

/* -1 to go on, else the exit code. */
static int parse_args(synth_args *args, int argc, char **argv)
{
    args->shard_size = 2000000000ull;
    g3n_option options[] = {
        G3N_STRING("config", &args->config, "CONFIG.json", "the model's config.json"),
        G3N_UINT64("seed", &args->seed, 0, 0, "N", "the seed of synth(name, shape, seed)"),
        G3N_STRING("out", &args->out, "DIR", "the folder to write (created if missing)"),
        G3N_ENUM("dtype", &args->dtype, dtype_names, "stored dtype (default bf16; the values are exact in bf16)"),
        G3N_UINT64("shard-size", &args->shard_size, 1, LLONG_MAX, "BYTES",
                   "maximum bytes per shard (default 2000000000)"),
    };
    for (int i = 0; i < 3; i++)
        options[i].required = 1;
    const g3n_command_spec spec = {
        .name = "g3n synth",
        .usage = "g3n synth --config CONFIG.json --seed N --out DIR [--dtype bf16|f32] [--shard-size BYTES]",
        .about = "Writes a checkpoint folder in the Hugging Face layout (config.json, sharded safetensors and\n"
                 "model.safetensors.index.json) holding synth(name, shape, seed) for every tensor the config implies\n"
                 "(text model, multimodal embedders, audio and vision towers). Streams tensor by tensor.\n",
        .help_column = 28,
    };
    return g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
}

int g3n_command_synth(int argc, char **argv)
{
    synth_args args = {0};
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    g3n_dtype dtype = args.dtype == 1 ? G3N_DTYPE_F32 : G3N_DTYPE_BF16;
    g3n_error err = {{0}};
    if (run_synth(args.config, args.seed, args.out, dtype, args.shard_size, &err) != G3N_OK) {
        fprintf(stderr, "g3n synth: error: %s\n", err.message);
        return 1;
    }
    return 0;
}
