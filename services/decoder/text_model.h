/* text_model.h - the Gemma 3n language model (Gemma3nTextModel + the tied,
 * soft-capped head of Gemma3nForConditionalGeneration), f32 compute over
 * weights in their stored dtype.
 *
 * Two objects, as whisper.cpp separates context and state:
 *   g3n_text_model    the weights (borrowed views from a g3n_weights source,
 *                     mmapped or synth) and constants; read-only after load,
 *                     shared by any number of sessions.
 *   g3n_text_session  one conversation: the KV cache and the scratch buffers.
 *                     Full-attention layers keep every position up to the
 *                     session's max_positions; sliding layers keep a ring of
 *                     sliding_window positions; KV-shared layers keep nothing
 *                     (they read the cache of their source layer). Not
 *                     thread-safe: one caller at a time per session.
 *
 * The input seam: the layer stack takes inputs_embeds [T, D] and the final
 * per-layer inputs [T, L, P] (services/embedder/text_embedder.h computes both;
 * in the multimodal pipeline the embedder daemon hands them over).
 * g3n_text_session_forward_ids is the text-only shortcut that embeds ids with
 * the model's own embedder first.
 *
 * Prompts are processed in chunks of chunk_tokens rows (no T x T matrix);
 * decoding is a forward of one token.
 *
 * Lifetimes: the model borrows the config (config->text must outlive it) and
 * the weights source (must outlive it); a session borrows the model.
 */
#ifndef G3N_TEXT_MODEL_H
#define G3N_TEXT_MODEL_H

#include <stdint.h>

#include "config.h"
#include "matmul.h"
#include "quant.h"
#include "status.h"
#include "tensor_list.h"
#include "text_embedder.h"
#include "weights.h"

#define G3N_ALTUP_MAX_INPUTS 8

/* Every model.language_model.* tensor a checkpoint of this config holds (name
 * and shape). Like the released checkpoints it includes k_proj/v_proj/k_norm
 * for the KV-shared layers too (the model never reads them; a transformers-5
 * save_pretrained() leaves them out, which is equally fine). */
int g3n_text_model_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err);

/* One decoder layer's weights (Gemma3nTextDecoderLayer), checkpoint names
 * model.language_model.layers.{index}.<field path>. */
typedef struct g3n_text_layer {
    int index;                  /* position in this model's stack (its KV cache slot) */
    int per_layer_slot;         /* which slice of the per-layer inputs it reads (= index, except in a
                                   sub-model: its layer's index in the full model) */
    g3n_layer_type type;
    int kv_shared;              /* 1: reads the cache of kv_source, has no K/V of its own */
    int kv_source;              /* layer whose cache this layer reads (itself if not shared) */
    int kv_source_of_shared;    /* 1: some KV-shared layer reads this layer's cache */
    int64_t intermediate_size;  /* this layer's MLP width */
    int sparse;                 /* activation_sparsity_pattern[index] > 0 */
    float sparsity_std_multiplier; /* Normal(0,1).icdf(sparsity) in f32 */
    /* self_attn */
    g3n_matrix q_proj, k_proj, v_proj, o_proj; /* k/v unset for KV-shared layers */
    const float *q_norm, *k_norm;              /* [head_dim]; k_norm NULL when shared */
    /* mlp */
    g3n_matrix gate_proj, up_proj, down_proj;
    g3n_matrix down_proj_t;     /* sparse layers with a fast weight format: down_proj transposed [I, D]
                                   (a column per row) for the sparse MLP; data NULL otherwise */
    /* norms [D] */
    const float *input_layernorm, *post_attention_layernorm, *pre_feedforward_layernorm, *post_feedforward_layernorm;
    /* altup */
    const float *correct_output_scale; /* [D] */
    const float *correction_coefs;     /* [N, N] */
    const float *prediction_coefs;     /* [N*N, N] */
    const float *router_norm;          /* [D] */
    g3n_matrix modality_router;        /* [N, D] */
    /* laurel */
    g3n_matrix laurel_left, laurel_right; /* [rank, D], [D, rank] */
    const float *post_laurel_norm;        /* [D] */
    /* per-layer input branch */
    g3n_matrix per_layer_input_gate;      /* [P, D] */
    g3n_matrix per_layer_projection;      /* [D, P] */
    const float *post_per_layer_input_norm; /* [D] */
} g3n_text_layer;

