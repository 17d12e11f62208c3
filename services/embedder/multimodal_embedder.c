#include "multimodal_embedder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

int g3n_multimodal_embedder_load(g3n_multimodal_embedder *e, g3n_weights *weights, const char *prefix,
                                 int64_t multimodal_hidden, int64_t text_hidden, int64_t vocab_size,
                                 int64_t vocab_offset, double eps, g3n_error *err)
{
    memset(e, 0, sizeof(*e));
    e->multimodal_hidden = multimodal_hidden;
    e->text_hidden = text_hidden;
    e->vocab_size = vocab_size;
    e->vocab_offset = vocab_offset;
    e->eps = eps;
    char name[256];
    const int64_t embedding_shape[2] = {vocab_size, multimodal_hidden};
    const int64_t norm_shape[1] = {multimodal_hidden};
    const int64_t projection_shape[2] = {text_hidden, multimodal_hidden};
    g3n_tensor projection;
    snprintf(name, sizeof(name), "%s.embedding.weight", prefix);
    if (g3n_weights_get(weights, name, 2, embedding_shape, &e->embedding, err) != G3N_OK)
        return G3N_ERR;
    snprintf(name, sizeof(name), "%s.hard_embedding_norm.weight", prefix);
    if (g3n_weights_get_f32(weights, name, 1, norm_shape, &e->hard_norm, err) != G3N_OK)
        return G3N_ERR;
    snprintf(name, sizeof(name), "%s.soft_embedding_norm.weight", prefix);
    if (g3n_weights_get_f32(weights, name, 1, norm_shape, &e->soft_norm, err) != G3N_OK)
        return G3N_ERR;
    snprintf(name, sizeof(name), "%s.embedding_projection.weight", prefix);
    if (g3n_weights_get(weights, name, 2, projection_shape, &projection, err) != G3N_OK)
        return G3N_ERR;
    return g3n_matrix_from_tensor(&e->projection, &projection, err);
}

/* normalised [count, multimodal_hidden] -> projection -> RMSNorm without weight */
static int project(const g3n_multimodal_embedder *e, float *normalised, int64_t count, float *out)
{
    g3n_matmul(normalised, count, (size_t)e->multimodal_hidden, &e->projection, out, (size_t)e->text_hidden);
    g3n_rms_norm_rows(out, e->text_hidden, NULL, out, e->text_hidden, count, e->text_hidden, e->eps);
    return G3N_OK;
}

int g3n_multimodal_embedder_soft(const g3n_multimodal_embedder *e, const float *x, int64_t count, float *out,
                                 g3n_error *err)
{
    float *normalised = malloc(sizeof(float) * (size_t)(count * e->multimodal_hidden + 1));
    if (!normalised)
        return g3n_error_set(err, "out of memory for %lld soft tokens", (long long)count);
    g3n_rms_norm_rows(x, e->multimodal_hidden, e->soft_norm, normalised, e->multimodal_hidden, count,
                      e->multimodal_hidden, e->eps);
    int status = project(e, normalised, count, out);
    free(normalised);
    return status;
}

int g3n_multimodal_embedder_hard(const g3n_multimodal_embedder *e, const int32_t *ids, int64_t count, float *out,
                                 g3n_error *err)
{
    const int64_t width = e->multimodal_hidden;
    float *normalised = malloc(sizeof(float) * (size_t)(count * width + 1));
    if (!normalised)
        return g3n_error_set(err, "out of memory for %lld hard tokens", (long long)count);
    const size_t element = g3n_dtype_size(e->embedding.dtype);
    for (int64_t t = 0; t < count; t++) {
        int64_t row = (int64_t)ids[t] - e->vocab_offset;
        if (row < 0 || row >= e->vocab_size) {
            free(normalised);
            return g3n_error_set(err, "token id %d is outside the multimodal vocabulary [%lld, %lld)", ids[t],
                                 (long long)e->vocab_offset, (long long)(e->vocab_offset + e->vocab_size));
        }
        float *z = normalised + t * width;
        g3n_convert_to_f32(e->embedding.dtype, (const char *)e->embedding.data + (size_t)(row * width) * element, z,
                           width);
        g3n_rms_norm(z, e->hard_norm, z, width, e->eps);
    }
    int status = project(e, normalised, count, out);
    free(normalised);
    return status;
}
