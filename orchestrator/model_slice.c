#include "model_slice.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json_util.h"
#include "model_tensors.h"
#include "safetensors.h"

#define PREFIX "model.language_model."

typedef enum slice_op { SLICE_COPY, SLICE_ROWS, SLICE_COLUMNS, SLICE_PER_LAYER_TABLE, SLICE_PER_LAYER_ROWS } slice_op;

typedef struct slice_item {
    const g3n_tensor_spec *out; /* name and shape written */
    char source_name[256];
    g3n_tensor source;          /* borrowed from the weights */
    slice_op op;
    int64_t k;                  /* SLICE_ROWS: rows kept; SLICE_COLUMNS: columns kept */
    uint64_t bytes;
} slice_item;

/* The source tensor's name and how to cut it, for a tensor of the sliced model. */
static void plan_item(slice_item *item, const g3n_submodel *s)
{
    const char *name = item->out->name;
    item->op = SLICE_COPY;
    snprintf(item->source_name, sizeof(item->source_name), "%s", name);
    int j = -1, consumed = 0;
    if (strncmp(name, PREFIX "layers.", strlen(PREFIX "layers.")) == 0 &&
        sscanf(name + strlen(PREFIX "layers."), "%d.%n", &j, &consumed) == 1 && consumed > 0 && j >= 0 &&
        j < s->num_layers) {
        const char *tail = name + strlen(PREFIX "layers.") + consumed;
        snprintf(item->source_name, sizeof(item->source_name), PREFIX "layers.%d.%s", s->layers[j], tail);
        if (strcmp(tail, "mlp.gate_proj.weight") == 0 || strcmp(tail, "mlp.up_proj.weight") == 0) {
            item->op = SLICE_ROWS;
            item->k = s->intermediate_size[j];
        } else if (strcmp(tail, "mlp.down_proj.weight") == 0) {
            item->op = SLICE_COLUMNS;
            item->k = s->intermediate_size[j];
        }
    } else if (strcmp(name, PREFIX "embed_tokens_per_layer.weight") == 0) {
        item->op = SLICE_PER_LAYER_TABLE;
    } else if (strcmp(name, PREFIX "per_layer_model_projection.weight") == 0) {
        item->op = SLICE_PER_LAYER_ROWS;
    }
}