typedef struct g3n_text_model {
    const g3n_text_config *config; /* borrowed */
    g3n_weights *weights;          /* borrowed */
    int num_layers;
    int64_t hidden_size, head_dim, per_layer_dim, vocab_size;
    int num_heads, num_kv_heads, altup_inputs, altup_active;
    int64_t max_intermediate_size;
    int per_layer_input_layers;    /* L of the per-layer inputs it takes [T, L, P]: num_layers, or the full
                                      model's for a sub-model (the embedder computes them for every layer) */
    const struct g3n_text_model *parent; /* a sub-model's full model (borrowed), else NULL */
    g3n_text_config *owned_config; /* a sub-model's text config (config points here), owned */
    void **owned_blocks;           /* a sub-model's own quantised down_proj prefixes (see derive), owned */
    int owned_block_count;
    char submodel_name[64];        /* "" for a model loaded from its config */
    g3n_text_embedder embedder;    /* embed_tokens, per-layer tables */
    int has_per_layer_tables;      /* 0: loaded for the decoder role (inputs from the embedder) */
    g3n_text_layer *layers;        /* [num_layers], owned */
    g3n_matrix altup_projections[G3N_ALTUP_MAX_INPUTS - 1];         /* [D, D] each */
    g3n_matrix altup_unembed_projections[G3N_ALTUP_MAX_INPUTS - 1]; /* [D, D] each */
    const float *final_norm;       /* norm.weight [D] */
    g3n_matrix lm_head;            /* tied: embed_tokens.weight [vocab, D], no scale */
    float *inv_freq_full;          /* [head_dim/2], owned: RoPE of full_attention layers */
    float *inv_freq_sliding;       /* [head_dim/2], owned: RoPE of sliding_attention layers */
    g3n_weight_format weight_format; /* G3N_WEIGHTS_EXACT unless g3n_text_model_select_weights changed it */
    g3n_quant_cache *weight_cache;   /* owned: the matrices of the selected format (NULL when exact) */
} g3n_text_model;

/* Borrows every tensor the config calls for; a missing or misshapen one is an
 * error naming it. */
int g3n_text_model_load(g3n_text_model *model, g3n_weights *weights, const g3n_model_config *config,
                        g3n_error *err);
/* The same for a decoder that receives its inputs from the embedder: the
 * per-layer embedding table and its projection are never mapped or read (on
 * E2B that is 2 B parameters); g3n_text_session_forward_ids is unavailable. */
int g3n_text_model_load_layers_only(g3n_text_model *model, g3n_weights *weights, const g3n_model_config *config,
                                    g3n_error *err);
void g3n_text_model_free(g3n_text_model *model); /* accepts a zeroed struct */

struct g3n_submodel;
/* MatFormer: a sub-model (common/model_io/submodel.h) of a loaded model, as views into
 * its weights: the kept layers' matrices, gate/up narrowed to their first k
 * rows and down_proj to its first k columns; the embedder, head, AltUp
 * projections and weight cache are the model's. Select the weight format on
 * the model first (a sub-model cannot select one). A q8/q4 down_proj whose
 * prefix ends inside a 512-column group cannot be viewed (quant.h's group
 * layout) and is quantised again at its width from the stored weights
 * (owned by the sub-model; widths that are multiples of 512, as Google's
 * configs use, need none). Sessions of the sub-model compute what a
 * checkpoint sliced to it (g3n slice) computes, bit for bit; they take the
 * same inputs as the model's (per-layer inputs of all its layers).
 * The model must outlive the sub-model; free it with g3n_text_model_free. */
int g3n_text_model_derive(g3n_text_model *sub, const g3n_text_model *model, const struct g3n_submodel *submodel,
                          g3n_error *err);

/* Floats of one token's per-layer inputs: per_layer_input_layers * per_layer_dim. */
static inline int64_t g3n_text_model_per_layer_width(const g3n_text_model *m)
{
    return (int64_t)m->per_layer_input_layers * m->per_layer_dim;
}

/* Selects the weights the loaded model computes with (text_weights.c):
 *   G3N_WEIGHTS_EXACT (f32): nothing changes (stored dtype, f32 compute);
 *   G3N_WEIGHTS_BF16: stored dtype, plus down_proj transposed for the sparse
 *     MLP of the activation-sparsity layers (decode computes only the up_proj
 *     rows and down_proj columns of the surviving gate entries: same sums);
 *   G3N_WEIGHTS_Q8 / Q4: every large matrix of the layers, the AltUp
 *     projections, the per-layer model projection and the tied head become
 *     Q8/Q4 (quant.h; matrices whose width is not a multiple of 64 and the
 *     4-row modality routers stay as stored), plus the transposed down_proj.
 * The result lives in one mmappable cache file: cache_file if given, else
 * $G3N_CACHE_DIR/text-<format>-<key hash>.g3nq, else
 * <checkpoint>/g3n-cache/text-<format>.g3nq; built on first use, mapped after
 * (info says which). Synthetic weights without G3N_CACHE_DIR stay in memory.
 * The embedding lookup keeps reading the stored embed_tokens rows. */
int g3n_text_model_select_weights(g3n_text_model *model, g3n_weight_format format, const char *cache_file,
                                  g3n_quant_cache_info *info, g3n_error *err);
/* Whether the layer, AltUp and head products may round x to bf16 for 16+
 * rows (g3n_matrix.bf16_products, AVX512-BF16): the bf16 format turns it on
 * (its prefill); off gives f32 products everywhere. */
void g3n_text_model_set_bf16_products(g3n_text_model *model, int enabled);

typedef struct g3n_text_session g3n_text_session;

/* Element type of the KV cache. */
typedef enum g3n_kv_type {
    G3N_KV_F32 = 0, /* f32: the exact path's (the goldens' tolerances) */
    G3N_KV_F16 = 1  /* IEEE half: half the cache memory and half the bytes attention reads per key;
                       keys and values are rounded once when stored (about 2^-11 relative), attention
                       still computes in f32 (kv_half.h) */
} g3n_kv_type;

