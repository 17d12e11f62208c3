/* text_model.c - Gemma 3n language model forward pass (modeling_gemma3n.py:
 * Gemma3nTextModel, Gemma3nTextDecoderLayer, Gemma3nTextAltUp,
 * Gemma3nTextLaurelBlock, Gemma3nTextAttention, Gemma3nTextMLP), with a KV cache. */
#include "text_model.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_map.h"
#include "kv_half.h"
#include "submodel.h"
#include "ops.h"
#include "text_math.h"

#define PREFIX "model.language_model."

/* ------------------------------------------------------------------ tensor list */

int g3n_text_model_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err)
{
    const g3n_text_config *c = &config->text;
    const int64_t D = c->hidden_size, P = c->hidden_size_per_layer_input, L = c->num_hidden_layers;
    const int64_t HD = c->head_dim, NH = c->num_attention_heads, NKV = c->num_key_value_heads;
    const int64_t N = c->altup_num_inputs, R = c->laurel_rank;
    if (N < 1 || N > G3N_ALTUP_MAX_INPUTS)
        return g3n_error_set(err, "text config: altup_num_inputs %lld outside [1, %d]", (long long)N,
                             G3N_ALTUP_MAX_INPUTS);
#define ADD1(a, ...)                                                                                                \
    do {                                                                                                            \
        int64_t s_[1] = {a};                                                                                        \
        if (g3n_tensor_list_add(list, 1, s_, err, __VA_ARGS__) != G3N_OK)                                           \
            return G3N_ERR;                                                                                         \
    } while (0)
#define ADD2(a, b, ...)                                                                                             \
    do {                                                                                                            \
        int64_t s_[2] = {a, b};                                                                                     \
        if (g3n_tensor_list_add(list, 2, s_, err, __VA_ARGS__) != G3N_OK)                                           \
            return G3N_ERR;                                                                                         \
    } while (0)
    ADD2(c->vocab_size, D, PREFIX "embed_tokens.weight");
    for (int l = 0; l < L; l++) {
        const int64_t I = c->intermediate_size[l];
        ADD2(NH * HD, D, PREFIX "layers.%d.self_attn.q_proj.weight", l);
        ADD1(HD, PREFIX "layers.%d.self_attn.q_norm.weight", l);
        /* Released checkpoints carry these for the KV-shared layers too (unused). */
        ADD2(NKV * HD, D, PREFIX "layers.%d.self_attn.k_proj.weight", l);
        ADD2(NKV * HD, D, PREFIX "layers.%d.self_attn.v_proj.weight", l);
        ADD1(HD, PREFIX "layers.%d.self_attn.k_norm.weight", l);
        ADD2(D, NH * HD, PREFIX "layers.%d.self_attn.o_proj.weight", l);
        ADD2(I, D, PREFIX "layers.%d.mlp.gate_proj.weight", l);
        ADD2(I, D, PREFIX "layers.%d.mlp.up_proj.weight", l);
        ADD2(D, I, PREFIX "layers.%d.mlp.down_proj.weight", l);
        ADD1(D, PREFIX "layers.%d.input_layernorm.weight", l);
        ADD1(D, PREFIX "layers.%d.post_attention_layernorm.weight", l);
        ADD1(D, PREFIX "layers.%d.pre_feedforward_layernorm.weight", l);
        ADD1(D, PREFIX "layers.%d.post_feedforward_layernorm.weight", l);
        ADD1(D, PREFIX "layers.%d.altup.correct_output_scale", l);
        ADD2(N, N, PREFIX "layers.%d.altup.correction_coefs.weight", l);
        ADD2(N * N, N, PREFIX "layers.%d.altup.prediction_coefs.weight", l);
        ADD2(N, D, PREFIX "layers.%d.altup.modality_router.weight", l);
        ADD1(D, PREFIX "layers.%d.altup.router_norm.weight", l);
        ADD2(R, D, PREFIX "layers.%d.laurel.linear_left.weight", l);
        ADD2(D, R, PREFIX "layers.%d.laurel.linear_right.weight", l);
        ADD1(D, PREFIX "layers.%d.laurel.post_laurel_norm.weight", l);
        ADD2(P, D, PREFIX "layers.%d.per_layer_input_gate.weight", l);
        ADD2(D, P, PREFIX "layers.%d.per_layer_projection.weight", l);
        ADD1(D, PREFIX "layers.%d.post_per_layer_input_norm.weight", l);
    }
    ADD1(D, PREFIX "norm.weight");
    ADD2(c->vocab_size_per_layer_input, L * P, PREFIX "embed_tokens_per_layer.weight");
    ADD2(L * P, D, PREFIX "per_layer_model_projection.weight");
    ADD1(P, PREFIX "per_layer_projection_norm.weight");
    for (int i = 0; i < N - 1; i++)
        ADD2(D, D, PREFIX "altup_projections.%d.weight", i);
    for (int i = 0; i < N - 1; i++)
        ADD2(D, D, PREFIX "altup_unembed_projections.%d.weight", i);
#undef ADD1
#undef ADD2
    return G3N_OK;
}

/* ------------------------------------------------------------------ loading */

static int get_matrix(g3n_weights *w, g3n_matrix *out, int64_t rows, int64_t cols, g3n_error *err,
                      const char *format, int layer)
{
    char name[256];
    snprintf(name, sizeof(name), format, layer);
    g3n_tensor t;
    int64_t shape[2] = {rows, cols};
    if (g3n_weights_get(w, name, 2, shape, &t, err) != G3N_OK || g3n_matrix_from_tensor(out, &t, err) != G3N_OK)
        return G3N_ERR;
    /* every matrix here is read whole at every step: in 2 MiB pages where the
     * checkpoint's mapping allows (file_map.h; the gain: docs/performance.md) */
    g3n_file_advise_huge(out->data, (size_t)out->rows * out->row_stride);
    return G3N_OK;
}

static int get_vector(g3n_weights *w, const float **out, int ndim, int64_t a, int64_t b, g3n_error *err,
                      const char *format, int layer)
{
    char name[256];
    snprintf(name, sizeof(name), format, layer);
    int64_t shape[2] = {a, b};
    return g3n_weights_get_f32(w, name, ndim, shape, out, err);
}

/* Normal(0,1).icdf(p) = sqrt(2) * erfinv(2p - 1), by Newton steps on erf (double). */
static double normal_icdf(double p)
{
    double y = 2.0 * p - 1.0, x = 0.0;
    if (y <= -1.0 || y >= 1.0)
        return y < 0 ? -INFINITY : INFINITY;
    for (int i = 0; i < 100; i++) {
        double f = erf(x) - y;
        double step = f / (2.0 / sqrt(M_PI) * exp(-x * x));
        x -= step;
        if (fabs(step) < 1e-17)
            break;
    }
    return sqrt(2.0) * x;
}

/* The last non-shared layer of the same type (Gemma3nTextAttention.__init__). */
static int kv_source_layer(const g3n_text_config *c, int layer)
{
    int first_shared = c->num_hidden_layers - c->num_kv_shared_layers;
    if (first_shared <= 0 || layer < first_shared)
        return layer;
    for (int j = first_shared - 1; j >= 0; j--)
        if (c->layer_types[j] == c->layer_types[layer])
            return j;
    return -1;
}

static float *rope_inv_freq(double theta, int64_t head_dim)
{
    int64_t half = head_dim / 2;
    float *f = malloc((size_t)half * sizeof(float));
    if (!f)
        return NULL;
    /* inv_freq = 1.0 / (base ** (arange(0, dim, 2, float) / dim)), all f32 */
    for (int64_t i = 0; i < half; i++) {
        float exponent = (float)(2 * i) / (float)head_dim;
        float power = powf((float)theta, exponent);
        f[i] = 1.0f / power;
    }
    return f;
}

static int load_layer(g3n_text_model *m, g3n_text_layer *ly, int l, g3n_error *err)
{
    const g3n_text_config *c = m->config;
    g3n_weights *w = m->weights;
    const int64_t D = m->hidden_size, HD = m->head_dim, P = m->per_layer_dim;
    const int64_t NH = m->num_heads, NKV = m->num_kv_heads, N = m->altup_inputs, R = c->laurel_rank;
    const int64_t I = c->intermediate_size[l];
    ly->index = l;
    ly->per_layer_slot = l;
    ly->type = c->layer_types[l];
    ly->kv_source = kv_source_layer(c, l);
    if (ly->kv_source < 0)
        return g3n_error_set(err, "text config: KV-shared layer %d has no earlier layer of its type to read", l);
    ly->kv_shared = ly->kv_source != l;
    ly->intermediate_size = I;
    if (I <= 0)
        return g3n_error_set(err, "text config: intermediate_size[%d] = %lld", l, (long long)I);
    double sparsity = c->activation_sparsity_pattern ? c->activation_sparsity_pattern[l] : 0.0;
    ly->sparse = sparsity > 0.0;
    ly->sparsity_std_multiplier = ly->sparse ? (float)normal_icdf(sparsity) : 0.0f;

    if (get_matrix(w, &ly->q_proj, NH * HD, D, err, PREFIX "layers.%d.self_attn.q_proj.weight", l) ||
        get_vector(w, &ly->q_norm, 1, HD, 0, err, PREFIX "layers.%d.self_attn.q_norm.weight", l) ||
        get_matrix(w, &ly->o_proj, D, NH * HD, err, PREFIX "layers.%d.self_attn.o_proj.weight", l))
        return G3N_ERR;
    if (!ly->kv_shared) {
        if (get_matrix(w, &ly->k_proj, NKV * HD, D, err, PREFIX "layers.%d.self_attn.k_proj.weight", l) ||
            get_matrix(w, &ly->v_proj, NKV * HD, D, err, PREFIX "layers.%d.self_attn.v_proj.weight", l) ||
            get_vector(w, &ly->k_norm, 1, HD, 0, err, PREFIX "layers.%d.self_attn.k_norm.weight", l))
            return G3N_ERR;
    }
    if (get_matrix(w, &ly->gate_proj, I, D, err, PREFIX "layers.%d.mlp.gate_proj.weight", l) ||
        get_matrix(w, &ly->up_proj, I, D, err, PREFIX "layers.%d.mlp.up_proj.weight", l) ||
        get_matrix(w, &ly->down_proj, D, I, err, PREFIX "layers.%d.mlp.down_proj.weight", l) ||
        get_vector(w, &ly->input_layernorm, 1, D, 0, err, PREFIX "layers.%d.input_layernorm.weight", l) ||
        get_vector(w, &ly->post_attention_layernorm, 1, D, 0, err,
                   PREFIX "layers.%d.post_attention_layernorm.weight", l) ||
        get_vector(w, &ly->pre_feedforward_layernorm, 1, D, 0, err,
                   PREFIX "layers.%d.pre_feedforward_layernorm.weight", l) ||
        get_vector(w, &ly->post_feedforward_layernorm, 1, D, 0, err,
                   PREFIX "layers.%d.post_feedforward_layernorm.weight", l) ||
        get_vector(w, &ly->correct_output_scale, 1, D, 0, err, PREFIX "layers.%d.altup.correct_output_scale", l) ||
        get_vector(w, &ly->correction_coefs, 2, N, N, err, PREFIX "layers.%d.altup.correction_coefs.weight", l) ||
        get_vector(w, &ly->prediction_coefs, 2, N * N, N, err, PREFIX "layers.%d.altup.prediction_coefs.weight",
                   l) ||
        get_vector(w, &ly->router_norm, 1, D, 0, err, PREFIX "layers.%d.altup.router_norm.weight", l) ||
        get_matrix(w, &ly->modality_router, N, D, err, PREFIX "layers.%d.altup.modality_router.weight", l) ||
        get_matrix(w, &ly->laurel_left, R, D, err, PREFIX "layers.%d.laurel.linear_left.weight", l) ||
        get_matrix(w, &ly->laurel_right, D, R, err, PREFIX "layers.%d.laurel.linear_right.weight", l) ||
        get_vector(w, &ly->post_laurel_norm, 1, D, 0, err, PREFIX "layers.%d.laurel.post_laurel_norm.weight", l) ||
        get_matrix(w, &ly->per_layer_input_gate, P, D, err, PREFIX "layers.%d.per_layer_input_gate.weight", l) ||
        get_matrix(w, &ly->per_layer_projection, D, P, err, PREFIX "layers.%d.per_layer_projection.weight", l) ||
        get_vector(w, &ly->post_per_layer_input_norm, 1, D, 0, err,
                   PREFIX "layers.%d.post_per_layer_input_norm.weight", l))
        return G3N_ERR;
    return G3N_OK;
}

