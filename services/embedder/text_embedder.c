/* text_embedder.c - Gemma3nTextModel's embedding step (modeling_gemma3n.py:
 * Gemma3nTextScaledWordEmbedding, get_per_layer_inputs, project_per_layer_inputs). */
#include "text_embedder.h"

#include <math.h>
#include <string.h>

#include "ops.h"

#define PREFIX "model.language_model."

static int get_matrix(g3n_weights *weights, const char *name, int64_t rows, int64_t cols, g3n_matrix *out,
                      g3n_error *err)
{
    g3n_tensor t;
    int64_t shape[2] = {rows, cols};
    if (g3n_weights_get(weights, name, 2, shape, &t, err) != G3N_OK)
        return G3N_ERR;
    return g3n_matrix_from_tensor(out, &t, err);
}

static int load_tables(g3n_text_embedder *e, g3n_weights *weights, const g3n_text_config *config,
                       int with_per_layer_tables, g3n_error *err)
{
    memset(e, 0, sizeof(*e));
    e->vocab_size = config->vocab_size;
    e->vocab_size_per_layer_input = config->vocab_size_per_layer_input;
    e->hidden_size = config->hidden_size;
    e->per_layer_dim = config->hidden_size_per_layer_input;
    e->num_layers = config->num_hidden_layers;
    e->eps = config->rms_norm_eps;
    /* The scales are f32 tensors in the reference (nn.Buffer of a python float). */
    e->embed_scale = (float)sqrt((double)e->hidden_size);
    e->per_layer_embed_scale = (float)sqrt((double)e->per_layer_dim);
    e->per_layer_projection_scale = (float)pow((double)e->hidden_size, -0.5);
    e->per_layer_input_scale = (float)(1.0 / sqrt(2.0));

    const int64_t D = e->hidden_size, P = e->per_layer_dim, LP = (int64_t)e->num_layers * P;
    if (D <= 0 || P <= 0 || e->num_layers <= 0 || e->vocab_size <= 0 || e->vocab_size_per_layer_input <= 0)
        return g3n_error_set(err, "text embedder: config has a non-positive size (hidden %lld, per-layer %lld)",
                             (long long)D, (long long)P);

    if (get_matrix(weights, PREFIX "embed_tokens.weight", e->vocab_size, D, &e->embed_tokens, err) != G3N_OK)
        return G3N_ERR;
    if (!with_per_layer_tables)
        return G3N_OK;
    e->checkpoint = g3n_weights_checkpoint(weights);

    /* MatFormer slices may keep a wider per-layer table than L*P: use the first L slices. */
    int64_t ple_cols = LP;
    const g3n_checkpoint *checkpoint = g3n_weights_checkpoint(weights);
    if (checkpoint) {
        const g3n_safetensors_entry *entry = g3n_checkpoint_find(checkpoint, PREFIX "embed_tokens_per_layer.weight");
        if (entry && entry->ndim == 2 && entry->shape[1] > LP && entry->shape[1] % P == 0)
            ple_cols = entry->shape[1];
    }
    if (get_matrix(weights, PREFIX "embed_tokens_per_layer.weight", e->vocab_size_per_layer_input, ple_cols,
                   &e->embed_tokens_per_layer, err) != G3N_OK)
        return G3N_ERR;
    e->embed_tokens_per_layer.cols = LP; /* row_stride keeps the stored width */

    if (get_matrix(weights, PREFIX "per_layer_model_projection.weight", LP, D, &e->per_layer_model_projection, err) !=
        G3N_OK)
        return G3N_ERR;
    int64_t norm_shape[1] = {P};
    if (g3n_weights_get_f32(weights, PREFIX "per_layer_projection_norm.weight", 1, norm_shape,
                            &e->per_layer_projection_norm, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

int g3n_text_embedder_load(g3n_text_embedder *e, g3n_weights *weights, const g3n_text_config *config, g3n_error *err)
{
    return load_tables(e, weights, config, 1, err);
}

int g3n_text_embedder_load_embed_tokens(g3n_text_embedder *e, g3n_weights *weights, const g3n_text_config *config,
                                        g3n_error *err)
{
    return load_tables(e, weights, config, 0, err);
}

/* Row `row` of a lookup table as f32. From a checkpoint file, the row is read
 * with pread, not through the mapping: a mapped read makes the page cache's
 * whole folio resident, and where the file is held in 2 MiB folios (a head or
 * a copy read it whole before) each token made 2 MiB of embed_tokens resident
 * (E2B q4 after a 512-token prompt: 341 MiB instead of ~40). */
#define TABLE_ROW_BUFFER 32768
static void table_row_to_f32(const g3n_text_embedder *e, const g3n_matrix *table, int64_t row, float *out)
{
    const int convertible = table->dtype == G3N_DTYPE_F32 || table->dtype == G3N_DTYPE_BF16 ||
                            table->dtype == G3N_DTYPE_F16;
    const size_t bytes = (size_t)table->cols * g3n_dtype_size(table->dtype);
    _Alignas(64) unsigned char buffer[TABLE_ROW_BUFFER];
    if (e->checkpoint && convertible && bytes <= sizeof(buffer) &&
        g3n_checkpoint_read_mapped(e->checkpoint, (const char *)table->data + (size_t)row * table->row_stride, bytes,
                                   buffer)) {
        g3n_convert_to_f32(table->dtype, buffer, out, table->cols);
        return;
    }
    g3n_matrix_row_to_f32(table, row, out);
}

/* Gemma3nTextScaledWordEmbedding.forward for embed_tokens */
int g3n_text_embedder_embed_tokens(const g3n_text_embedder *e, const int32_t *ids, int64_t count, float *out,
                                   g3n_error *err)
{
    const int64_t D = e->hidden_size;
    for (int64_t t = 0; t < count; t++)
        if (ids[t] < 0 || ids[t] >= e->vocab_size)
            return g3n_error_set(err, "token id %d at position %lld is outside the vocabulary [0, %lld)", ids[t],
                                 (long long)t, (long long)e->vocab_size);
    for (int64_t t = 0; t < count; t++) {
        float *row = out + t * D;
        table_row_to_f32(e, &e->embed_tokens, ids[t], row);
        for (int64_t d = 0; d < D; d++)
            row[d] *= e->embed_scale;
    }
    return G3N_OK;
}

/* get_per_layer_inputs (with Gemma3nModel.forward's id' = id < vocab_ple ? id : 0) */
void g3n_text_embedder_per_layer_tokens(const g3n_text_embedder *e, const int32_t *ids, int64_t count, float *out)
{
    const int64_t LP = (int64_t)e->num_layers * e->per_layer_dim;
    for (int64_t t = 0; t < count; t++) {
        int64_t id = ids[t];
        if (id < 0 || id >= e->vocab_size_per_layer_input)
            id = 0;
        float *row = out + t * LP;
        table_row_to_f32(e, &e->embed_tokens_per_layer, id, row);
        for (int64_t i = 0; i < LP; i++)
            row[i] *= e->per_layer_embed_scale;
    }
}

/* project_per_layer_inputs */
void g3n_text_embedder_project_per_layer(const g3n_text_embedder *e, const float *embeds,
                                         const float *per_layer_tokens, int64_t count, float *out)
{
    const int64_t D = e->hidden_size, P = e->per_layer_dim, L = e->num_layers, LP = L * P;
    /* per_layer_projection = per_layer_model_projection(inputs_embeds) * hidden_size**-0.5 */
    g3n_matmul(embeds, count, (size_t)D, &e->per_layer_model_projection, out, (size_t)LP);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < count; t++) {
        float *row = out + t * LP;
        for (int64_t i = 0; i < LP; i++)
            row[i] *= e->per_layer_projection_scale;
        /* per_layer_projection_norm over each P-slice (one weight shared by all layers) */
        g3n_rms_norm_rows(row, P, e->per_layer_projection_norm, row, P, L, P, e->eps);
        if (per_layer_tokens) {
            const float *tok = per_layer_tokens + t * LP;
            for (int64_t i = 0; i < LP; i++)
                row[i] = (row[i] + tok[i]) * e->per_layer_input_scale;
        }
    }
}

int g3n_text_embedder_embed_ids(const g3n_text_embedder *e, const int32_t *ids, int64_t count, float *embeds_out,
                                float *per_layer_out, float *scratch, g3n_error *err)
{
    if (g3n_text_embedder_embed_tokens(e, ids, count, embeds_out, err) != G3N_OK)
        return G3N_ERR;
    g3n_text_embedder_per_layer_tokens(e, ids, count, scratch);
    g3n_text_embedder_project_per_layer(e, embeds_out, scratch, count, per_layer_out);
    return G3N_OK;
}
