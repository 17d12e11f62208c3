/* multimodal_embedder.h - Gemma3nMultimodalEmbedder (model.embed_vision /
 * model.embed_audio): maps vision/audio soft tokens (or hard token ids) into
 * the text model's width.
 *   soft: x -> RMSNorm(soft_embedding_norm) -> embedding_projection -> RMSNorm(no weight)
 *   hard: embedding[id - vocab_offset] * sqrt(multimodal_hidden)? -> see the .c
 * Weights are borrowed from a g3n_weights source (valid while it is open). */
#ifndef G3N_MULTIMODAL_EMBEDDER_H
#define G3N_MULTIMODAL_EMBEDDER_H

#include <stdint.h>

#include "matmul.h"
#include "status.h"
#include "weights.h"

typedef struct g3n_multimodal_embedder {
    int64_t multimodal_hidden; /* vision/audio hidden size (input width) */
    int64_t text_hidden;       /* output width */
    int64_t vocab_size;        /* hard-token rows of `embedding` */
    int64_t vocab_offset;      /* first hard-token id */
    double eps;
    g3n_tensor embedding;          /* [vocab_size, multimodal_hidden], stored dtype */
    const float *hard_norm;        /* [multimodal_hidden] */
    const float *soft_norm;        /* [multimodal_hidden] */
    g3n_matrix projection;         /* [text_hidden, multimodal_hidden] */
} g3n_multimodal_embedder;

/* prefix: "model.embed_vision" or "model.embed_audio". */
int g3n_multimodal_embedder_load(g3n_multimodal_embedder *e, g3n_weights *weights, const char *prefix,
                                 int64_t multimodal_hidden, int64_t text_hidden, int64_t vocab_size,
                                 int64_t vocab_offset, double eps, g3n_error *err);
/* x: [count, multimodal_hidden] soft tokens -> out: [count, text_hidden]. */
int g3n_multimodal_embedder_soft(const g3n_multimodal_embedder *e, const float *x, int64_t count, float *out,
                                 g3n_error *err);
/* ids in [vocab_offset, vocab_offset + vocab_size) -> out: [count, text_hidden]. */
int g3n_multimodal_embedder_hard(const g3n_multimodal_embedder *e, const int32_t *ids, int64_t count, float *out,
                                 g3n_error *err);

#endif