static int model_load(g3n_text_model *m, g3n_weights *weights, const g3n_model_config *config, int with_embedder,
                      g3n_error *err)
{
    memset(m, 0, sizeof(*m));
    const g3n_text_config *c = &config->text;
    m->config = c;
    m->weights = weights;
    m->num_layers = c->num_hidden_layers;
    m->per_layer_input_layers = c->num_hidden_layers;
    m->hidden_size = c->hidden_size;
    m->head_dim = c->head_dim;
    m->per_layer_dim = c->hidden_size_per_layer_input;
    m->vocab_size = c->vocab_size;
    m->num_heads = c->num_attention_heads;
    m->num_kv_heads = c->num_key_value_heads;
    m->altup_inputs = c->altup_num_inputs;
    m->altup_active = c->altup_active_idx;
    if (m->num_layers <= 0 || m->hidden_size <= 0 || m->head_dim <= 0 || m->head_dim % 2 != 0 ||
        m->num_heads <= 0 || m->num_kv_heads <= 0 || m->num_heads % m->num_kv_heads != 0)
        return g3n_error_set(err, "text config: unusable sizes (layers %d, hidden %lld, heads %d/%d, head_dim %lld)",
                             m->num_layers, (long long)m->hidden_size, m->num_heads, m->num_kv_heads,
                             (long long)m->head_dim);
    if (m->altup_inputs < 1 || m->altup_inputs > G3N_ALTUP_MAX_INPUTS || m->altup_active != 0)
        return g3n_error_set(err, "text config: altup_num_inputs %d / altup_active_idx %d not supported",
                             m->altup_inputs, m->altup_active);
    m->has_per_layer_tables = with_embedder;
    if ((with_embedder ? g3n_text_embedder_load(&m->embedder, weights, c, err)
                       : g3n_text_embedder_load_embed_tokens(&m->embedder, weights, c, err)) != G3N_OK)
        return g3n_error_prefix(err, "text model");
    m->lm_head = m->embedder.embed_tokens; /* tied (lm_head.weight = embed_tokens.weight) */
    /* read whole at every step as the head (f32/bf16; q8/q4 quantise it): 2 MiB
     * pages where the mapping allows, as the layers' matrices (get_matrix); the
     * embedder reads its rows with pread, so this costs its lookups nothing */
    g3n_file_advise_huge(m->lm_head.data, (size_t)m->lm_head.rows * m->lm_head.row_stride);

    m->layers = calloc((size_t)m->num_layers, sizeof(*m->layers));
    if (!m->layers)
        return g3n_error_set(err, "text model: out of memory");
    for (int l = 0; l < m->num_layers; l++) {
        if (load_layer(m, &m->layers[l], l, err) != G3N_OK) {
            g3n_text_model_free(m);
            return g3n_error_prefix(err, "text model layer %d", l);
        }
        if (m->layers[l].intermediate_size > m->max_intermediate_size)
            m->max_intermediate_size = m->layers[l].intermediate_size;
    }
    for (int l = 0; l < m->num_layers; l++)
        if (m->layers[l].kv_shared)
            m->layers[m->layers[l].kv_source].kv_source_of_shared = 1;

    const int64_t D = m->hidden_size;
    for (int i = 0; i < m->altup_inputs - 1; i++) {
        if (get_matrix(weights, &m->altup_projections[i], D, D, err, PREFIX "altup_projections.%d.weight", i) ||
            get_matrix(weights, &m->altup_unembed_projections[i], D, D, err,
                       PREFIX "altup_unembed_projections.%d.weight", i)) {
            g3n_text_model_free(m);
            return g3n_error_prefix(err, "text model");
        }
    }
    int64_t norm_shape[1] = {D};
    if (g3n_weights_get_f32(weights, PREFIX "norm.weight", 1, norm_shape, &m->final_norm, err) != G3N_OK) {
        g3n_text_model_free(m);
        return g3n_error_prefix(err, "text model");
    }
    m->inv_freq_full = rope_inv_freq(c->rope_theta_full, m->head_dim);
    m->inv_freq_sliding = rope_inv_freq(c->rope_theta_sliding, m->head_dim);
    if (!m->inv_freq_full || !m->inv_freq_sliding) {
        g3n_text_model_free(m);
        return g3n_error_set(err, "text model: out of memory");
    }
    return G3N_OK;
}

int g3n_text_model_load(g3n_text_model *m, g3n_weights *weights, const g3n_model_config *config, g3n_error *err)
{
    return model_load(m, weights, config, 1, err);
}

int g3n_text_model_load_layers_only(g3n_text_model *m, g3n_weights *weights, const g3n_model_config *config,
                                    g3n_error *err)
{
    return model_load(m, weights, config, 0, err);
}

void g3n_text_model_free(g3n_text_model *m)
{
    if (!m)
        return;
    free(m->layers);
    if (m->parent) { /* a sub-model: the rest is the model's */
        for (int i = 0; i < m->owned_block_count; i++)
            g3n_aligned_free(m->owned_blocks[i]);
        free(m->owned_blocks);
        g3n_text_config_free_arrays(m->owned_config);
        free(m->owned_config);
        memset(m, 0, sizeof(*m));
        return;
    }
    g3n_quant_cache_close(m->weight_cache);
    free(m->inv_freq_full);
    free(m->inv_freq_sliding);
    memset(m, 0, sizeof(*m));
}

/* One of a sub-model's MLP matrices at rows x cols (a prefix of the model's),
 * in the dtype the selected format gives a matrix of that shape (as
 * text_weights.c decides it: q8/q4 where the width is a multiple of 64 and
 * there are 16 rows or more, else the stored dtype), so that the sub-model
 * computes what a checkpoint sliced to it computes. Where the model's matrix
 * already has that dtype it is a view: rows and columns of a stored matrix,
 * the first rows of a quantised one, or its first columns up to a group
 * boundary (stored_cols tells the kernels the rows' layout). Otherwise the
 * stored weights' prefix (quantised again where needed: the same blocks, so
 * the same numbers), owned by the sub-model. */
static int narrow_matrix(g3n_text_model *sub, const g3n_text_model *model, const char *name, g3n_matrix *matrix,
                         int64_t full_rows, int64_t full_cols, int64_t rows, int64_t cols, g3n_error *err)
{
    if (rows == full_rows && cols == full_cols)
        return G3N_OK;
    const int format_dtype = g3n_weight_format_dtype(model->weight_format);
    const int want_quant = format_dtype >= 0 && g3n_quant_supported((g3n_dtype)format_dtype, cols) && rows >= 16;
    const int is_quant = matrix->dtype == G3N_DTYPE_Q8 || matrix->dtype == G3N_DTYPE_Q4;
    if (want_quant == is_quant && (!is_quant || cols == full_cols || cols % G3N_QUANT_GROUP == 0)) {
        if (is_quant && cols != full_cols && matrix->stored_cols == 0)
            matrix->stored_cols = matrix->cols;
        matrix->rows = rows;
        matrix->cols = cols;
        return G3N_OK;
    }
    g3n_tensor t;
    g3n_matrix stored;
    int64_t shape[2] = {full_rows, full_cols};
    if (g3n_weights_get(model->weights, name, 2, shape, &t, err) != G3N_OK ||
        g3n_matrix_from_tensor(&stored, &t, err) != G3N_OK)
        return G3N_ERR;
    stored.rows = rows;
    stored.cols = cols;
    stored.bf16_products = matrix->bf16_products;
    if (!want_quant) {
        *matrix = stored;
        return G3N_OK;
    }
    void **blocks = realloc(sub->owned_blocks, sizeof(void *) * (size_t)(sub->owned_block_count + 1));
    if (!blocks)
        return g3n_error_set(err, "out of memory");
    sub->owned_blocks = blocks;
    void *data = g3n_aligned_alloc(g3n_quant_row_bytes((g3n_dtype)format_dtype, cols) * (size_t)rows);
    if (!data)
        return g3n_error_set(err, "out of memory for %s at %lld x %lld", name, (long long)rows, (long long)cols);
    sub->owned_blocks[sub->owned_block_count++] = data;
    *matrix = g3n_quantize_matrix(&stored, (g3n_dtype)format_dtype, data);
    return G3N_OK;
}

