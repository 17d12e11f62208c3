/* text_weights.c - g3n_text_model_select_weights: the fast weight formats
 * (issue 8) for a loaded text model; see text_model.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text_model.h"

#define PREFIX "model.language_model."

typedef struct request_list {
    g3n_quant_request *items;
    g3n_matrix **targets; /* where each result goes */
    char (*names)[128];
    int count, capacity;
} request_list;

static void add(request_list *list, g3n_matrix *target, g3n_dtype dtype, int transpose, g3n_matrix *result,
                const char *format, int index)
{
    if (list->count >= list->capacity || !target->data)
        return;
    const int64_t width = transpose ? target->rows : target->cols;
    const int quant = dtype == G3N_DTYPE_Q8 || dtype == G3N_DTYPE_Q4;
    if (quant && (!g3n_quant_supported(dtype, width) || target->rows < 16))
        return; /* stays as stored */
    g3n_quant_request *r = &list->items[list->count];
    snprintf(list->names[list->count], sizeof(list->names[0]), format, index);
    r->name = list->names[list->count];
    r->source = *target;
    r->dtype = dtype;
    r->transpose = transpose;
    list->targets[list->count] = result;
    list->count++;
}

static uint64_t hash_text(const char *text)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 0x100000001B3ull;
    return h;
}

void g3n_text_model_set_bf16_products(g3n_text_model *m, int enabled)
{
    for (int l = 0; l < m->num_layers; l++) {
        g3n_text_layer *ly = &m->layers[l];
        g3n_matrix *each[] = {&ly->q_proj,    &ly->k_proj,      &ly->v_proj,       &ly->o_proj,
                              &ly->gate_proj, &ly->up_proj,     &ly->down_proj,    &ly->laurel_left,
                              &ly->laurel_right, &ly->per_layer_input_gate, &ly->per_layer_projection};
        for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++)
            each[i]->bf16_products = enabled;
    }
    for (int i = 0; i < m->altup_inputs - 1; i++) {
        m->altup_projections[i].bf16_products = enabled;
        m->altup_unembed_projections[i].bf16_products = enabled;
    }
    m->lm_head.bf16_products = enabled;
}

/* Building the cache takes a while on a full-size model (E2B q4: ~17 s): a
 * line on stderr when it starts and one per 10 % (on a terminal, one line
 * rewritten in place). */
typedef struct build_report {
    const char *format, *file;
    int last_step; /* tenths reported so far */
} build_report;

static void report_building(void *user, double fraction, double seconds)
{
    build_report *r = user;
    const int step = (int)(fraction * 10.0 + 1e-9);
    if (step <= r->last_step)
        return;
    const int tty = isatty(STDERR_FILENO);
    if (r->last_step < 0)
        fprintf(stderr, "g3n: quantising the text weights to %s, once (cached in %s)\n", r->format,
                r->file ? r->file : "memory only: the folder is not writable");
    r->last_step = step;
    if (step == 0)
        return;
    fprintf(stderr, "%sg3n: %s weight cache %3d %% (%.1f s)%s", tty ? "\r" : "", r->format, step * 10, seconds,
            tty && step < 10 ? "" : "\n");
    fflush(stderr);
}