typedef struct g3n_text_session_params {
    int64_t max_positions; /* context length the full-attention caches hold (default: max_position_embeddings) */
    int64_t chunk_tokens;  /* prefill chunk rows (default 64; 256 once g3n_text_model_select_weights chose
                              bf16/q8/q4: about 70 MiB of scratch on E2B) */
    g3n_kv_type kv_type;   /* default: G3N_KV_F32 on the exact path, G3N_KV_F16 once
                              g3n_text_model_select_weights chose bf16/q8/q4 */
} g3n_text_session_params;

g3n_text_session_params g3n_text_session_default_params(const g3n_text_model *model);

int g3n_text_session_create(g3n_text_session **out, const g3n_text_model *model,
                            const g3n_text_session_params *params, g3n_error *err);
void g3n_text_session_free(g3n_text_session *session); /* accepts NULL */
/* Forgets every position (the cache is reused, nothing is reallocated). */
void g3n_text_session_reset(g3n_text_session *session);
const g3n_text_model *g3n_text_session_model(const g3n_text_session *session);
/* Number of positions processed so far (the next token's position). */
int64_t g3n_text_session_position(const g3n_text_session *session);

typedef struct g3n_text_session_memory {
    uint64_t kv_cache_bytes; /* K and V of the non-shared layers (in the session's kv_type) */
    uint64_t scratch_bytes;  /* chunk buffers, attention scores */
} g3n_text_session_memory;
g3n_text_session_memory g3n_text_session_memory_usage(const g3n_text_session *session);
g3n_kv_type g3n_text_session_kv_type(const g3n_text_session *session);

/* Called after each decoder layer with its output streams, and once with
 * layer = -1 for the stack's input (the AltUp streams before layer 0).
 * streams[i * stream_stride + t * hidden + d]: stream i, token t of this chunk
 * (absolute position first_position + t). */
typedef void (*g3n_text_layer_hook)(void *user, int layer, const float *streams, int num_streams,
                                    int64_t stream_stride, int64_t first_position, int64_t count, int64_t hidden);
void g3n_text_session_set_layer_hook(g3n_text_session *session, g3n_text_layer_hook hook, void *user);

/* Runs count tokens at positions position() .. position()+count-1 through the
 * layer stack and appends them to the cache.
 * inputs_embeds [count, D]; per_layer_inputs [count, L, P] (final, as
 * g3n_text_embedder_project_per_layer gives them).
 * logits: NULL (none), [count, vocab] when all_logits, else [vocab] for the
 * last token; soft-capped as the model's head gives them. */
int g3n_text_session_forward(g3n_text_session *session, const float *inputs_embeds, const float *per_layer_inputs,
                             int64_t count, float *logits, int all_logits, g3n_error *err);
/* The same from token ids (embedded with the model's text embedder). */
int g3n_text_session_forward_ids(g3n_text_session *session, const int32_t *ids, int64_t count, float *logits,
                                 int all_logits, g3n_error *err);

/* Continuous batching: the decode steps of several sessions (one new token
 * each, each at its own position with its own cache) as one forward whose
 * rows are the sessions, so every weight matrix is read once per step for all
 * of them; attention runs per row against that row's session cache.
 *
 * A batch object owns the scratch for up to max_sessions rows, planned at
 * creation (no allocation per step); it borrows the model. One caller at a
 * time per batch, and the sessions of a step are not used elsewhere during it. */
typedef struct g3n_text_batch g3n_text_batch;

int g3n_text_batch_create(g3n_text_batch **out, const g3n_text_model *model, int max_sessions, g3n_error *err);
void g3n_text_batch_free(g3n_text_batch *batch); /* accepts NULL */
int g3n_text_batch_capacity(const g3n_text_batch *batch);

/* One decode step of `count` distinct sessions of the batch's model:
 * row r is sessions[r]'s next token at its position(); inputs_embeds
 * [count, D], per_layer_inputs [count, L, P] (as g3n_text_session_forward's
 * with count rows, one per session); logits NULL or [count, vocab]
 * (soft-capped). Each session's position advances by one. The same sums as
 * one g3n_text_session_forward of one token per session, except that the
 * matrix products see `count` rows instead of one (kernels may block rows
 * differently: equal up to the last bits, not bitwise); each session's layer
 * hook is called with its own row (not for layer -1).
 * Errors (count outside [1, capacity], a session twice, another model, a
 * full context) leave every session as it was. */
int g3n_text_batch_forward(g3n_text_batch *batch, g3n_text_session *const *sessions, int count,
                           const float *inputs_embeds, const float *per_layer_inputs, float *logits, g3n_error *err);

/* For tests: the largest number of keys any query of `layer` attended to since
 * the session was created (a sliding layer must never exceed sliding_window),
 * and the number of cache slots the layer holds (0 for KV-shared layers). */
int64_t g3n_text_session_max_keys_attended(const g3n_text_session *session, int layer);
int64_t g3n_text_session_cache_slots(const g3n_text_session *session, int layer);

#endif