int g3n_text_model_derive(g3n_text_model *sub, const g3n_text_model *m, const g3n_submodel *spec, g3n_error *err)
{
    memset(sub, 0, sizeof(*sub));
    if (m->parent)
        return g3n_error_set(err, "sub-model '%s': derive it from the full model, not from a sub-model", spec->name);
    g3n_text_config *config = calloc(1, sizeof(*config));
    if (!config)
        return g3n_error_set(err, "out of memory");
    if (g3n_submodel_text_config(spec, m->config, config, err) != G3N_OK) {
        free(config);
        return G3N_ERR;
    }
    *sub = *m;
    sub->parent = m;
    sub->owned_config = config;
    sub->config = config;
    sub->owned_blocks = NULL;
    sub->owned_block_count = 0;
    snprintf(sub->submodel_name, sizeof(sub->submodel_name), "%s", spec->name);
    sub->num_layers = spec->num_layers;
    sub->max_intermediate_size = 0;
    sub->layers = calloc((size_t)spec->num_layers, sizeof(*sub->layers));
    if (!sub->layers) {
        g3n_text_model_free(sub);
        return g3n_error_set(err, "out of memory");
    }
    for (int i = 0; i < spec->num_layers; i++) {
        const int l = spec->layers[i];
        const int64_t k = spec->intermediate_size[i];
        g3n_text_layer *ly = &sub->layers[i];
        *ly = m->layers[l];
        ly->index = i;
        ly->kv_source = g3n_text_config_kv_source_layer(config, i);
        ly->kv_shared = ly->kv_source != i;
        ly->kv_source_of_shared = 0;
        ly->intermediate_size = k;
        if (ly->down_proj_t.data)
            ly->down_proj_t.rows = k; /* [I, D]: a unit per row */
        const int64_t D = m->hidden_size, I = m->layers[l].intermediate_size;
        char gate[160], up[160], down[160];
        snprintf(gate, sizeof(gate), PREFIX "layers.%d.mlp.gate_proj.weight", l);
        snprintf(up, sizeof(up), PREFIX "layers.%d.mlp.up_proj.weight", l);
        snprintf(down, sizeof(down), PREFIX "layers.%d.mlp.down_proj.weight", l);
        if (narrow_matrix(sub, m, gate, &ly->gate_proj, I, D, k, D, err) != G3N_OK ||
            narrow_matrix(sub, m, up, &ly->up_proj, I, D, k, D, err) != G3N_OK ||
            narrow_matrix(sub, m, down, &ly->down_proj, D, I, D, k, err) != G3N_OK) {
            g3n_text_model_free(sub);
            return g3n_error_prefix(err, "sub-model '%s' layer %d", spec->name, l);
        }
        if (k > sub->max_intermediate_size)
            sub->max_intermediate_size = k;
    }
    for (int i = 0; i < sub->num_layers; i++)
        if (sub->layers[i].kv_shared)
            sub->layers[sub->layers[i].kv_source].kv_source_of_shared = 1;
    return G3N_OK;
}

/* ------------------------------------------------------------------ session */

/* K/V storage is in the session's element type (f32 or IEEE half, kv_elem bytes). */
typedef struct layer_cache {
    void *k, *v;         /* [slots][NKV][HD]; NULL for KV-shared layers */
    int64_t slots;       /* full: max_positions; sliding: min(window, max_positions) */
    int ring;            /* sliding: slot = position % slots */
    void *chunk_k, *chunk_v; /* sliding layers: this chunk's K/V [chunk][NKV][HD] before they enter the ring */
    int64_t max_keys;    /* largest number of keys one query attended to (tests) */
} layer_cache;

struct g3n_text_session {
    const g3n_text_model *model;
    int64_t max_positions, chunk, position, window;
    int threads;
    int kv_half;          /* 1: the cache holds IEEE half (G3N_KV_F16), else f32 */
    size_t kv_elem;       /* bytes per cached K/V value: 2 or 4 */
    layer_cache *caches;  /* [num_layers]; NULL in a batch's scratch */
    /* batch scratch only (g3n_text_batch): row r is rows[r]'s next token at row_positions[r] */
    g3n_text_session *const *rows;
    int64_t *row_positions;
    g3n_text_layer_hook hook;
    void *hook_user;
    /* chunk scratch (rows = chunk) */
    float *streams;       /* [N][chunk][D] */
    float *x, *laurel, *attn, *hidden, *tmp; /* [chunk][D] */
    float *laurel_low;    /* [chunk][rank] */
    float *q, *attn_heads; /* [chunk][NH*HD] */
    void *shared_chunk_k, *shared_chunk_v; /* chunk K/V of sliding layers nobody else reads */
    float *stage_k, *stage_v; /* [chunk][NKV*HD] f32: the k/v projections, normed and roped here before
                                 they are stored in the cache's element type */
    float *gate, *up;     /* [chunk][I_max] */
    float *ple;           /* [chunk][P] */
    float *modalities;    /* [chunk][N] */
    float *rope_cos[2], *rope_sin[2]; /* per layer type [chunk][HD/2] */
    float *scores;        /* [threads][max_keys] */
    int64_t scores_stride;
    /* prefill attention through g3n_matmul (attention_by_products), for key
     * ranges of at most att_cap positions: */
    int64_t att_cap;
    float *att_k;         /* [att_cap][HD]: one KV head's keys of the range */
    float *att_vt;        /* [HD][att_cap]: its values, transposed */
    float *att_q, *att_o; /* [group * chunk][HD]: the group's queries / outputs, head-major */
    float *att_s;         /* [group * chunk][att_cap]: scores, then probabilities */
    float *att_row;       /* [threads][HD]: a half cache row widened for the gather */
    int32_t *active_rows; /* [I_max]: the sparse MLP's surviving gate entries */
    float *embeds, *per_layer, *per_layer_tokens; /* forward_ids: [chunk][D], [chunk][L*P] x2 */
    uint64_t kv_bytes, scratch_bytes;
};

/* Prefill attention goes through g3n_matmul while a chunk's queries see at
 * most this many earlier positions (beyond: the per-key loop, no bigger buffers). */
#define ATTENTION_PRODUCT_KEYS 2048

g3n_text_session_params g3n_text_session_default_params(const g3n_text_model *model)
{
    g3n_text_session_params p;
    p.max_positions = model->config->max_position_embeddings > 0 ? model->config->max_position_embeddings : 32768;
    /* the fast formats reuse each weight load for more rows: 256
     * (docs/performance.md, "Decoder"); the exact path keeps 64 rows (less
     * scratch, the goldens' path) */
    p.chunk_tokens = model->weight_format == G3N_WEIGHTS_EXACT ? 64 : 256;
    /* the fast formats keep K/V in half: half the session memory and attention's reads */
    p.kv_type = model->weight_format == G3N_WEIGHTS_EXACT ? G3N_KV_F32 : G3N_KV_F16;
    return p;
}

static void *session_alloc_bytes(g3n_text_session *s, int64_t count, size_t elem, int is_kv)
{
    if (count <= 0)
        count = 1;
    size_t bytes = (size_t)count * elem;
    void *p = g3n_aligned_alloc(bytes);
    if (p) {
        memset(p, 0, bytes);
        if (is_kv)
            s->kv_bytes += bytes;
        else
            s->scratch_bytes += bytes;
    }
    return p;
}

static float *session_alloc(g3n_text_session *s, int64_t count, int is_kv)
{
    return session_alloc_bytes(s, count, sizeof(float), is_kv);
}

/* The per-chunk scratch of s->chunk rows (a session's, or a batch's with rows = sessions). */
static int alloc_chunk_scratch(g3n_text_session *s)
{
    const g3n_text_model *m = s->model;
    const int64_t C = s->chunk, D = m->hidden_size, HD = m->head_dim, NKV = m->num_kv_heads, NH = m->num_heads;
    const int64_t N = m->altup_inputs;
    s->streams = session_alloc(s, N * C * D, 0);
    s->x = session_alloc(s, C * D, 0);
    s->laurel = session_alloc(s, C * D, 0);
    s->attn = session_alloc(s, C * D, 0);
    s->hidden = session_alloc(s, C * D, 0);
    s->tmp = session_alloc(s, C * D, 0);
    s->laurel_low = session_alloc(s, C * m->config->laurel_rank, 0);
    s->q = session_alloc(s, C * NH * HD, 0);
    s->attn_heads = session_alloc(s, C * NH * HD, 0);
    s->gate = session_alloc(s, C * m->max_intermediate_size, 0);
    s->up = session_alloc(s, C * m->max_intermediate_size, 0);
    s->ple = session_alloc(s, C * m->per_layer_dim, 0);
    s->modalities = session_alloc(s, C * N, 0);
    for (int i = 0; i < 2; i++) {
        s->rope_cos[i] = session_alloc(s, C * (HD / 2), 0);
        s->rope_sin[i] = session_alloc(s, C * (HD / 2), 0);
    }
    s->stage_k = session_alloc(s, C * NKV * HD, 0);
    s->stage_v = session_alloc(s, C * NKV * HD, 0);
    s->active_rows = (int32_t *)session_alloc(s, m->max_intermediate_size, 0);
    return s->streams && s->x && s->laurel && s->attn && s->hidden && s->tmp && s->laurel_low && s->q &&
           s->attn_heads && s->gate && s->up && s->ple && s->modalities && s->rope_cos[0] && s->rope_cos[1] &&
           s->rope_sin[0] && s->rope_sin[1] && s->stage_k && s->stage_v && s->active_rows;
}