int g3n_text_model_select_weights(g3n_text_model *m, g3n_weight_format format, const char *cache_file,
                                  g3n_quant_cache_info *info, g3n_error *err)
{
    if (info)
        memset(info, 0, sizeof(*info));
    if (m->parent)
        return g3n_error_set(err, "sub-model '%s': select the weights on the full model, then derive the sub-model",
                             m->submodel_name);
    if (m->weight_cache)
        return g3n_error_set(err, "text model: weights already selected (%s)", g3n_weight_format_name(m->weight_format));
    if (format == G3N_WEIGHTS_EXACT) {
        m->weight_format = format;
        return G3N_OK;
    }
    const int qdtype = g3n_weight_format_dtype(format);
    const g3n_dtype q = qdtype >= 0 ? (g3n_dtype)qdtype : G3N_DTYPE_F32;
    const int quantise = qdtype >= 0;
    g3n_matrix unused_source, unused_result; /* a layers-only model's per-layer projection (below) */
    memset(&unused_source, 0, sizeof(unused_source));
    request_list list = {0};
    list.capacity = 32 * m->num_layers + 64;
    list.items = calloc((size_t)list.capacity, sizeof(*list.items));
    list.targets = calloc((size_t)list.capacity, sizeof(*list.targets));
    list.names = calloc((size_t)list.capacity, sizeof(*list.names));
    if (!list.items || !list.targets || !list.names) {
        free(list.items);
        free(list.targets);
        free(list.names);
        return g3n_error_set(err, "text model: out of memory");
    }
    for (int l = 0; l < m->num_layers; l++) {
        g3n_text_layer *ly = &m->layers[l];
        if (quantise) {
            add(&list, &ly->q_proj, q, 0, &ly->q_proj, PREFIX "layers.%d.self_attn.q_proj.weight", l);
            add(&list, &ly->k_proj, q, 0, &ly->k_proj, PREFIX "layers.%d.self_attn.k_proj.weight", l);
            add(&list, &ly->v_proj, q, 0, &ly->v_proj, PREFIX "layers.%d.self_attn.v_proj.weight", l);
            add(&list, &ly->o_proj, q, 0, &ly->o_proj, PREFIX "layers.%d.self_attn.o_proj.weight", l);
            add(&list, &ly->gate_proj, q, 0, &ly->gate_proj, PREFIX "layers.%d.mlp.gate_proj.weight", l);
            add(&list, &ly->up_proj, q, 0, &ly->up_proj, PREFIX "layers.%d.mlp.up_proj.weight", l);
            add(&list, &ly->laurel_left, q, 0, &ly->laurel_left, PREFIX "layers.%d.laurel.linear_left.weight", l);
            add(&list, &ly->laurel_right, q, 0, &ly->laurel_right, PREFIX "layers.%d.laurel.linear_right.weight", l);
            add(&list, &ly->per_layer_input_gate, q, 0, &ly->per_layer_input_gate,
                PREFIX "layers.%d.per_layer_input_gate.weight", l);
            add(&list, &ly->per_layer_projection, q, 0, &ly->per_layer_projection,
                PREFIX "layers.%d.per_layer_projection.weight", l);
        }
        /* the sparse MLP's transposed down_proj (before down_proj itself is replaced) */
        if (ly->sparse)
            add(&list, &ly->down_proj, quantise ? q : ly->down_proj.dtype, 1, &ly->down_proj_t,
                PREFIX "layers.%d.mlp.down_proj.weight.T", l);
        if (quantise)
            add(&list, &ly->down_proj, q, 0, &ly->down_proj, PREFIX "layers.%d.mlp.down_proj.weight", l);
    }
    if (quantise) {
        for (int i = 0; i < m->altup_inputs - 1; i++) {
            add(&list, &m->altup_projections[i], q, 0, &m->altup_projections[i], PREFIX "altup_projections.%d.weight",
                i);
            add(&list, &m->altup_unembed_projections[i], q, 0, &m->altup_unembed_projections[i],
                PREFIX "altup_unembed_projections.%d.weight", i);
        }
        if (m->has_per_layer_tables) {
            add(&list, &m->embedder.per_layer_model_projection, q, 0, &m->embedder.per_layer_model_projection,
                PREFIX "per_layer_model_projection.weight", 0);
        } else {
            /* a layers-only model (the decoder role) never uses this matrix, but asks for it all the same: the
             * cache maps only on an exact match of its entries, so the decoder daemon and g3n generate then share
             * one file instead of rebuilding and overwriting each other's. Mapped, never read. */
            g3n_tensor t;
            g3n_error ignored;
            const int64_t LP = (int64_t)m->num_layers * m->per_layer_dim;
            int64_t shape[2] = {LP, m->hidden_size};
            if (g3n_weights_get(m->weights, PREFIX "per_layer_model_projection.weight", 2, shape, &t, &ignored) ==
                    G3N_OK &&
                g3n_matrix_from_tensor(&unused_source, &t, &ignored) == G3N_OK)
                add(&list, &unused_source, q, 0, &unused_result, PREFIX "per_layer_model_projection.weight", 0);
        }
        add(&list, &m->lm_head, q, 0, &m->lm_head, "lm_head.weight (tied embed_tokens)", 0);
    }

    /* where the cache lives */
    char path[4096], key[8192];
    const char *file = cache_file;
    const g3n_checkpoint *checkpoint = g3n_weights_checkpoint(m->weights);
    const char *described = g3n_weights_describe(m->weights);
    const char *folder = NULL;
    if (checkpoint && strncmp(described, "checkpoint ", 11) == 0)
        folder = described + 11;
    if (folder) {
        if (g3n_quant_checkpoint_key(folder, key, sizeof(key), err) != G3N_OK)
            goto fail;
    } else {
        snprintf(key, sizeof(key), "%s", described);
    }
    if (!file) {
        const char *dir = getenv("G3N_CACHE_DIR");
        if (dir && *dir) {
            mkdir(dir, 0755);
            snprintf(path, sizeof(path), "%s/text-%s-%016llx.g3nq", dir, g3n_weight_format_name(format),
                     (unsigned long long)hash_text(folder ? folder : key));
            file = path;
        } else if (folder) {
            char sub[4096];
            snprintf(sub, sizeof(sub), "%s/g3n-cache", folder);
            if (mkdir(sub, 0755) == 0 || errno == EEXIST) {
                snprintf(path, sizeof(path), "%s/text-%s.g3nq", sub, g3n_weight_format_name(format));
                file = path;
            }
        }
    }
    /* a checkpoint's shards are read-only file mappings: what building reads of
     * them need not stay resident (RSS after building the E2B q4 cache 5.9 GiB
     * with them, 1.4 GiB when the cache is mapped) */
    for (int i = 0; i < list.count; i++)
        list.items[i].release_source = checkpoint != NULL;
    build_report report = {g3n_weight_format_name(format), file, -1};
    if (g3n_quant_cache_open_reporting(&m->weight_cache, file, key, list.items, list.count, info, report_building,
                                       &report, err) != G3N_OK)
        goto fail;
    for (int i = 0; i < list.count; i++)
        *list.targets[i] = list.items[i].result;
    if (format == G3N_WEIGHTS_BF16)
        g3n_text_model_set_bf16_products(m, 1); /* budget: tests/unit/test_quant_text.c */
    m->weight_format = format;
    free(list.items);
    free(list.targets);
    free(list.names);
    return G3N_OK;
fail:
    free(list.items);
    free(list.targets);
    free(list.names);
    return g3n_error_prefix(err, "text model: --weights %s", g3n_weight_format_name(format));
}