static int write_item(g3n_safetensors_writer *w, const slice_item *item, const g3n_submodel *s, int64_t P,
                      g3n_error *err)
{
    const g3n_tensor *t = &item->source;
    const size_t element = g3n_dtype_size(t->dtype);
    const int64_t rows = t->ndim >= 1 ? t->shape[0] : 1;
    const int64_t row_elements = rows > 0 ? g3n_tensor_numel(t) / rows : 0;
    const char *base = t->data;
    const size_t row_bytes = (size_t)row_elements * element;
    switch (item->op) {
    case SLICE_COPY:
        return g3n_safetensors_writer_write(w, base, (size_t)g3n_tensor_numel(t) * element, err);
    case SLICE_ROWS:
        return g3n_safetensors_writer_write(w, base, (size_t)item->k * row_bytes, err);
    case SLICE_COLUMNS:
        for (int64_t r = 0; r < rows; r++)
            if (g3n_safetensors_writer_write(w, base + (size_t)r * row_bytes, (size_t)item->k * element, err) !=
                G3N_OK)
                return G3N_ERR;
        return G3N_OK;
    case SLICE_PER_LAYER_TABLE:
        for (int64_t r = 0; r < rows; r++)
            for (int i = 0; i < s->num_layers; i++)
                if (g3n_safetensors_writer_write(w, base + (size_t)r * row_bytes + (size_t)(s->layers[i] * P) * element,
                                                 (size_t)P * element, err) != G3N_OK)
                    return G3N_ERR;
        return G3N_OK;
    case SLICE_PER_LAYER_ROWS:
        for (int i = 0; i < s->num_layers; i++)
            if (g3n_safetensors_writer_write(w, base + (size_t)(s->layers[i] * P) * row_bytes, (size_t)P * row_bytes,
                                             err) != G3N_OK)
                return G3N_ERR;
        return G3N_OK;
    }
    return g3n_error_set(err, "internal: unknown slice op");
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

static int write_json(const char *path, const cJSON *json, g3n_error *err)
{
    char *text = cJSON_Print(json);
    FILE *f = fopen(path, "wb");
    int ok = text && f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = 0;
    free(text);
    return ok ? G3N_OK : g3n_error_set(err, "%s: cannot write: %s", path, strerror(errno));
}

/* The files a checkpoint folder carries beside its weights. */
static const char *const side_files[] = {"tokenizer.json",         "tokenizer_config.json", "tokenizer.model",
                                         "special_tokens_map.json", "generation_config.json",
                                         "preprocessor_config.json", "processor_config.json", "chat_template.jinja",
                                         "chat_template.json"};

int g3n_slice_checkpoint(g3n_weights *weights, const g3n_model_config *config, const g3n_submodel *submodel,
                         const char *source_dir, const char *out_dir, uint64_t shard_size, g3n_slice_stats *stats,
                         g3n_error *err)
{
    if (stats)
        memset(stats, 0, sizeof(*stats));
    if (shard_size == 0)
        return g3n_error_set(err, "slice: shard size 0");
    cJSON *sliced_root = g3n_submodel_config_json(submodel, &config->text, config->root);
    if (!sliced_root)
        return g3n_error_set(err, "slice: out of memory");
    g3n_model_config sliced;
    char *text = cJSON_PrintUnformatted(sliced_root);
    int status = G3N_ERR;
    g3n_tensor_list list = {0};
    slice_item *items = NULL;
    cJSON *index = NULL;
    memset(&sliced, 0, sizeof(sliced));
    if (!text) {
        g3n_error_set(err, "slice: out of memory");
        goto done_early;
    }
    if (g3n_config_parse(&sliced, text, err) != G3N_OK) {
        g3n_error_prefix(err, "slice: the sliced config");
        goto done_early;
    }
    if (g3n_model_list_tensors(&sliced, &list, err) != G3N_OK)
        goto done;
    items = calloc((size_t)list.count + 1, sizeof(*items));
    if (!items) {
        g3n_error_set(err, "slice: out of memory");
        goto done;
    }
    const int64_t P = config->text.hidden_size_per_layer_input;
    int count = 0;
    uint64_t total = 0;
    g3n_tensor_list full_list = {0};
    if (g3n_model_list_tensors(config, &full_list, err) != G3N_OK)
        goto done;
    for (int i = 0; i < list.count; i++) {
        slice_item *item = &items[count];
        item->out = &list.items[i];
        plan_item(item, submodel);
        const g3n_tensor_spec *source = g3n_tensor_list_find(&full_list, item->source_name);
        if (!source) {
            g3n_error_set(err, "slice: no source tensor %s for %s", item->source_name, item->out->name);
            g3n_tensor_list_free(&full_list);
            goto done;
        }
        if (!g3n_weights_has(weights, item->source_name))
            continue; /* not in this checkpoint (e.g. unused k/v of KV-shared layers) */
        if (g3n_weights_get(weights, item->source_name, source->ndim, source->shape, &item->source, err) != G3N_OK) {
            g3n_tensor_list_free(&full_list);
            goto done;
        }
        item->bytes = (uint64_t)g3n_shape_numel(item->out->ndim, item->out->shape) * g3n_dtype_size(item->source.dtype);
        total += item->bytes;
        count++;
    }
    g3n_tensor_list_free(&full_list);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        g3n_error_set(err, "%s: %s", out_dir, strerror(errno));
        goto done;
    }
    int shards = 1;
    uint64_t in_shard = 0;
    int *shard_of = malloc(sizeof(int) * (size_t)(count + 1));
    if (!shard_of) {
        g3n_error_set(err, "slice: out of memory");
        goto done;
    }
    for (int i = 0; i < count; i++) {
        if (in_shard > 0 && in_shard + items[i].bytes > shard_size) {
            shards++;
            in_shard = 0;
        }
        shard_of[i] = shards;
        in_shard += items[i].bytes;
    }
    index = cJSON_CreateObject();
    cJSON *metadata = index ? cJSON_AddObjectToObject(index, "metadata") : NULL;
    cJSON *weight_map = index ? cJSON_AddObjectToObject(index, "weight_map") : NULL;
    if (!metadata || !weight_map) {
        free(shard_of);
        g3n_error_set(err, "slice: out of memory");
        goto done;
    }
    cJSON_AddNumberToObject(metadata, "total_size", (double)total);
    for (int shard = 1, first = 0; shard <= shards; shard++) {
        int last = first;
        while (last < count && shard_of[last] == shard)
            last++;
        char name[64], path[4200];
        snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", shard, shards);
        snprintf(path, sizeof(path), "%s/%s", out_dir, name);
        g3n_safetensors_writer *w;
        if (g3n_safetensors_writer_open(&w, path, err) != G3N_OK) {
            free(shard_of);
            goto done;
        }
        int ok = 1;
        for (int i = first; ok && i < last; i++)
            ok = g3n_safetensors_writer_declare(w, items[i].out->name, items[i].source.dtype, items[i].out->ndim,
                                                items[i].out->shape, err) == G3N_OK;
        for (int i = first; ok && i < last; i++)
            ok = write_item(w, &items[i], submodel, P, err) == G3N_OK;
        if (!ok) {
            g3n_safetensors_writer_finish(w, NULL);
            free(shard_of);
            g3n_error_prefix(err, "slice: %s", path);
            goto done;
        }
        if (g3n_safetensors_writer_finish(w, err) != G3N_OK) {
            free(shard_of);
            goto done;
        }
        for (int i = first; i < last; i++)
            cJSON_AddStringToObject(weight_map, items[i].out->name, name);
        first = last;
    }
    free(shard_of);
    char path[4200];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", out_dir);
    if (write_json(path, index, err) != G3N_OK)
        goto done;
    snprintf(path, sizeof(path), "%s/config.json", out_dir);
    if (write_json(path, sliced_root, err) != G3N_OK)
        goto done;
    for (size_t i = 0; source_dir && i < sizeof(side_files) / sizeof(side_files[0]); i++) {
        char from[4200];
        struct stat st;
        snprintf(from, sizeof(from), "%s/%s", source_dir, side_files[i]);
        snprintf(path, sizeof(path), "%s/%s", out_dir, side_files[i]);
        if (stat(from, &st) == 0 && S_ISREG(st.st_mode) && copy_file(from, path, err) != G3N_OK)
            goto done;
    }
    if (stats) {
        stats->tensors = count;
        stats->shards = shards;
        stats->bytes = total;
    }
    status = G3N_OK;
done:
    g3n_config_free(&sliced);
done_early:
    cJSON_Delete(index);
    free(items);
    g3n_tensor_list_free(&list);
    free(text);
    cJSON_Delete(sliced_root);
    return status;
}