int g3n_text_session_create(g3n_text_session **out, const g3n_text_model *m, const g3n_text_session_params *params,
                            g3n_error *err)
{
    *out = NULL;
    g3n_text_session_params p = params ? *params : g3n_text_session_default_params(m);
    if (p.max_positions <= 0)
        return g3n_error_set(err, "text session: max_positions must be positive (got %lld)",
                             (long long)p.max_positions);
    if (p.chunk_tokens <= 0)
        p.chunk_tokens = 64;
    g3n_text_session *s = calloc(1, sizeof(*s));
    if (!s)
        return g3n_error_set(err, "text session: out of memory");
    s->model = m;
    s->max_positions = p.max_positions;
    s->chunk = p.chunk_tokens < p.max_positions ? p.chunk_tokens : p.max_positions;
    s->window = m->config->sliding_window > 0 ? m->config->sliding_window : p.max_positions;
    s->threads = omp_get_max_threads();
    if (s->threads < 1)
        s->threads = 1;
    s->kv_half = p.kv_type == G3N_KV_F16;
    s->kv_elem = s->kv_half ? sizeof(uint16_t) : sizeof(float);

    const int64_t C = s->chunk, D = m->hidden_size, HD = m->head_dim, NKV = m->num_kv_heads, NH = m->num_heads;
    const int64_t LP = g3n_text_model_per_layer_width(m);
    const int64_t kv_row = NKV * HD;
    int ok = 1;
    s->caches = calloc((size_t)m->num_layers, sizeof(*s->caches));
    ok = ok && s->caches;
    int need_shared_chunk = 0;
    for (int l = 0; ok && l < m->num_layers; l++) {
        const g3n_text_layer *ly = &m->layers[l];
        layer_cache *lc = &s->caches[l];
        if (ly->kv_shared)
            continue;
        lc->ring = ly->type == G3N_LAYER_SLIDING && s->window < s->max_positions;
        lc->slots = lc->ring ? s->window : s->max_positions;
        lc->k = session_alloc_bytes(s, lc->slots * kv_row, s->kv_elem, 1);
        lc->v = session_alloc_bytes(s, lc->slots * kv_row, s->kv_elem, 1);
        ok = ok && lc->k && lc->v;
        if (lc->ring) {
            if (ly->kv_source_of_shared) {
                /* shared layers of this chunk read it after later layers ran: keep its own */
                lc->chunk_k = session_alloc_bytes(s, C * kv_row, s->kv_elem, 0);
                lc->chunk_v = session_alloc_bytes(s, C * kv_row, s->kv_elem, 0);
                ok = ok && lc->chunk_k && lc->chunk_v;
            } else {
                need_shared_chunk = 1;
            }
        }
    }
    if (ok && need_shared_chunk) {
        s->shared_chunk_k = session_alloc_bytes(s, C * kv_row, s->kv_elem, 0);
        s->shared_chunk_v = session_alloc_bytes(s, C * kv_row, s->kv_elem, 0);
        ok = s->shared_chunk_k && s->shared_chunk_v;
        for (int l = 0; ok && l < m->num_layers; l++) {
            layer_cache *lc = &s->caches[l];
            if (lc->ring && !lc->chunk_k) {
                lc->chunk_k = s->shared_chunk_k;
                lc->chunk_v = s->shared_chunk_v;
            }
        }
    }
    if (ok) {
        ok = alloc_chunk_scratch(s);
        /* a full-attention query sees every earlier position; a sliding one at most window + chunk */
        s->scores_stride = s->max_positions + C;
        s->scores_stride = (s->scores_stride + 15) & ~(int64_t)15;
        /* a half cache's decode attends per KV head: scores of its group's query heads at once */
        s->scores = session_alloc(s, (int64_t)s->threads * s->scores_stride * (s->kv_half ? NH / NKV : 1), 0);
        s->att_cap = (s->max_positions < ATTENTION_PRODUCT_KEYS ? s->max_positions : ATTENTION_PRODUCT_KEYS) + C;
        s->att_cap = (s->att_cap + 15) & ~(int64_t)15;
        s->att_k = session_alloc(s, s->att_cap * HD, 0);
        s->att_vt = session_alloc(s, s->att_cap * HD, 0);
        s->att_q = session_alloc(s, (NH / NKV) * C * HD, 0);
        s->att_o = session_alloc(s, (NH / NKV) * C * HD, 0);
        s->att_s = session_alloc(s, (NH / NKV) * C * s->att_cap, 0);
        s->att_row = session_alloc(s, (int64_t)s->threads * HD, 0);
        s->embeds = session_alloc(s, C * D, 0);
        s->per_layer = session_alloc(s, C * LP, 0);
        s->per_layer_tokens = session_alloc(s, C * LP, 0);
        ok = ok && s->scores && s->att_k && s->att_vt && s->att_q && s->att_o && s->att_s && s->att_row &&
             s->embeds && s->per_layer && s->per_layer_tokens;
    }
    if (!ok) {
        g3n_text_session_free(s);
        return g3n_error_set(err, "text session: out of memory (max_positions %lld, chunk %lld)",
                             (long long)p.max_positions, (long long)C);
    }
    *out = s;
    return G3N_OK;
}

static void session_free_scratch(g3n_text_session *s)
{
    float *buffers[] = {s->streams, s->x,      s->laurel,      s->attn,        s->hidden,     s->tmp,
                        s->laurel_low, s->q,   s->attn_heads,  s->gate,        s->up,         s->ple,
                        s->modalities, s->rope_cos[0], s->rope_cos[1], s->rope_sin[0], s->rope_sin[1],
                        s->scores, s->embeds, s->per_layer, s->per_layer_tokens, (float *)s->active_rows,
                        s->att_k, s->att_vt, s->att_q, s->att_o, s->att_s, s->att_row, s->stage_k, s->stage_v};
    for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); i++)
        g3n_aligned_free(buffers[i]);
}

void g3n_text_session_free(g3n_text_session *s)
{
    if (!s)
        return;
    if (s->caches) {
        for (int l = 0; l < s->model->num_layers; l++) {
            layer_cache *lc = &s->caches[l];
            g3n_aligned_free(lc->k);
            g3n_aligned_free(lc->v);
            if (lc->chunk_k != s->shared_chunk_k) {
                g3n_aligned_free(lc->chunk_k);
                g3n_aligned_free(lc->chunk_v);
            }
        }
        free(s->caches);
    }
    g3n_aligned_free(s->shared_chunk_k);
    g3n_aligned_free(s->shared_chunk_v);
    session_free_scratch(s);
    free(s);
}

void g3n_text_session_reset(g3n_text_session *s)
{
    s->position = 0;
}

const g3n_text_model *g3n_text_session_model(const g3n_text_session *s)
{
    return s->model;
}

int64_t g3n_text_session_position(const g3n_text_session *s)
{
    return s->position;
}

g3n_text_session_memory g3n_text_session_memory_usage(const g3n_text_session *s)
{
    g3n_text_session_memory mem = {s->kv_bytes, s->scratch_bytes};
    return mem;
}

g3n_kv_type g3n_text_session_kv_type(const g3n_text_session *s)
{
    return s->kv_half ? G3N_KV_F16 : G3N_KV_F32;
}

void g3n_text_session_set_layer_hook(g3n_text_session *s, g3n_text_layer_hook hook, void *user)
{
    s->hook = hook;
    s->hook_user = user;
}

int64_t g3n_text_session_max_keys_attended(const g3n_text_session *s, int layer)
{
    if (layer < 0 || layer >= s->model->num_layers)
        return 0;
    return s->caches[layer].max_keys;
}

int64_t g3n_text_session_cache_slots(const g3n_text_session *s, int layer)
{
    if (layer < 0 || layer >= s->model->num_layers)
        return 0;
    return s->caches[layer].slots;
}

/* ------------------------------------------------------------------ pieces */

/* sqrt(mean(x^2)) with double accumulation */
static float root_mean_square(const float *x, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return (float)sqrt((double)(float)(sum / (double)n));
}

static float mean_square(const float *x, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return (float)(sum / (double)n);
}

/* Gemma3nTextAltUp.compute_router_modalities: tanh(modality_router(router_norm(x) * (1/D))).
 * x [count][D] -> modalities [count][N]; uses scratch [count][D]. */
static void altup_router_modalities(const g3n_text_model *m, const g3n_text_layer *ly, const float *x,
                                    int64_t count, float *scratch, float *modalities)
{
    const int64_t D = m->hidden_size, N = m->altup_inputs;
    const float router_input_scale = (float)(1.0 / (double)D);
    g3n_rms_norm_rows(x, D, ly->router_norm, scratch, D, count, D, m->config->rms_norm_eps);
    for (int64_t i = 0; i < count * D; i++)
        scratch[i] *= router_input_scale;
    g3n_matmul(scratch, count, (size_t)D, &ly->modality_router, modalities, (size_t)N);
    for (int64_t i = 0; i < count * N; i++)
        modalities[i] = tanhf(modalities[i]);
}

#define ALTUP_SLICE 64 /* positions of the streams per step of altup_predict */

/* Gemma3nTextAltUp.predict, in place on the streams. */
static void altup_predict(const g3n_text_model *m, const g3n_text_layer *ly, float *streams, int64_t count,
                          int64_t stream_stride, float *scratch, float *modalities)
{
    const int64_t D = m->hidden_size;
    const int N = m->altup_inputs;
    altup_router_modalities(m, ly, streams + (int64_t)m->altup_active * stream_stride, count, scratch, modalities);
#pragma omp parallel for schedule(static) if (count > 1)
    for (int64_t t = 0; t < count; t++) {
        /* all_coefs[i][j] = prediction_coefs(modalities)[N*i + j] */
        float coefs[G3N_ALTUP_MAX_INPUTS * G3N_ALTUP_MAX_INPUTS];
        const float *mod = modalities + t * N;
        for (int q = 0; q < N * N; q++) {
            float acc = 0.0f;
            for (int k = 0; k < N; k++)
                acc += ly->prediction_coefs[q * N + k] * mod[k];
            coefs[q] = acc;
        }
        /* in slices of the streams, with the innermost loop over the slice's
         * positions (it vectorises; each element sums in the same order) */
        for (int64_t d0 = 0; d0 < D; d0 += ALTUP_SLICE) {
            const int64_t width = D - d0 < ALTUP_SLICE ? D - d0 : ALTUP_SLICE;
            float in[G3N_ALTUP_MAX_INPUTS][ALTUP_SLICE];
            for (int j = 0; j < N; j++)
                memcpy(in[j], streams + j * stream_stride + t * D + d0, (size_t)width * sizeof(float));
            for (int i = 0; i < N; i++) {
                float acc[ALTUP_SLICE];
                for (int64_t e = 0; e < width; e++)
                    acc[e] = 0.0f;
                for (int j = 0; j < N; j++) {
                    const float c = coefs[N * i + j];
                    for (int64_t e = 0; e < width; e++)
                        acc[e] += in[j][e] * c;
                }
                float *out = streams + i * stream_stride + t * D + d0;
                for (int64_t e = 0; e < width; e++)
                    out[e] = acc[e] + in[i][e]; /* predictions += hidden_states */
            }
        }
    }
}

/* Gemma3nTextAltUp.correct, in place: streams hold the predictions on entry. */
static void altup_correct(const g3n_text_model *m, const g3n_text_layer *ly, float *streams, int64_t count,
                          int64_t stream_stride, const float *activated, float *scratch, float *modalities)
{
    const int64_t D = m->hidden_size;
    const int N = m->altup_inputs;
    altup_router_modalities(m, ly, activated, count, scratch, modalities);
#pragma omp parallel for schedule(static) if (count > 1)
    for (int64_t t = 0; t < count; t++) {
        float coefs[G3N_ALTUP_MAX_INPUTS];
        const float *mod = modalities + t * N;
        for (int i = 0; i < N; i++) {
            float acc = 0.0f;
            for (int k = 0; k < N; k++)
                acc += ly->correction_coefs[i * N + k] * mod[k];
            coefs[i] = acc + 1.0f;
        }
        const float *act = activated + t * D;
        float *active = streams + (int64_t)m->altup_active * stream_stride + t * D;
        /* stream by stream (loops over positions vectorise), the active one last */
        for (int i = 0; i < N; i++) {
            if (i == m->altup_active)
                continue;
            float *s = streams + i * stream_stride + t * D;
            const float c = coefs[i];
            for (int64_t d = 0; d < D; d++)
                s[d] = (act[d] - active[d]) * c + s[d];
        }
        const float c = coefs[m->altup_active];
        for (int64_t d = 0; d < D; d++)
            active[d] = (act[d] - active[d]) * c + active[d];
    }
}

/* Gemma3nTextLaurelBlock.forward: out = x + post_laurel_norm(linear_right(linear_left(x))).
 * low = linear_left(x) [count][R] is already computed (with the attention
 * projections, which read the same x: attention_project). */
static void laurel_forward(const g3n_text_model *m, const g3n_text_layer *ly, const float *x, int64_t count,
                           const float *low, float *out)
{
    const int64_t D = m->hidden_size, R = m->config->laurel_rank;
    g3n_matmul(low, count, (size_t)R, &ly->laurel_right, out, (size_t)D);
    g3n_rms_norm_rows(out, D, ly->post_laurel_norm, out, D, count, D, m->config->rms_norm_eps);
    for (int64_t i = 0; i < count * D; i++)
        out[i] = x[i] + out[i];
}

/* Gemma3nTextMLP._gaussian_topk's cut-off: mean + std(unbiased=False) * icdf(sparsity). */
static float gaussian_topk_cutoff(const g3n_text_layer *ly, const float *g, int64_t I)
{
    double sum = 0.0;
    for (int64_t i = 0; i < I; i++)
        sum += g[i];
    double mean = sum / (double)I, var = 0.0;
    for (int64_t i = 0; i < I; i++)
        var += ((double)g[i] - mean) * ((double)g[i] - mean);
    float mean_f = (float)mean, std_f = (float)sqrt(var / (double)I);
    return mean_f + std_f * ly->sparsity_std_multiplier;
}

/* gelu_pytorch_tanh in place: libm's tanhf on the exact path, the
 * vectorised one (text_math.h, a few ulp away) with the fast formats. */
static void gelu(const g3n_text_model *m, float *x, int64_t n)
{
    if (m->weight_format == G3N_WEIGHTS_EXACT)
        g3n_gelu_tanh(x, x, n);
    else
        g3n_text_gelu_tanh(x, x, n);
}

/* Gemma3nTextMLP.forward (with _gaussian_topk where the pattern is > 0).
 * x [count][D] -> out [count][D]. active: [I] scratch. one_token_rows: the
 * rows are decode steps (of one session or of a batch's sessions): sparse
 * layers take the per-row sparse path at any count, so that a batch's row
 * computes what the session alone would (the transposed down_proj). */
static void mlp_forward(const g3n_text_model *m, const g3n_text_layer *ly, const float *x, int64_t count,
                        int one_token_rows, float *gate, float *up, int32_t *active, float *out)
{
    const int64_t D = m->hidden_size, I = ly->intermediate_size;
    const int sparse_decode = ly->sparse && ly->down_proj_t.data && (count <= 4 || one_token_rows);
    if (sparse_decode) {
        g3n_matmul(x, count, (size_t)D, &ly->gate_proj, gate, (size_t)I);
        /* Sparse path (decode): relu(gate - cutoff) leaves ~5% of the entries
         * nonzero and gelu(0) * up = 0, so only those up_proj rows and down_proj
         * columns (rows of the transposed copy) contribute: the same products,
         * summed in another order. */
        for (int64_t t = 0; t < count; t++) {
            float *g = gate + t * I;
            const float cutoff = gaussian_topk_cutoff(ly, g, I);
            int64_t n = 0;
            for (int64_t i = 0; i < I; i++) {
                float v = g[i] - cutoff;
                if (v > 0.0f) {
                    active[n] = (int32_t)i;
                    g[n++] = v;
                }
            }
            gelu(m, g, n);
            g3n_matmul_gather(x + t * D, &ly->up_proj, active, n, up);
            for (int64_t j = 0; j < n; j++)
                g[j] = g[j] * up[j];
            g3n_matrix_combine_rows(&ly->down_proj_t, active, g, n, out + t * D);
        }
        return;
    }
    /* gate_proj and up_proj read the same x: one pass */
    const g3n_matmul_output gate_up[2] = {{&ly->gate_proj, gate, (size_t)I}, {&ly->up_proj, up, (size_t)I}};
    g3n_matmul_many(x, count, (size_t)D, gate_up, 2);
#pragma omp parallel for schedule(static) if (count > 1)
    for (int64_t t = 0; t < count; t++) {
        float *g = gate + t * I;
        const float *u = up + t * I;
        if (ly->sparse) {
            /* relu(x - cutoff) */
            const float cutoff = gaussian_topk_cutoff(ly, g, I);
            for (int64_t i = 0; i < I; i++) {
                float v = g[i] - cutoff;
                g[i] = v > 0.0f ? v : 0.0f;
            }
        }
        gelu(m, g, I);
        for (int64_t i = 0; i < I; i++)
            g[i] = g[i] * u[i];
    }
    g3n_matmul(gate, count, (size_t)I, &ly->down_proj, out, (size_t)D);
}

/* apply_rotary_pos_emb on one head vector (rotate_half layout). */
static void apply_rope(float *x, const float *cos_t, const float *sin_t, int64_t half)
{
    for (int64_t i = 0; i < half; i++) {
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cos_t[i] - x2 * sin_t[i];
        x[i + half] = x2 * cos_t[i] + x1 * sin_t[i];
    }
}

static void rope_tables(const float *inv_freq, int64_t first_position, int64_t count, int64_t half, float *cos_out,
                        float *sin_out)
{
    for (int64_t t = 0; t < count; t++) {
        float pos = (float)(first_position + t);
        for (int64_t i = 0; i < half; i++) {
            float angle = pos * inv_freq[i]; /* f32 product, as the reference's matmul */
            cos_out[t * half + i] = (float)cos((double)angle);
            sin_out[t * half + i] = (float)sin((double)angle);
        }
    }
}

/* Key/value row of `position` (elem bytes per value) for a cache read during the chunk starting at chunk_start. */
static inline const void *cache_row(const layer_cache *lc, const void *store, const void *chunk_store,
                                    int64_t position, int64_t chunk_start, int64_t kv_row, size_t elem)
{
    if (lc->ring) {
        if (position >= chunk_start)
            return (const char *)chunk_store + (size_t)((position - chunk_start) * kv_row) * elem;
        return (const char *)store + (size_t)((position % lc->slots) * kv_row) * elem;
    }
    return (const char *)store + (size_t)(position * kv_row) * elem;
}

/* Moves the chunk's K/V of a sliding layer into its ring (only the last `slots` matter). */
static void commit_ring(layer_cache *lc, int64_t chunk_start, int64_t count, int64_t kv_row, size_t elem)
{
    int64_t first = chunk_start + count - lc->slots;
    if (first < chunk_start)
        first = chunk_start;
    const size_t row_bytes = (size_t)kv_row * elem;
    for (int64_t p = first; p < chunk_start + count; p++) {
        memcpy((char *)lc->k + (size_t)(p % lc->slots) * row_bytes,
               (const char *)lc->chunk_k + (size_t)(p - chunk_start) * row_bytes, row_bytes);
        memcpy((char *)lc->v + (size_t)(p % lc->slots) * row_bytes,
               (const char *)lc->chunk_v + (size_t)(p - chunk_start) * row_bytes, row_bytes);
    }
}

/* Stores count rows of K and V (f32, normed and roped) at positions chunk_start.. of
 * session s's cache of one layer (its ring's chunk buffers, or the cache), in the
 * cache's element type. */
static void kv_store(const g3n_text_session *s, layer_cache *lc, int64_t chunk_start, int64_t count, const float *k,
                     const float *v)
{
    const int64_t kv_row = (int64_t)s->model->num_kv_heads * s->model->head_dim, n = count * kv_row;
    const size_t offset = lc->ring ? 0 : (size_t)(chunk_start * kv_row) * s->kv_elem;
    char *k_dst = (char *)(lc->ring ? lc->chunk_k : lc->k) + offset;
    char *v_dst = (char *)(lc->ring ? lc->chunk_v : lc->v) + offset;
    if (s->kv_half) {
        g3n_kv_half_from_f32(k, (uint16_t *)k_dst, n);
        g3n_kv_half_from_f32(v, (uint16_t *)v_dst, n);
    } else {
        memcpy(k_dst, k, (size_t)n * sizeof(float));
        memcpy(v_dst, v, (size_t)n * sizeof(float));
    }
}

/* The products of active_prediction_normed x [count][D], in one pass:
 * q_proj -> s->q, k_proj/v_proj -> s->stage_k/stage_v (unless KV-shared)
 * (Gemma3nTextAttention.forward's projections) and laurel.linear_left ->
 * laurel_low (Gemma3nTextLaurelBlock.forward's first product). */
static void attention_project(g3n_text_session *s, const g3n_text_layer *ly, const float *x, int64_t chunk_start,
                              int64_t count, float *laurel_low)
{
    const g3n_text_model *m = s->model;
    const int64_t D = m->hidden_size, kv_row = (int64_t)m->num_kv_heads * m->head_dim;
    const int64_t q_row = (int64_t)m->num_heads * m->head_dim;
    g3n_matmul_output outputs[4] = {{&ly->q_proj, s->q, (size_t)q_row},
                                    {&ly->laurel_left, laurel_low, (size_t)m->config->laurel_rank}};
    int n = 2;
    (void)chunk_start;
    if (!ly->kv_shared) { /* normed, roped and stored by attention_forward */
        outputs[n++] = (g3n_matmul_output){&ly->k_proj, s->stage_k, (size_t)kv_row};
        outputs[n++] = (g3n_matmul_output){&ly->v_proj, s->stage_v, (size_t)kv_row};
    }
    g3n_matmul_many(x, count, (size_t)D, outputs, n);
}

/* The attention core of a prefill chunk as matrix products, per KV head g:
 * the keys of every position some query of the chunk sees, K [npos][HD] and
 * Vᵀ [HD][npos] gathered from the cache; the queries of g's heads stacked
 * head-major Q [group·count][HD]; S = Q·Kᵀ (g3n_matmul), each row masked to
 * its visible range and softmaxed (as the per-key loop: max, expf, double
 * sum), then O = P·V = P·(Vᵀ)ᵀ (g3n_matmul) scattered to attn_heads.
 * Masked entries are zeros in P: a chunk wastes at most its own triangle. */
static void attention_by_products(g3n_text_session *s, const layer_cache *lc, int64_t chunk_start, int64_t count,
                                  int sliding, int64_t *max_keys)
{
    const g3n_text_model *m = s->model;
    const int64_t HD = m->head_dim, window = s->window, cap = s->att_cap;
    const int NH = m->num_heads, NKV = m->num_kv_heads, group = NH / NKV;
    const int64_t kv_row = (int64_t)NKV * HD, q_row = (int64_t)NH * HD;
    const int64_t p0 = sliding && chunk_start - window + 1 > 0 ? chunk_start - window + 1 : 0;
    const int64_t npos = chunk_start + count - p0, rows = (int64_t)group * count;
    for (int64_t t = 0; t < count; t++) {
        const int64_t qpos = chunk_start + t, first = sliding && qpos - window + 1 > 0 ? qpos - window + 1 : 0;
        if (qpos - first + 1 > *max_keys)
            *max_keys = qpos - first + 1;
    }
    const size_t elem = s->kv_elem, head_offset = (size_t)HD * elem;
    for (int g = 0; g < NKV; g++) {
#pragma omp parallel num_threads(s->threads)
        {
            float *widened = s->att_row + (int64_t)omp_get_thread_num() * HD;
#pragma omp for schedule(static) nowait
            for (int64_t j = 0; j < npos; j++) {
                const char *kr =
                    (const char *)cache_row(lc, lc->k, lc->chunk_k, p0 + j, chunk_start, kv_row, elem) + g * head_offset;
                const char *vr =
                    (const char *)cache_row(lc, lc->v, lc->chunk_v, p0 + j, chunk_start, kv_row, elem) + g * head_offset;
                if (s->kv_half) {
                    g3n_kv_half_to_f32((const uint16_t *)kr, s->att_k + j * HD, HD);
                    g3n_kv_half_to_f32((const uint16_t *)vr, widened, HD);
                    for (int64_t d = 0; d < HD; d++)
                        s->att_vt[d * cap + j] = widened[d];
                } else {
                    memcpy(s->att_k + j * HD, kr, sizeof(float) * (size_t)HD);
                    const float *v32 = (const float *)vr;
                    for (int64_t d = 0; d < HD; d++)
                        s->att_vt[d * cap + j] = v32[d];
                }
            }
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                const int64_t hh = r / count, t = r % count;
                memcpy(s->att_q + r * HD, s->q + t * q_row + (g * group + hh) * HD, sizeof(float) * (size_t)HD);
            }
        }
        const g3n_matrix keys = {G3N_DTYPE_F32, npos, HD, (size_t)HD * sizeof(float), s->att_k};
        g3n_matmul(s->att_q, rows, (size_t)HD, &keys, s->att_s, (size_t)cap);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t qpos = chunk_start + r % count;
            const int64_t first = sliding && qpos - window + 1 > 0 ? qpos - window + 1 : 0;
            const int64_t lo = first - p0, hi = qpos - p0;
            float *row = s->att_s + r * cap;
            float best = -INFINITY;
            for (int64_t j = lo; j <= hi; j++)
                best = row[j] > best ? row[j] : best;
            double total = 0.0;
            for (int64_t j = lo; j <= hi; j++) {
                float e = expf(row[j] - best);
                row[j] = e;
                total += e;
            }
            const float inv = (float)(1.0 / total);
            for (int64_t j = 0; j < lo; j++)
                row[j] = 0.0f;
            for (int64_t j = lo; j <= hi; j++)
                row[j] *= inv;
            for (int64_t j = hi + 1; j < npos; j++)
                row[j] = 0.0f;
        }
        const g3n_matrix values = {G3N_DTYPE_F32, HD, npos, (size_t)cap * sizeof(float), s->att_vt};
        g3n_matmul(s->att_s, rows, (size_t)cap, &values, s->att_o, (size_t)HD);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t hh = r / count, t = r % count;
            memcpy(s->attn_heads + t * q_row + (g * group + hh) * HD, s->att_o + r * HD, sizeof(float) * (size_t)HD);
        }
    }
}

/* Gemma3nTextAttention.forward for the chunk's rows after attention_project
 * (q and stage_k/stage_v hold the projections) -> out [count][D] (o_proj
 * output). In a batch's scratch (s->rows) row t is the next token of session
 * rows[t] at row_positions[t], attending to that session's cache. */
static void attention_forward(g3n_text_session *s, const g3n_text_layer *ly, int64_t chunk_start, int64_t count,
                              float *out)
{
    const g3n_text_model *m = s->model;
    const int64_t D = m->hidden_size, HD = m->head_dim, half = HD / 2;
    const int NH = m->num_heads, NKV = m->num_kv_heads, group = NH / NKV;
    const int64_t kv_row = (int64_t)NKV * HD, q_row = (int64_t)NH * HD;
    const double eps = m->config->rms_norm_eps;
    int count_done = 0;
    const int type = ly->type == G3N_LAYER_SLIDING ? 0 : 1;
    const float *cos_t = s->rope_cos[type], *sin_t = s->rope_sin[type];
    g3n_text_session *const *rows = s->rows;

    /* q = rope(q_norm(q_proj(x))) per head */
#pragma omp parallel for schedule(static) if (count > 1)
    for (int64_t t = 0; t < count; t++)
        for (int h = 0; h < NH; h++) {
            float *qh = s->q + t * q_row + h * HD;
            g3n_rms_norm(qh, ly->q_norm, qh, HD, eps);
            apply_rope(qh, cos_t + t * half, sin_t + t * half, half);
        }

    if (!ly->kv_shared) {
        /* k = rope(k_norm(k_proj(x))), v = v_norm(v_proj(x)) (no weight), then into the cache */
#pragma omp parallel for schedule(static) if (count > 1)
        for (int64_t t = 0; t < count; t++)
            for (int g = 0; g < NKV; g++) {
                float *kh = s->stage_k + t * kv_row + g * HD;
                float *vh = s->stage_v + t * kv_row + g * HD;
                g3n_rms_norm(kh, ly->k_norm, kh, HD, eps);
                apply_rope(kh, cos_t + t * half, sin_t + t * half, half);
                g3n_rms_norm(vh, NULL, vh, HD, eps);
            }
        if (rows) {
            for (int64_t t = 0; t < count; t++)
                kv_store(rows[t], &rows[t]->caches[ly->index], s->row_positions[t], 1, s->stage_k + t * kv_row,
                         s->stage_v + t * kv_row);
        } else {
            kv_store(s, &s->caches[ly->index], chunk_start, count, s->stage_k, s->stage_v);
        }
    }

    /* softmax(q k^T * 1.0 + mask) v, with the causal / sliding-window visibility:
     * full: k <= q; sliding: q - W < k <= q. */
    const int sliding = ly->type == G3N_LAYER_SLIDING;
    const int64_t window = s->window;
    int64_t max_keys = 0;
    int team = s->threads;
    if (rows) {
        for (int64_t t = 0; t < count; t++) {
            const int64_t qpos = s->row_positions[t];
            const int64_t nkeys = sliding && qpos - window + 1 > 0 ? window : qpos + 1;
            layer_cache *own = &rows[t]->caches[ly->index];
            if (nkeys > own->max_keys)
                own->max_keys = nkeys;
            if (rows[t]->threads < team)
                team = rows[t]->threads; /* the rows' score buffers have that many slices */
        }
    } else {
        max_keys = s->caches[ly->index].max_keys;
        const int64_t range_start = sliding && chunk_start - window + 1 > 0 ? chunk_start - window + 1 : 0;
        if (count >= 8 && chunk_start + count - range_start <= s->att_cap) {
            attention_by_products(s, &s->caches[ly->kv_source], chunk_start, count, sliding, &max_keys);
            count_done = 1;
        }
    }
    /* one token over a short context: less work than a parallel region costs */
    const int parallel = count > 1 || NH * (chunk_start + count) * HD > 65536;
    /* a half cache: one task per KV head, its group's query heads together (each
     * cache row read and widened once for all of them, not once per head) */
    int grouped = !count_done && group <= G3N_KV_HALF_MAX_HEADS;
    if (rows) {
        for (int64_t t = 0; t < count && grouped; t++)
            grouped = rows[t]->kv_half;
    } else {
        grouped = grouped && s->kv_half;
    }
    if (grouped) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) reduction(max : max_keys) if (parallel)
        for (int64_t task = 0; task < count * NKV; task++) {
            const int64_t t = task / NKV;
            const int g = (int)(task % NKV);
            const g3n_text_session *owner = rows ? rows[t] : s;
            const layer_cache *lc = &owner->caches[ly->kv_source];
            const int64_t start = rows ? s->row_positions[t] : chunk_start;
            const int64_t qpos = rows ? start : chunk_start + t;
            const size_t elem = owner->kv_elem, head_offset = (size_t)g * (size_t)HD * elem;
            const int64_t first = sliding && qpos - window + 1 > 0 ? qpos - window + 1 : 0;
            const int64_t nkeys = qpos - first + 1, stride = owner->scores_stride;
            if (nkeys > max_keys)
                max_keys = nkeys;
            float *scores = owner->scores + (int64_t)omp_get_thread_num() * stride * group; /* [group][stride] */
            const float *q0 = s->q + t * q_row + (int64_t)g * group * HD;
            float best[G3N_KV_HALF_MAX_HEADS], dots[G3N_KV_HALF_MAX_HEADS], coefs[G3N_KV_HALF_MAX_HEADS];
            float inv[G3N_KV_HALF_MAX_HEADS];
            for (int hh = 0; hh < group; hh++)
                best[hh] = -INFINITY;
            for (int64_t j = 0; j < nkeys; j++) {
                const uint16_t *kr = (const uint16_t *)((const char *)cache_row(lc, lc->k, lc->chunk_k, first + j,
                                                                                start, kv_row, elem) +
                                                        head_offset);
                g3n_kv_half_dot_group(q0, HD, group, kr, HD, dots);
                for (int hh = 0; hh < group; hh++) {
                    scores[hh * stride + j] = dots[hh];
                    if (dots[hh] > best[hh])
                        best[hh] = dots[hh];
                }
            }
            for (int hh = 0; hh < group; hh++) {
                float *row = scores + hh * stride;
                double total = 0.0;
                for (int64_t j = 0; j < nkeys; j++) {
                    float e = expf(row[j] - best[hh]);
                    row[j] = e;
                    total += e;
                }
                inv[hh] = (float)(1.0 / total);
            }
            float *o0 = s->attn_heads + t * q_row + (int64_t)g * group * HD;
            memset(o0, 0, (size_t)(group * HD) * sizeof(float));
            for (int64_t j = 0; j < nkeys; j++) {
                const uint16_t *vr = (const uint16_t *)((const char *)cache_row(lc, lc->v, lc->chunk_v, first + j,
                                                                                start, kv_row, elem) +
                                                        head_offset);
                for (int hh = 0; hh < group; hh++)
                    coefs[hh] = scores[hh * stride + j] * inv[hh];
                g3n_kv_half_axpy_group(o0, HD, group, coefs, vr, HD);
            }
        }
    } else if (!count_done) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) reduction(max : max_keys) if (parallel)
        for (int64_t task = 0; task < count * NH; task++) {
            const int64_t t = task / NH;
            const int h = (int)(task % NH), g = h / group;
            const g3n_text_session *owner = rows ? rows[t] : s;
            const layer_cache *lc = &owner->caches[ly->kv_source];
            const int64_t start = rows ? s->row_positions[t] : chunk_start;
            const int64_t qpos = rows ? start : chunk_start + t;
            const size_t elem = owner->kv_elem, head_offset = (size_t)g * (size_t)HD * elem;
            int64_t first = 0;
            if (sliding && qpos - window + 1 > 0)
                first = qpos - window + 1;
            const int64_t nkeys = qpos - first + 1;
            if (nkeys > max_keys)
                max_keys = nkeys;
            float *scores = owner->scores + (int64_t)omp_get_thread_num() * owner->scores_stride;
            const float *qh = s->q + t * q_row + h * HD;
            float best = -INFINITY;
            if (owner->kv_half) {
                for (int64_t j = 0; j < nkeys; j++) {
                    const uint16_t *kr =
                        (const uint16_t *)((const char *)cache_row(lc, lc->k, lc->chunk_k, first + j, start, kv_row,
                                                                   elem) + head_offset);
                    float v = g3n_kv_half_dot(qh, kr, HD);
                    scores[j] = v;
                    if (v > best)
                        best = v;
                }
            } else {
                for (int64_t j = 0; j < nkeys; j++) {
                    const float *kr =
                        (const float *)((const char *)cache_row(lc, lc->k, lc->chunk_k, first + j, start, kv_row,
                                                                elem) + head_offset);
                    float v = g3n_dot(qh, kr, HD);
                    scores[j] = v;
                    if (v > best)
                        best = v;
                }
            }
            double total = 0.0;
            for (int64_t j = 0; j < nkeys; j++) {
                float e = expf(scores[j] - best);
                scores[j] = e;
                total += e;
            }
            float inv = (float)(1.0 / total);
            float *o = s->attn_heads + t * q_row + h * HD;
            memset(o, 0, (size_t)HD * sizeof(float));
            if (owner->kv_half) {
                for (int64_t j = 0; j < nkeys; j++) {
                    const uint16_t *vr =
                        (const uint16_t *)((const char *)cache_row(lc, lc->v, lc->chunk_v, first + j, start, kv_row,
                                                                   elem) + head_offset);
                    g3n_kv_half_axpy(o, scores[j] * inv, vr, HD);
                }
            } else {
                for (int64_t j = 0; j < nkeys; j++) {
                    const float *vr =
                        (const float *)((const char *)cache_row(lc, lc->v, lc->chunk_v, first + j, start, kv_row,
                                                                elem) + head_offset);
                    g3n_axpy(o, scores[j] * inv, vr, o, HD);
                }
            }
        }
    }
    if (!rows)
        s->caches[ly->index].max_keys = max_keys;
    if (!ly->kv_shared && !ly->kv_source_of_shared) {
        /* Sliding layers that no shared layer reads enter the ring now; the
         * others wait for the end of the chunk (their chunk K/V is read later). */
        if (rows) {
            for (int64_t t = 0; t < count; t++) {
                layer_cache *own = &rows[t]->caches[ly->index];
                if (own->ring)
                    commit_ring(own, s->row_positions[t], 1, kv_row, rows[t]->kv_elem);
            }
        } else if (s->caches[ly->index].ring) {
            commit_ring(&s->caches[ly->index], chunk_start, count, kv_row, s->kv_elem);
        }
    }
    g3n_matmul(s->attn_heads, count, (size_t)q_row, &ly->o_proj, out, (size_t)D);
}

/* Gemma3nTextDecoderLayer.forward on the chunk's streams (in place). */
static void decoder_layer_forward(g3n_text_session *s, const g3n_text_layer *ly, const float *per_layer_inputs,
                                  int64_t chunk_start, int64_t count)
{
    const g3n_text_model *m = s->model;
    const int64_t D = m->hidden_size, P = m->per_layer_dim, LP = g3n_text_model_per_layer_width(m);
    const int64_t stride = s->chunk * D;
    const double eps = m->config->rms_norm_eps;
    const int N = m->altup_inputs;
    float *active = s->streams + (int64_t)m->altup_active * stride;

    /* predictions = altup.predict(hidden_states); active_prediction = predictions[0] */
    altup_predict(m, ly, s->streams, count, stride, s->tmp, s->modalities);
    /* active_prediction_normed = input_layernorm(active_prediction) */
    g3n_rms_norm_rows(active, D, ly->input_layernorm, s->x, D, count, D, eps);
    /* q/k/v and laurel's linear_left read active_prediction_normed: one pass */
    attention_project(s, ly, s->x, chunk_start, count, s->laurel_low);
    /* laurel_output = laurel(active_prediction_normed) */
    laurel_forward(m, ly, s->x, count, s->laurel_low, s->laurel);
    /* attn = post_attention_layernorm(self_attn(active_prediction_normed)) */
    attention_forward(s, ly, chunk_start, count, s->attn);
    g3n_rms_norm_rows(s->attn, D, ly->post_attention_layernorm, s->attn, D, count, D, eps);
    /* attn_laurel = ((active_prediction + attn) + laurel_output) / sqrt(2) */
    const float sqrt2 = (float)sqrt(2.0);
    for (int64_t i = 0; i < count * D; i++)
        s->hidden[i] = ((active[i] + s->attn[i]) + s->laurel[i]) / sqrt2;
    /* attn_ffw_laurel_gated = attn_laurel + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(.))) */
    g3n_rms_norm_rows(s->hidden, D, ly->pre_feedforward_layernorm, s->x, D, count, D, eps);
    mlp_forward(m, ly, s->x, count, s->rows != NULL, s->gate, s->up, s->active_rows, s->attn);
    g3n_rms_norm_rows(s->attn, D, ly->post_feedforward_layernorm, s->attn, D, count, D, eps);
    for (int64_t i = 0; i < count * D; i++)
        s->hidden[i] = s->hidden[i] + s->attn[i];
    /* corrected_predictions = altup.correct(predictions, attn_ffw_laurel_gated) */
    altup_correct(m, ly, s->streams, count, stride, s->hidden, s->tmp, s->modalities);

    /* first_prediction = per-layer branch on corrected[0]; added to streams 1.. */
    for (int64_t t = 0; t < count; t++)
        for (int64_t d = 0; d < D; d++)
            s->tmp[t * D + d] = active[t * D + d] * ly->correct_output_scale[d];
    g3n_matmul(s->tmp, count, (size_t)D, &ly->per_layer_input_gate, s->ple, (size_t)P);
    g3n_gelu_tanh(s->ple, s->ple, count * P);
    for (int64_t t = 0; t < count; t++) {
        const float *pli = per_layer_inputs + t * LP + (int64_t)ly->per_layer_slot * P;
        for (int64_t i = 0; i < P; i++)
            s->ple[t * P + i] *= pli[i];
    }
    g3n_matmul(s->ple, count, (size_t)P, &ly->per_layer_projection, s->tmp, (size_t)D);
    g3n_rms_norm_rows(s->tmp, D, ly->post_per_layer_input_norm, s->tmp, D, count, D, eps);
    for (int i = 0; i < N; i++) {
        if (i == m->altup_active)
            continue;
        float *stream = s->streams + i * stride;
        for (int64_t j = 0; j < count * D; j++)
            stream[j] += s->tmp[j];
    }
}

/* Gemma3nTextModel.forward's AltUp expansion: stream 0 = embeds, stream i =
 * altup_projections[i-1](embeds) scaled to the embeddings' magnitude. */
static void altup_expand(g3n_text_session *s, const float *embeds, int64_t count)
{
    const g3n_text_model *m = s->model;
    const int64_t D = m->hidden_size, stride = s->chunk * D;
    memcpy(s->streams, embeds, (size_t)(count * D) * sizeof(float));
    for (int i = 1; i < m->altup_inputs; i++) {
        float *stream = s->streams + i * stride;
        g3n_matmul(embeds, count, (size_t)D, &m->altup_projections[i - 1], stream, (size_t)D);
        for (int64_t t = 0; t < count; t++) {
            float target = root_mean_square(embeds + t * D, D);
            float ms = mean_square(stream + t * D, D);
            float magnitude = sqrtf(ms > 1e-5f ? ms : 1e-5f);
            for (int64_t d = 0; d < D; d++)
                stream[t * D + d] = stream[t * D + d] * target / magnitude;
        }
    }
}

/* The end of Gemma3nTextModel.forward (unembed projections, mean of the
 * streams, final norm) and the head (tied lm_head, soft-capping), for `rows`
 * tokens starting at chunk row `first_row`. */
static void head_forward(g3n_text_session *s, int64_t first_row, int64_t rows, float *logits)
{
    const g3n_text_model *m = s->model;
    const int64_t D = m->hidden_size, stride = s->chunk * D, V = m->vocab_size;
    const int N = m->altup_inputs;
    const float *s0 = s->streams + first_row * D;
    float *sum = s->x;
    memcpy(sum, s0, (size_t)(rows * D) * sizeof(float));
    for (int i = 1; i < N; i++) {
        float *u = s->tmp;
        g3n_matmul(s->streams + i * stride + first_row * D, rows, (size_t)D, &m->altup_unembed_projections[i - 1], u,
                   (size_t)D);
        for (int64_t t = 0; t < rows; t++) {
            float target = root_mean_square(s0 + t * D, D);
            float ms = mean_square(u + t * D, D);
            float magnitude = sqrtf(ms > 1e-5f ? ms : 1e-5f);
            for (int64_t d = 0; d < D; d++)
                sum[t * D + d] += u[t * D + d] * target / magnitude;
        }
    }
    for (int64_t i = 0; i < rows * D; i++)
        sum[i] = sum[i] / (float)N;
    g3n_rms_norm_rows(sum, D, m->final_norm, sum, D, rows, D, m->config->rms_norm_eps);
    g3n_matmul(sum, rows, (size_t)D, &m->lm_head, logits, (size_t)V);
    const float cap = (float)m->config->final_logit_softcapping;
    if (cap > 0.0f && m->weight_format != G3N_WEIGHTS_EXACT) {
        /* the fast formats: vectorised tanh (text_math.h) */
        const int64_t total = rows * V, slice = 16384;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < total; i += slice)
            g3n_text_softcap(logits + i, total - i < slice ? total - i : slice, cap);
    } else if (cap > 0.0f) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows * V; i++)
            logits[i] = tanhf(logits[i] / cap) * cap;
    }
}

int g3n_text_session_forward(g3n_text_session *s, const float *inputs_embeds, const float *per_layer_inputs,
                             int64_t count, float *logits, int all_logits, g3n_error *err)
{
    const g3n_text_model *m = s->model;
    const int64_t D = m->hidden_size, HD = m->head_dim, V = m->vocab_size;
    const int64_t LP = g3n_text_model_per_layer_width(m), kv_row = (int64_t)m->num_kv_heads * HD;
    if (count <= 0)
        return g3n_error_set(err, "text forward: no tokens");
    if (s->position + count > s->max_positions)
        return g3n_error_set(err, "text forward: %lld + %lld positions exceed the session's max_positions %lld",
                             (long long)s->position, (long long)count, (long long)s->max_positions);
    for (int64_t done = 0; done < count; done += s->chunk) {
        const int64_t n = count - done < s->chunk ? count - done : s->chunk;
        const int64_t start = s->position;
        rope_tables(m->inv_freq_sliding, start, n, HD / 2, s->rope_cos[0], s->rope_sin[0]);
        rope_tables(m->inv_freq_full, start, n, HD / 2, s->rope_cos[1], s->rope_sin[1]);
        altup_expand(s, inputs_embeds + done * D, n);
        if (s->hook)
            s->hook(s->hook_user, -1, s->streams, m->altup_inputs, s->chunk * D, start, n, D);
        for (int l = 0; l < m->num_layers; l++) {
            decoder_layer_forward(s, &m->layers[l], per_layer_inputs + done * LP, start, n);
            if (s->hook)
                s->hook(s->hook_user, l, s->streams, m->altup_inputs, s->chunk * D, start, n, D);
        }
        for (int l = 0; l < m->num_layers; l++) {
            layer_cache *lc = &s->caches[l];
            if (lc->ring && m->layers[l].kv_source_of_shared && !m->layers[l].kv_shared)
                commit_ring(lc, start, n, kv_row, s->kv_elem);
        }
        s->position += n;
        if (logits) {
            if (all_logits)
                head_forward(s, 0, n, logits + done * V);
            else if (done + n == count)
                head_forward(s, n - 1, 1, logits);
        }
    }
    return G3N_OK;
}

int g3n_text_session_forward_ids(g3n_text_session *s, const int32_t *ids, int64_t count, float *logits,
                                 int all_logits, g3n_error *err)
{
    const g3n_text_model *m = s->model;
    if (!m->has_per_layer_tables)
        return g3n_error_set(err, "text forward: this model was loaded without the per-layer tables "
                                  "(decoder role); its inputs come from the embedder");
    /* validate everything first: a bad id must not leave half a prompt in the cache */
    if (count <= 0)
        return g3n_error_set(err, "text forward: no tokens");
    if (s->position + count > s->max_positions)
        return g3n_error_set(err, "text forward: %lld + %lld positions exceed the session's max_positions %lld",
                             (long long)s->position, (long long)count, (long long)s->max_positions);
    for (int64_t t = 0; t < count; t++)
        if (ids[t] < 0 || ids[t] >= m->vocab_size)
            return g3n_error_set(err, "token id %d at position %lld is outside the vocabulary [0, %lld)", ids[t],
                                 (long long)t, (long long)m->vocab_size);
    for (int64_t done = 0; done < count; done += s->chunk) {
        const int64_t n = count - done < s->chunk ? count - done : s->chunk;
        if (g3n_text_embedder_embed_ids(&m->embedder, ids + done, n, s->embeds, s->per_layer, s->per_layer_tokens,
                                        err) != G3N_OK)
            return G3N_ERR;
        float *out = NULL;
        int all = all_logits;
        if (logits) {
            if (all_logits)
                out = logits + done * m->vocab_size;
            else if (done + n == count)
                out = logits;
        }
        if (g3n_text_session_forward(s, s->embeds, s->per_layer, n, out, all, err) != G3N_OK)
            return G3N_ERR;
    }
    return G3N_OK;
}

/* ------------------------------------------------------------------ continuous batching */

struct g3n_text_batch {
    g3n_text_session scratch; /* chunk = capacity rows, no cache of its own (rows point at the sessions) */
    int64_t *positions;       /* [capacity] */
};

int g3n_text_batch_create(g3n_text_batch **out, const g3n_text_model *m, int max_sessions, g3n_error *err)
{
    *out = NULL;
    if (max_sessions < 1 || max_sessions > 4096)
        return g3n_error_set(err, "text batch: max_sessions %d outside [1, 4096]", max_sessions);
    g3n_text_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return g3n_error_set(err, "text batch: out of memory");
    g3n_text_session *s = &b->scratch;
    s->model = m;
    s->chunk = max_sessions;
    s->max_positions = INT64_MAX / 4;
    /* no sliding window: every key visible, as a session whose window is its whole context */
    s->window = m->config->sliding_window > 0 ? m->config->sliding_window : INT64_MAX / 4;
    s->threads = omp_get_max_threads();
    if (s->threads < 1)
        s->threads = 1;
    b->positions = calloc((size_t)max_sessions, sizeof(*b->positions));
    if (!b->positions || !alloc_chunk_scratch(s)) {
        g3n_text_batch_free(b);
        return g3n_error_set(err, "text batch: out of memory for %d rows", max_sessions);
    }
    *out = b;
    return G3N_OK;
}

void g3n_text_batch_free(g3n_text_batch *b)
{
    if (!b)
        return;
    session_free_scratch(&b->scratch);
    free(b->positions);
    free(b);
}

int g3n_text_batch_capacity(const g3n_text_batch *b)
{
    return (int)b->scratch.chunk;
}

int g3n_text_batch_forward(g3n_text_batch *b, g3n_text_session *const *sessions, int count,
                           const float *inputs_embeds, const float *per_layer_inputs, float *logits, g3n_error *err)
{
    g3n_text_session *s = &b->scratch;
    const g3n_text_model *m = s->model;
    const int64_t HD = m->head_dim, half = HD / 2, kv_row = (int64_t)m->num_kv_heads * HD;
    if (count < 1 || count > s->chunk)
        return g3n_error_set(err, "text batch: %d sessions outside [1, %lld]", count, (long long)s->chunk);
    int64_t top = 0;
    for (int r = 0; r < count; r++) {
        const g3n_text_session *row = sessions[r];
        if (!row || row->model != m)
            return g3n_error_set(err, "text batch: session %d is %s", r, row ? "of another model" : "NULL");
        for (int q = 0; q < r; q++)
            if (sessions[q] == row)
                return g3n_error_set(err, "text batch: session %d is also row %d (one step per session)", r, q);
        if (row->position + 1 > row->max_positions)
            return g3n_error_set(err, "text batch: session %d is full (%lld positions, its max_positions)", r,
                                 (long long)row->max_positions);
        b->positions[r] = row->position;
        if (row->position > top)
            top = row->position;
    }
    for (int r = 0; r < count; r++) {
        rope_tables(m->inv_freq_sliding, b->positions[r], 1, half, s->rope_cos[0] + r * half,
                    s->rope_sin[0] + r * half);
        rope_tables(m->inv_freq_full, b->positions[r], 1, half, s->rope_cos[1] + r * half, s->rope_sin[1] + r * half);
    }
    s->rows = sessions;
    s->row_positions = b->positions;
    altup_expand(s, inputs_embeds, count);
    for (int l = 0; l < m->num_layers; l++) {
        decoder_layer_forward(s, &m->layers[l], per_layer_inputs, top, count);
        for (int r = 0; r < count; r++) /* each session's hook sees its own row */
            if (sessions[r]->hook)
                sessions[r]->hook(sessions[r]->hook_user, l, s->streams + r * m->hidden_size, m->altup_inputs,
                                  s->chunk * m->hidden_size, b->positions[r], 1, m->hidden_size);
    }
    for (int l = 0; l < m->num_layers; l++) {
        if (!m->layers[l].kv_source_of_shared || m->layers[l].kv_shared)
            continue;
        for (int r = 0; r < count; r++) {
            layer_cache *lc = &sessions[r]->caches[l];
            if (lc->ring)
                commit_ring(lc, b->positions[r], 1, kv_row, sessions[r]->kv_elem);
        }
    }
    for (int r = 0; r < count; r++)
        sessions[r]->position += 1;
    if (logits)
        head_forward(s, 0, count, logits);
    s->rows = NULL;
    s->row_positions = NULL;
    return G3N_OK;
}
