/* audio_encoder.c - Gemma3nAudioEncoder (modeling_gemma3n.py L155-1526) as a
 * stream over feature frames. Function names follow the reference modules. */
#include "audio_encoder.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_ops.h"
#include "ops.h"

#define PREFIX "model.audio_tower."

/* Rows of sub-sampled frames (T2) one chunk processes: bounds every scratch buffer. */
#define CHUNK_ROWS 384
/* Output rows of the second conv block built as patches at once. */
#define CONV1_PATCH_ROWS 8

/* ------------------------------------------------------------------ tensors */

static int add_feed_forward(g3n_tensor_list *list, const g3n_audio_config *a, int layer, const char *which,
                            g3n_error *err)
{
    int64_t d = a->hidden_size;
    int64_t vec[1] = {d}, up[2] = {4 * d, d}, down[2] = {d, 4 * d};
    if (g3n_tensor_list_add(list, 1, vec, err, PREFIX "conformer.%d.%s.pre_layer_norm.weight", layer, which) ||
        g3n_tensor_list_add(list, 2, up, err, PREFIX "conformer.%d.%s.ffw_layer_1.weight", layer, which) ||
        g3n_tensor_list_add(list, 2, down, err, PREFIX "conformer.%d.%s.ffw_layer_2.weight", layer, which) ||
        g3n_tensor_list_add(list, 1, vec, err, PREFIX "conformer.%d.%s.post_layer_norm.weight", layer, which))
        return G3N_ERR;
    return G3N_OK;
}

int g3n_audio_encoder_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err)
{
    g3n_audio_config a;
    if (g3n_audio_config_parse(&a, config, err) != G3N_OK)
        return G3N_ERR;
    int64_t d = a.hidden_size;
    int64_t c0 = a.sscp_channels[0], c1 = a.sscp_channels[1];
    int64_t conv0[4] = {c0, 1, a.sscp_kernel[0][0], a.sscp_kernel[0][1]};
    int64_t conv1[4] = {c1, c0, a.sscp_kernel[1][0], a.sscp_kernel[1][1]};
    int64_t norm0[1] = {c0}, norm1[1] = {c1}, proj[2] = {d, a.sscp_flat};
    if (g3n_tensor_list_add(list, 4, conv0, err, PREFIX "subsample_conv_projection.conv_0.conv.weight") ||
        g3n_tensor_list_add(list, 1, norm0, err, PREFIX "subsample_conv_projection.conv_0.norm.weight") ||
        g3n_tensor_list_add(list, 4, conv1, err, PREFIX "subsample_conv_projection.conv_1.conv.weight") ||
        g3n_tensor_list_add(list, 1, norm1, err, PREFIX "subsample_conv_projection.conv_1.norm.weight") ||
        g3n_tensor_list_add(list, 2, proj, err, PREFIX "subsample_conv_projection.input_proj_linear.weight"))
        return G3N_ERR;
    int64_t vec[1] = {d}, square[2] = {d, d}, head[1] = {a.head_dim}, start[2] = {2 * d, d};
    int64_t depthwise[3] = {d, 1, a.conv_kernel_size};
    for (int j = 0; j < a.num_layers; j++) {
        if (add_feed_forward(list, &a, j, "ffw_layer_start", err) ||
            g3n_tensor_list_add(list, 1, vec, err, PREFIX "conformer.%d.attention.pre_attn_norm.weight", j) ||
            g3n_tensor_list_add(list, 1, head, err, PREFIX "conformer.%d.attention.attn.per_dim_scale", j) ||
            g3n_tensor_list_add(list, 2, square, err,
                                PREFIX "conformer.%d.attention.attn.relative_position_embedding.pos_proj.weight", j) ||
            g3n_tensor_list_add(list, 2, square, err, PREFIX "conformer.%d.attention.attn.q_proj.weight", j) ||
            g3n_tensor_list_add(list, 2, square, err, PREFIX "conformer.%d.attention.attn.k_proj.weight", j) ||
            g3n_tensor_list_add(list, 2, square, err, PREFIX "conformer.%d.attention.attn.v_proj.weight", j) ||
            g3n_tensor_list_add(list, 2, square, err, PREFIX "conformer.%d.attention.post.weight", j) ||
            g3n_tensor_list_add(list, 1, vec, err, PREFIX "conformer.%d.attention.post_norm.weight", j) ||
            g3n_tensor_list_add(list, 1, vec, err, PREFIX "conformer.%d.lconv1d.pre_layer_norm.weight", j) ||
            g3n_tensor_list_add(list, 2, start, err, PREFIX "conformer.%d.lconv1d.linear_start.weight", j) ||
            g3n_tensor_list_add(list, 3, depthwise, err, PREFIX "conformer.%d.lconv1d.depthwise_conv1d.weight", j) ||
            g3n_tensor_list_add(list, 1, vec, err, PREFIX "conformer.%d.lconv1d.conv_norm.weight", j) ||
            g3n_tensor_list_add(list, 2, square, err, PREFIX "conformer.%d.lconv1d.linear_end.weight", j) ||
            add_feed_forward(list, &a, j, "ffw_layer_end", err) ||
            g3n_tensor_list_add(list, 1, vec, err, PREFIX "conformer.%d.norm.weight", j))
            return G3N_ERR;
    }
    return G3N_OK;
}

/* ------------------------------------------------------------------ loading */

static int get_matrix(g3n_weights *w, const char *name, int ndim, const int64_t *shape, g3n_matrix *m,
                      g3n_error *err)
{
    g3n_tensor t;
    if (g3n_weights_get(w, name, ndim, shape, &t, err) != G3N_OK)
        return G3N_ERR;
    if (g3n_matrix_from_tensor(m, &t, err) != G3N_OK)
        return g3n_error_prefix(err, "%s", name);
    return G3N_OK;
}

/* A linear layer's weight packed for g3n_gemm_packed in `precision`. */
static int get_packed(g3n_weights *w, const char *name, int ndim, const int64_t *shape, g3n_precision precision,
                      g3n_packed_matrix *packed, g3n_error *err)
{
    g3n_matrix m;
    if (get_matrix(w, name, ndim, shape, &m, err) != G3N_OK)
        return G3N_ERR;
    if (g3n_packed_matrix_pack(packed, &m, precision, err) != G3N_OK)
        return g3n_error_prefix(err, "%s", name);
    return G3N_OK;
}

static int get_vector(g3n_weights *w, const char *name, int64_t n, const float **out, g3n_error *err)
{
    int64_t shape[1] = {n};
    return g3n_weights_get_f32(w, name, 1, shape, out, err);
}

static int load_feed_forward(g3n_audio_feed_forward *f, g3n_weights *w, const g3n_audio_config *a,
                             g3n_precision precision, int layer, const char *which, g3n_error *err)
{
    char name[256];
    int64_t d = a->hidden_size;
    int64_t up[2] = {4 * d, d}, down[2] = {d, 4 * d};
    snprintf(name, sizeof(name), PREFIX "conformer.%d.%s.pre_layer_norm.weight", layer, which);
    if (get_vector(w, name, d, &f->pre_layer_norm, err))
        return G3N_ERR;
    snprintf(name, sizeof(name), PREFIX "conformer.%d.%s.ffw_layer_1.weight", layer, which);
    if (get_packed(w, name, 2, up, precision, &f->ffw_layer_1, err))
        return G3N_ERR;
    snprintf(name, sizeof(name), PREFIX "conformer.%d.%s.ffw_layer_2.weight", layer, which);
    if (get_packed(w, name, 2, down, precision, &f->ffw_layer_2, err))
        return G3N_ERR;
    snprintf(name, sizeof(name), PREFIX "conformer.%d.%s.post_layer_norm.weight", layer, which);
    return get_vector(w, name, d, &f->post_layer_norm, err);
}

/* torch.nn.functional.softplus (beta 1, threshold 20) in f32. */
static float softplus_f32(float x)
{
    return x > 20.0f ? x : log1pf(expf(x));
}

/* Gemma3nAudioRelativePositionEmbedding: pos_proj(timing_signal(d)) for d = 0 .. past_keys
 * (relative distance query - key; the reference's pos_indices [past, ..., 0] after the shift). */
static int relative_embeddings(g3n_audio_layer *layer, const g3n_audio_config *a, const g3n_matrix *pos_proj,
                               g3n_error *err)
{
    int64_t d_model = a->hidden_size, timescales = d_model / 2, rows = a->past_keys + 1;
    float *signal = malloc(sizeof(float) * (size_t)(rows * d_model));
    layer->relative = malloc(sizeof(float) * (size_t)(rows * d_model));
    if (signal == NULL || layer->relative == NULL) {
        free(signal);
        return g3n_error_set(err, "audio encoder: out of memory");
    }
    double increment = log(1.0e4 / 1.0) / (double)(timescales - 1 > 1 ? timescales - 1 : 1);
    float neg_increment = (float)(-increment);
    for (int64_t d = 0; d < rows; d++) {
        float *s = signal + d * d_model;
        for (int64_t i = 0; i < timescales; i++) {
            float inv_timescale = expf((float)i * neg_increment); /* f32 like the buffer */
            float scaled = (float)d * inv_timescale;
            s[i] = (float)sin((double)scaled);
            s[timescales + i] = (float)cos((double)scaled);
        }
        for (int64_t i = 2 * timescales; i < d_model; i++)
            s[i] = 0.0f; /* odd widths: the reference would fail; keep defined */
    }
    g3n_matmul(signal, rows, (size_t)d_model, pos_proj, layer->relative, (size_t)d_model);
    free(signal);
    return G3N_OK;
}

static int load_layer(g3n_audio_layer *layer, g3n_weights *w, const g3n_audio_config *a, g3n_precision precision,
                      int j, g3n_error *err)
{
    char name[256];
    int64_t d = a->hidden_size;
    int64_t square[2] = {d, d}, start[2] = {2 * d, d}, depthwise[3] = {d, 1, a->conv_kernel_size};
    g3n_matrix pos_proj;
    const float *per_dim_scale, *depthwise_f32;
#define NAME(suffix) (snprintf(name, sizeof(name), PREFIX "conformer.%d." suffix, j), name)
    if (load_feed_forward(&layer->ffw_start, w, a, precision, j, "ffw_layer_start", err) ||
        get_vector(w, NAME("attention.pre_attn_norm.weight"), d, &layer->pre_attn_norm, err) ||
        get_vector(w, NAME("attention.attn.per_dim_scale"), a->head_dim, &per_dim_scale, err) ||
        get_matrix(w, NAME("attention.attn.relative_position_embedding.pos_proj.weight"), 2, square, &pos_proj,
                   err) ||
        get_packed(w, NAME("attention.attn.q_proj.weight"), 2, square, precision, &layer->q_proj, err) ||
        get_packed(w, NAME("attention.attn.k_proj.weight"), 2, square, precision, &layer->k_proj, err) ||
        get_packed(w, NAME("attention.attn.v_proj.weight"), 2, square, precision, &layer->v_proj, err) ||
        get_packed(w, NAME("attention.post.weight"), 2, square, precision, &layer->post, err) ||
        get_vector(w, NAME("attention.post_norm.weight"), d, &layer->post_norm, err) ||
        get_vector(w, NAME("lconv1d.pre_layer_norm.weight"), d, &layer->lconv_pre_norm, err) ||
        get_packed(w, NAME("lconv1d.linear_start.weight"), 2, start, precision, &layer->linear_start, err) ||
        g3n_weights_get_f32(w, NAME("lconv1d.depthwise_conv1d.weight"), 3, depthwise, &depthwise_f32, err) ||
        get_vector(w, NAME("lconv1d.conv_norm.weight"), d, &layer->conv_norm, err) ||
        get_packed(w, NAME("lconv1d.linear_end.weight"), 2, square, precision, &layer->linear_end, err) ||
        load_feed_forward(&layer->ffw_end, w, a, precision, j, "ffw_layer_end", err) ||
        get_vector(w, NAME("norm.weight"), d, &layer->norm, err))
        return G3N_ERR;
#undef NAME
    layer->per_dim_softplus = malloc(sizeof(float) * (size_t)a->head_dim);
    layer->depthwise = malloc(sizeof(float) * (size_t)(d * a->conv_kernel_size));
    if (layer->per_dim_softplus == NULL || layer->depthwise == NULL)
        return g3n_error_set(err, "audio encoder: out of memory");
    /* forward: (query * q_scale) * softplus(per_dim_scale); q_scale is applied in conformer_attention */
    for (int64_t i = 0; i < a->head_dim; i++)
        layer->per_dim_softplus[i] = softplus_f32(per_dim_scale[i]);
    memcpy(layer->depthwise, depthwise_f32, sizeof(float) * (size_t)(d * a->conv_kernel_size));
    layer->depthwise_taps = malloc(sizeof(float) * (size_t)(d * a->conv_kernel_size));
    if (layer->depthwise_taps == NULL)
        return g3n_error_set(err, "audio encoder: out of memory");
    for (int64_t c = 0; c < d; c++)
        for (int64_t k = 0; k < a->conv_kernel_size; k++)
            layer->depthwise_taps[k * d + c] = depthwise_f32[c * a->conv_kernel_size + k];
    return relative_embeddings(layer, a, &pos_proj, err);
}

static void free_feed_forward(g3n_audio_feed_forward *f)
{
    g3n_packed_matrix_free(&f->ffw_layer_1);
    g3n_packed_matrix_free(&f->ffw_layer_2);
}

struct g3n_audio_spare_state {
    _Atomic(g3n_audio_encoder_state *) state; /* NULL while an encode holds it */
};

void g3n_audio_encoder_free(g3n_audio_encoder *e)
{
    if (e->spare) {
        g3n_audio_encoder_state_free(atomic_load(&e->spare->state));
        free(e->spare);
    }
    g3n_packed_matrix_free(&e->input_proj);
    if (e->layers) {
        for (int j = 0; j < e->config.num_layers; j++) {
            g3n_audio_layer *l = &e->layers[j];
            free_feed_forward(&l->ffw_start);
            free_feed_forward(&l->ffw_end);
            g3n_packed_matrix *packed[] = {&l->q_proj, &l->k_proj, &l->v_proj, &l->post, &l->linear_start,
                                           &l->linear_end};
            for (size_t i = 0; i < sizeof packed / sizeof packed[0]; i++)
                g3n_packed_matrix_free(packed[i]);
            free(e->layers[j].per_dim_softplus);
            free(e->layers[j].relative);
            free(e->layers[j].depthwise);
            free(e->layers[j].depthwise_taps);
        }
        free(e->layers);
    }
    memset(e, 0, sizeof(*e));
}

int g3n_audio_encoder_load(g3n_audio_encoder *e, const g3n_audio_config *config, g3n_weights *w, g3n_error *err)
{
    return g3n_audio_encoder_load_precision(e, config, w, g3n_tower_precision_default(), err);
}

int g3n_audio_encoder_load_precision(g3n_audio_encoder *e, const g3n_audio_config *config, g3n_weights *w,
                                     g3n_precision precision, g3n_error *err)
{
    memset(e, 0, sizeof(*e));
    e->config = *config;
    e->precision = precision;
    const g3n_audio_config *a = &e->config;
    int64_t c0 = a->sscp_channels[0], c1 = a->sscp_channels[1];
    int64_t conv0[4] = {c0, 1, a->sscp_kernel[0][0], a->sscp_kernel[0][1]};
    int64_t conv1[4] = {c1, c0, a->sscp_kernel[1][0], a->sscp_kernel[1][1]};
    int64_t proj[2] = {a->hidden_size, a->sscp_flat};
    if (get_matrix(w, PREFIX "subsample_conv_projection.conv_0.conv.weight", 4, conv0, &e->conv[0], err) ||
        get_vector(w, PREFIX "subsample_conv_projection.conv_0.norm.weight", c0, &e->conv_norm[0], err) ||
        get_matrix(w, PREFIX "subsample_conv_projection.conv_1.conv.weight", 4, conv1, &e->conv[1], err) ||
        get_vector(w, PREFIX "subsample_conv_projection.conv_1.norm.weight", c1, &e->conv_norm[1], err) ||
        get_packed(w, PREFIX "subsample_conv_projection.input_proj_linear.weight", 2, proj, precision, &e->input_proj,
                   err))
        goto fail;
    /* the fast precisions: the sub-sampling convolutions' im2col products with x
     * rounded to bf16 (vdpbf16ps on the stored bf16 kernels, matmul.h) */
    e->conv[0].bf16_products = e->conv[1].bf16_products = precision != G3N_PRECISION_F32;
    e->layers = calloc((size_t)(a->num_layers > 0 ? a->num_layers : 1), sizeof(g3n_audio_layer));
    if (e->layers == NULL) {
        g3n_error_set(err, "audio encoder: out of memory");
        goto fail;
    }
    for (int j = 0; j < a->num_layers; j++)
        if (load_layer(&e->layers[j], w, a, precision, j, err) != G3N_OK)
            goto fail;
    e->spare = calloc(1, sizeof(*e->spare));
    if (e->spare == NULL) {
        g3n_error_set(err, "audio encoder: out of memory");
        goto fail;
    }
    return G3N_OK;
fail:
    g3n_error_prefix(err, "audio encoder (%s)", g3n_weights_describe(w));
    g3n_audio_encoder_free(e);
    return G3N_ERR;
}

int64_t g3n_audio_encoder_subsampled_frames(const g3n_audio_config *a, int64_t frames)
{
    if (frames <= 0)
        return 0;
    int64_t t = frames;
    for (int b = 0; b < 2; b++) /* time padded (0, kernel - 1): T_out = (T_in - 1) / stride + 1 */
        t = (t - 1) / a->sscp_stride[b][0] + 1;
    return t;
}

int64_t g3n_audio_encoder_token_count(const g3n_audio_config *a, int64_t frames)
{
    int64_t t = g3n_audio_encoder_subsampled_frames(a, frames);
    return (t + a->reduction_factor - 1) / a->reduction_factor;
}

/* ------------------------------------------------------------------ state */

/* Running sums of Gemma3nAudioCumulativeGroupNorm (cumsum accumulates in double). */
typedef struct cumulative_norm {
    double sum;
    double squares;
    double count;
} cumulative_norm;

/* Per conformer block: what the causal parts need from earlier frames. */
typedef struct layer_history {
    float *keys;       /* [past_keys][D] */
    float *values;     /* [past_keys][D] */
    uint8_t *valid;    /* [past_keys] */
    float *glu;        /* [kernel - 1][D] light conv input */
} layer_history;

struct g3n_audio_encoder_state {
    const g3n_audio_encoder *encoder;
    g3n_audio_token_sink sink;
    void *user;
    int64_t features_width;  /* input_feat_size */
    /* feature frames [frames_first, frames_first + frames_count) */
    float *frames;
    uint8_t *frames_padding;
    int64_t frames_first, frames_count, frames_capacity;
    int64_t frames_in;       /* frames pushed */
    int finished;
    /* conv block 0 output rows [t1_first, t1_first + t1_count), layout [t][F0][C0] */
    float *block0;
    uint8_t *block0_padding;
    int64_t t1_first, t1_count, t1_capacity, t1_done;
    cumulative_norm norm[2];
    int64_t t2_done;         /* sub-sampled frames through the conformer */
    int64_t tokens;          /* tokens emitted */
    layer_history *history;  /* [num_layers] */
    /* scratch for one chunk */
    float *patches;          /* conv patches */
    float *conv_out;         /* block 1 output [CHUNK_ROWS][F1 * C1] */
    float *hidden;           /* [CHUNK_ROWS][D] */
    uint8_t *row_padding;    /* [CHUNK_ROWS] */
    float *a, *b, *q;        /* [CHUNK_ROWS][D], [CHUNK_ROWS][4D], [CHUNK_ROWS][D] */
    float *keys, *values;    /* [past + CHUNK_ROWS][D] */
    uint8_t *key_valid;      /* [past + CHUNK_ROWS] */
    float *glu;              /* [kernel - 1 + CHUNK_ROWS][D] */
    float *token_rows;       /* [CHUNK_ROWS][D] */
    int64_t *kept_rows;      /* [CHUNK_ROWS] chunk rows that become tokens */
    uint8_t *token_padding;  /* [CHUNK_ROWS] */
};

void g3n_audio_encoder_state_free(g3n_audio_encoder_state *s)
{
    if (s == NULL)
        return;
    if (s->history) {
        for (int j = 0; j < s->encoder->config.num_layers; j++) {
            free(s->history[j].keys);
            free(s->history[j].values);
            free(s->history[j].valid);
            free(s->history[j].glu);
        }
        free(s->history);
    }
    g3n_aligned_free(s->frames);
    free(s->frames_padding);
    g3n_aligned_free(s->block0);
    free(s->block0_padding);
    g3n_aligned_free(s->patches);
    g3n_aligned_free(s->conv_out);
    g3n_aligned_free(s->hidden);
    free(s->row_padding);
    g3n_aligned_free(s->a);
    g3n_aligned_free(s->b);
    g3n_aligned_free(s->q);
    g3n_aligned_free(s->keys);
    g3n_aligned_free(s->values);
    free(s->key_valid);
    g3n_aligned_free(s->glu);
    g3n_aligned_free(s->token_rows);
    free(s->token_padding);
    free(s->kept_rows);
    free(s);
}

void g3n_audio_encoder_state_reset(g3n_audio_encoder_state *s)
{
    const g3n_audio_config *a = &s->encoder->config;
    s->frames_first = s->frames_count = s->frames_in = 0;
    s->finished = 0;
    s->t1_first = s->t1_count = s->t1_done = 0;
    memset(s->norm, 0, sizeof(s->norm));
    s->t2_done = 0;
    s->tokens = 0;
    size_t d = (size_t)a->hidden_size;
    for (int j = 0; j < a->num_layers; j++) {
        layer_history *h = &s->history[j];
        /* before the clip: zero keys/values marked invalid, zero light-conv padding */
        memset(h->keys, 0, sizeof(float) * d * (size_t)a->past_keys);
        memset(h->values, 0, sizeof(float) * d * (size_t)a->past_keys);
        memset(h->valid, 0, (size_t)a->past_keys);
        memset(h->glu, 0, sizeof(float) * d * (size_t)(a->conv_kernel_size - 1));
    }
}

int g3n_audio_encoder_state_create(g3n_audio_encoder_state **out, const g3n_audio_encoder *encoder,
                                   g3n_audio_token_sink sink, void *user, g3n_error *err)
{
    *out = NULL;
    const g3n_audio_config *a = &encoder->config;
    g3n_audio_encoder_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return g3n_error_set(err, "audio encoder: out of memory");
    s->encoder = encoder;
    s->sink = sink;
    s->user = user;
    s->features_width = a->input_feat_size;
    size_t d = (size_t)a->hidden_size, rows = CHUNK_ROWS;
    int kt0 = a->sscp_kernel[0][0], kt1 = a->sscp_kernel[1][0];
    int st0 = a->sscp_stride[0][0], st1 = a->sscp_stride[1][0];
    /* block 1 needs block-0 rows up to st1 * (rows - 1) + kt1 per chunk; block 0 frames likewise */
    s->t1_capacity = st1 * (int64_t)rows + kt1;
    s->frames_capacity = st0 * s->t1_capacity + kt0;
    size_t f0 = (size_t)a->sscp_freq_out[0], c0 = (size_t)a->sscp_channels[0];
    size_t f1 = (size_t)a->sscp_freq_out[1], c1 = (size_t)a->sscp_channels[1];
    size_t patch0 = (size_t)s->t1_capacity * f0 * (size_t)(kt0 * a->sscp_kernel[0][1]);
    size_t patch1 = CONV1_PATCH_ROWS * f1 * c0 * (size_t)(kt1 * a->sscp_kernel[1][1]);
    size_t past = (size_t)a->past_keys, conv_past = (size_t)(a->conv_kernel_size - 1);
    s->frames = g3n_aligned_alloc(sizeof(float) * (size_t)(s->frames_capacity * s->features_width));
    s->frames_padding = malloc((size_t)s->frames_capacity);
    s->block0 = g3n_aligned_alloc(sizeof(float) * (size_t)s->t1_capacity * f0 * c0);
    s->block0_padding = malloc((size_t)s->t1_capacity);
    s->patches = g3n_aligned_alloc(sizeof(float) * (patch0 > patch1 ? patch0 : patch1));
    s->conv_out = g3n_aligned_alloc(sizeof(float) * rows * f1 * c1);
    s->hidden = g3n_aligned_alloc(sizeof(float) * rows * d);
    s->row_padding = malloc(rows);
    s->a = g3n_aligned_alloc(sizeof(float) * rows * d);
    s->b = g3n_aligned_alloc(sizeof(float) * rows * 4 * d);
    s->q = g3n_aligned_alloc(sizeof(float) * rows * d);
    s->keys = g3n_aligned_alloc(sizeof(float) * (past + rows) * d);
    s->values = g3n_aligned_alloc(sizeof(float) * (past + rows) * d);
    s->key_valid = malloc(past + rows);
    s->glu = g3n_aligned_alloc(sizeof(float) * (conv_past + rows) * d);
    s->token_rows = g3n_aligned_alloc(sizeof(float) * rows * d);
    s->token_padding = malloc(rows);
    s->kept_rows = malloc(sizeof(int64_t) * rows);
    s->history = calloc((size_t)(a->num_layers > 0 ? a->num_layers : 1), sizeof(layer_history));
    int ok = s->frames && s->frames_padding && s->block0 && s->block0_padding && s->patches && s->conv_out &&
             s->hidden && s->row_padding && s->a && s->b && s->q && s->keys && s->values && s->key_valid &&
             s->glu && s->token_rows && s->token_padding && s->kept_rows && s->history;
    for (int j = 0; ok && j < a->num_layers; j++) {
        layer_history *h = &s->history[j];
        h->keys = malloc(sizeof(float) * (past ? past : 1) * d);
        h->values = malloc(sizeof(float) * (past ? past : 1) * d);
        h->valid = malloc(past ? past : 1);
        h->glu = malloc(sizeof(float) * (conv_past ? conv_past : 1) * d);
        ok = h->keys && h->values && h->valid && h->glu;
    }
    if (!ok) {
        g3n_audio_encoder_state_free(s);
        return g3n_error_set(err, "audio encoder: out of memory for the stream state");
    }
    g3n_audio_encoder_state_reset(s);
    *out = s;
    return G3N_OK;
}

int64_t g3n_audio_encoder_state_frames(const g3n_audio_encoder_state *s)
{
    return s->frames_in;
}

int64_t g3n_audio_encoder_state_tokens(const g3n_audio_encoder_state *s)
{
    return s->tokens;
}

/* ------------------------------------------------------------------ compute */

/* Element-wise passes over a chunk run in parallel once they are this large. */
#define PARALLEL_ELEMENTS 65536

static void clamp_rows(float *x, int64_t count, float limit)
{
#pragma omp parallel for simd schedule(static) if (count > PARALLEL_ELEMENTS)
    for (int64_t i = 0; i < count; i++)
        x[i] = x[i] > limit ? limit : (x[i] < -limit ? -limit : x[i]);
}

/* out[i] = a[i] * sigmoid(b[i]) for rows of `width` (a, b, out with their own row strides; out may be a):
 * the SiLU (a == b) and the GLU of the light conv. Parallel over rows; AVX-512 or AVX2 where the CPU has it. */
static void gate_rows(const float *a, size_t a_stride, const float *b, size_t b_stride, float *out,
                      size_t out_stride, int64_t rows, int64_t width)
{
    void (*const gate)(const float *, const float *, float *, int64_t) = g3n_audio_ops()->gate;
#pragma omp parallel for schedule(static) if (rows * width > PARALLEL_ELEMENTS)
    for (int64_t r = 0; r < rows; r++)
        gate(a + (size_t)r * a_stride, b + (size_t)r * b_stride, out + (size_t)r * out_stride, width);
}

/* The fast precisions (bf16, int8) fuse clamp + RMS norm (+ residual) into one
 * pass per row with f32 sums (audio_ops.h); the exact path keeps its passes. */
static int fast_rows(const g3n_audio_encoder_state *s)
{
    return s->encoder->precision != G3N_PRECISION_F32;
}

/* out = rms_norm(clamp(x, ±clip)) * weight per row (out may be x; clip FLT_MAX: no clamp); exact path: clamp in
 * place, then the norm. */
static void clamp_norm_rows(const g3n_audio_encoder_state *s, float *x, const float *weight, float *out,
                            int64_t rows, int64_t d, float clip)
{
    const g3n_audio_config *a = &s->encoder->config;
    if (!fast_rows(s)) {
        if (clip < FLT_MAX)
            clamp_rows(x, rows * d, clip);
        g3n_rms_norm_rows(x, d, weight, out, d, rows, d, a->rms_norm_eps);
        return;
    }
    void (*const norm)(const float *, const float *, float *, int64_t, float, float) = g3n_audio_ops()->clamp_norm;
    const float eps = (float)a->rms_norm_eps;
#pragma omp parallel for schedule(static) if (rows * d > PARALLEL_ELEMENTS)
    for (int64_t r = 0; r < rows; r++)
        norm(x + r * d, weight, out + r * d, d, clip, eps);
}

/* h += rms_norm(clamp(x)) * weight * scale per row; exact path: clamp x in place, norm, then the sum. */
static void clamp_norm_add_rows(const g3n_audio_encoder_state *s, float *x, const float *weight, float *h,
                                float scale, int64_t rows, int64_t d)
{
    const g3n_audio_config *a = &s->encoder->config;
    const float clip = (float)a->gradient_clipping;
    if (!fast_rows(s)) {
        clamp_rows(x, rows * d, clip);
        g3n_rms_norm_rows(x, d, weight, x, d, rows, d, a->rms_norm_eps);
        if (scale == 1.0f) {
#pragma omp parallel for simd schedule(static) if (rows * d > PARALLEL_ELEMENTS)
            for (int64_t i = 0; i < rows * d; i++)
                h[i] += x[i];
        } else {
#pragma omp parallel for simd schedule(static) if (rows * d > PARALLEL_ELEMENTS)
            for (int64_t i = 0; i < rows * d; i++)
                h[i] = h[i] + x[i] * scale;
        }
        return;
    }
    void (*const norm_add)(const float *, const float *, float *, int64_t, float, float, float) =
        g3n_audio_ops()->clamp_norm_add;
    const float eps = (float)a->rms_norm_eps;
#pragma omp parallel for schedule(static) if (rows * d > PARALLEL_ELEMENTS)
    for (int64_t r = 0; r < rows; r++)
        norm_add(x + r * d, weight, h + r * d, d, clip, eps, scale);
}

/* Gemma3nAudioCumulativeGroupNorm over `rows` rows of [F][C], then ReLU (Gemma3nAudioSSCPConvBlock). */
static void cumulative_group_norm_relu(cumulative_norm *state, float *x, int64_t rows, int64_t features,
                                       int64_t channels, const float *weight, double eps)
{
    int64_t group = features * channels;
    float eps_f = (float)eps;
    for (int64_t t = 0; t < rows; t++) {
        float *row = x + t * group;
        double sum = 0.0;
        for (int64_t i = 0; i < group; i++)
            sum += row[i];
        state->sum += (double)(float)sum; /* torch.sum in f32, cumsum accumulates in double */
        state->count += (double)group;
        float mean = (float)state->sum / (float)state->count;
        double squares = 0.0;
        for (int64_t i = 0; i < group; i++) {
            float diff = row[i] - mean;
            squares += (double)(diff * diff);
        }
        state->squares += (double)(float)squares;
        float variance = (float)state->squares / (float)state->count;
        float inv = 1.0f / sqrtf(variance + eps_f);
        for (int64_t f = 0; f < features; f++)
            for (int64_t c = 0; c < channels; c++) {
                float v = (row[f * channels + c] - mean) * inv * weight[c];
                row[f * channels + c] = v > 0.0f ? v : 0.0f;
            }
    }
}

/* Conv2d patches for out rows [t_first, t_first + rows) of one SSCP block.
 * Input rows [in_first, in_first + in_count) of layout [t][F_in][C_in]; time
 * rows >= in_total (known only at the end) and freq outside [0, F_in) are the
 * zero padding. Patch row (t, f_out) = [C_in][kt][kf] like the weight. */
static void build_patches(float *patches, const float *input, int64_t in_first, int64_t in_total, int64_t f_in,
                          int64_t c_in, int kt, int kf, int st, int sf, int64_t f_out, int64_t t_first, int64_t rows)
{
    int64_t width = c_in * kt * kf;
#pragma omp parallel for collapse(2) schedule(static) if (rows * f_out > 64)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t fo = 0; fo < f_out; fo++) {
            float *p = patches + (r * f_out + fo) * width;
            int64_t t = t_first + r;
            for (int a = 0; a < kt; a++) {
                int64_t ti = st * t + a;
                const float *in_row = ti < in_total ? input + (ti - in_first) * f_in * c_in : NULL;
                for (int b = 0; b < kf; b++) {
                    int64_t fi = sf * fo + b - 1; /* freq padding (1, 1) */
                    int ok = in_row != NULL && fi >= 0 && fi < f_in;
                    for (int64_t ci = 0; ci < c_in; ci++)
                        p[ci * kt * kf + a * kf + b] = ok ? in_row[fi * c_in + ci] : 0.0f;
                }
            }
        }
}

/* Gemma3nAudioConformerFeedForward on rows of h (in place). */
static void feed_forward(g3n_audio_encoder_state *s, const g3n_audio_feed_forward *f, float *h, int64_t rows)
{
    const g3n_audio_config *a = &s->encoder->config;
    int64_t d = a->hidden_size;
    float scale = (float)a->residual_weight;
    if (!fast_rows(s))
        memcpy(s->a, h, sizeof(float) * (size_t)(rows * d));
    clamp_norm_rows(s, fast_rows(s) ? h : s->a, f->pre_layer_norm, s->a, rows, d, (float)a->gradient_clipping);
    /* the SiLU is applied as the GEMM stores each block (the same sigmoid as gate_rows: same numbers) */
    const g3n_gemm_epilogue silu = {.silu = 1};
    g3n_gemm_packed(s->a, rows, (size_t)d, &f->ffw_layer_1, s->b, (size_t)(4 * d), &silu);
    g3n_gemm_packed(s->b, rows, (size_t)(4 * d), &f->ffw_layer_2, s->a, (size_t)d, NULL);
    clamp_norm_add_rows(s, s->a, f->post_layer_norm, h, scale, rows, d);
}

/* Gemma3nAudioConformerAttention (+ Gemma3nAudioAttention, local causal, relative positions). */
static void conformer_attention(g3n_audio_encoder_state *s, const g3n_audio_layer *layer, layer_history *hist,
                                float *h, const uint8_t *padding, int64_t rows)
{
    const g3n_audio_config *a = &s->encoder->config;
    int64_t d = a->hidden_size, dh = a->head_dim, heads = a->num_heads, past = a->past_keys;
    if (!fast_rows(s))
        memcpy(s->a, h, sizeof(float) * (size_t)(rows * d));
    clamp_norm_rows(s, fast_rows(s) ? h : s->a, layer->pre_attn_norm, s->a, rows, d, (float)a->gradient_clipping);
    /* keys/values: `past` rows of history, then this chunk */
    memcpy(s->keys, hist->keys, sizeof(float) * (size_t)(past * d));
    memcpy(s->values, hist->values, sizeof(float) * (size_t)(past * d));
    memcpy(s->key_valid, hist->valid, (size_t)past);
    { /* one pass: at int8 the normed rows are quantised once for the three */
        const g3n_packed_matrix *ws[3] = {&layer->q_proj, &layer->k_proj, &layer->v_proj};
        float *ys[3] = {s->q, s->keys + past * d, s->values + past * d};
        const size_t strides[3] = {(size_t)d, (size_t)d, (size_t)d};
        g3n_gemm_packed_many(s->a, rows, (size_t)d, ws, ys, strides, 3);
    }
    for (int64_t i = 0; i < rows; i++)
        s->key_valid[past + i] = !padding[i];
    /* Gemma3nAudioAttention.__init__: q_scale = f32(head_dim^-0.5) * (1 / softplus(0)), in f32 */
    float r_softplus_0 = 1.0f / softplus_f32(0.0f);
    float q_scale = (float)pow((double)dh, -0.5) * r_softplus_0;
    float cap = (float)a->logit_cap;
    const float min_logit = -FLT_MAX; /* torch.finfo(f32).min */
    if (fast_rows(s)) { /* vectorised per (frame, head), f32 sums in another order */
        void (*const attend)(const g3n_audio_attention_row *, float *) = g3n_audio_ops()->attend;
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t n = 0; n < heads; n++) {
                const g3n_audio_attention_row row = {
                    .q = s->q + i * d + n * dh,
                    .per_dim = layer->per_dim_softplus,
                    .key0 = s->keys + (past + i) * d + n * dh,
                    .value0 = s->values + (past + i) * d + n * dh,
                    .relative = layer->relative + n * dh,
                    .valid0 = s->key_valid + past + i,
                    .kv_stride = (size_t)d,
                    .rel_stride = (size_t)d,
                    .keys = past + 1,
                    .dh = dh,
                    .q_scale = q_scale,
                    .cap = cap,
                };
                attend(&row, s->b + i * d + n * dh);
            }
    } else {
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t n = 0; n < heads; n++) {
                float query[dh];
                float logits[past + 1];
                const float *q = s->q + i * d + n * dh;
                for (int64_t e = 0; e < dh; e++)
                    query[e] = (q[e] * q_scale) * layer->per_dim_softplus[e];
                int any = 0;
                float max_logit = min_logit;
                for (int64_t dist = 0; dist <= past; dist++) {
                    int64_t key = past + i - dist; /* index in s->keys of time t - dist */
                    const float *k = s->keys + key * d + n * dh;
                    const float *rel = layer->relative + dist * d + n * dh;
                    float content = 0.0f, position = 0.0f;
                    for (int64_t e = 0; e < dh; e++) {
                        content += query[e] * k[e];
                        position += query[e] * rel[e];
                    }
                    float logit = content + position;
                    logit = tanhf(logit / cap) * cap; /* softcap before masking */
                    if (!s->key_valid[key]) {
                        logits[dist] = min_logit;
                        continue;
                    }
                    logits[dist] = logit;
                    any = 1;
                    if (logit > max_logit)
                        max_logit = logit;
                }
                float *out = s->b + i * d + n * dh;
                for (int64_t e = 0; e < dh; e++)
                    out[e] = 0.0f;
                if (!any)
                    continue; /* every key padded: this frame is padded itself and zeroed after the block */
                float total = 0.0f;
                for (int64_t dist = 0; dist <= past; dist++) {
                    int64_t key = past + i - dist;
                    logits[dist] = s->key_valid[key] ? expf(logits[dist] - max_logit) : 0.0f;
                    total += logits[dist];
                }
                for (int64_t dist = 0; dist <= past; dist++) {
                    if (logits[dist] == 0.0f)
                        continue;
                    float p = logits[dist] / total;
                    const float *v = s->values + (past + i - dist) * d + n * dh;
                    for (int64_t e = 0; e < dh; e++)
                        out[e] += p * v[e];
                }
            }
    }
    g3n_gemm_packed(s->b, rows, (size_t)d, &layer->post, s->a, (size_t)d, NULL);
    clamp_norm_add_rows(s, s->a, layer->post_norm, h, 1.0f, rows, d);
    /* keep the last `past` keys for the next chunk */
    memcpy(hist->keys, s->keys + rows * d, sizeof(float) * (size_t)(past * d));
    memcpy(hist->values, s->values + rows * d, sizeof(float) * (size_t)(past * d));
    memcpy(hist->valid, s->key_valid + rows, (size_t)past);
}

/* Gemma3nAudioConformerLightConv1d (causal depthwise conv with GLU). With
 * `kept` (the last block: only the rows that become tokens are needed), the
 * GLU and its history still cover every row, but the depthwise conv and what
 * follows run on the kept rows alone and out[j] = h[kept[j]] + conv (compact);
 * otherwise h += conv in place (out, kept unused). */
static void light_conv(g3n_audio_encoder_state *s, const g3n_audio_layer *layer, layer_history *hist, float *h,
                       int64_t rows, const int64_t *kept, int64_t kept_count, float *out_rows)
{
    const g3n_audio_config *a = &s->encoder->config;
    int64_t d = a->hidden_size, kernel = a->conv_kernel_size, conv_past = kernel - 1;
    float clip = (float)a->gradient_clipping;
    if (fast_rows(s))
        clamp_norm_rows(s, h, layer->lconv_pre_norm, s->a, rows, d, FLT_MAX);
    else
        g3n_rms_norm_rows(h, d, layer->lconv_pre_norm, s->a, d, rows, d, a->rms_norm_eps);
    g3n_gemm_packed(s->a, rows, (size_t)d, &layer->linear_start, s->b, (size_t)(2 * d), NULL);
    memcpy(s->glu, hist->glu, sizeof(float) * (size_t)(conv_past * d));
    float *glu = s->glu + conv_past * d;
    gate_rows(s->b, (size_t)(2 * d), s->b + d, (size_t)(2 * d), glu, (size_t)d, rows, d); /* glu */
    const int64_t conv_rows = kept ? kept_count : rows; /* output row j is input row kept[j] (or j) */
    if (fast_rows(s)) { /* tap-major weights: the channel loop is contiguous and vectorises (same sums) */
#pragma omp parallel for schedule(static) if (conv_rows * d > 65536)
        for (int64_t j = 0; j < conv_rows; j++) {
            const int64_t i = kept ? kept[j] : j;
            float *out = s->a + j * d;
            for (int64_t c = 0; c < d; c++)
                out[c] = 0.0f;
            for (int64_t k = 0; k < kernel; k++) {
                const float *w = layer->depthwise_taps + k * d, *z = s->glu + (i + k) * d;
#pragma omp simd
                for (int64_t c = 0; c < d; c++)
                    out[c] += w[c] * z[c];
            }
        }
    } else {
#pragma omp parallel for schedule(static) if (conv_rows * d > 65536)
        for (int64_t j = 0; j < conv_rows; j++) {
            const int64_t i = kept ? kept[j] : j;
            for (int64_t c = 0; c < d; c++) {
                const float *w = layer->depthwise + c * kernel;
                float sum = 0.0f;
                for (int64_t k = 0; k < kernel; k++) /* y[t] = sum_k W[k] * z[t - (kernel-1) + k] */
                    sum += w[k] * s->glu[(i + k) * d + c];
                s->a[j * d + c] = sum;
            }
        }
    }
    memcpy(hist->glu, s->glu + rows * d, sizeof(float) * (size_t)(conv_past * d));
    clamp_norm_rows(s, s->a, layer->conv_norm, s->a, conv_rows, d, clip);
    gate_rows(s->a, (size_t)d, s->a, (size_t)d, s->a, (size_t)d, conv_rows, d); /* silu */
    g3n_gemm_packed(s->a, conv_rows, (size_t)d, &layer->linear_end, s->b, (size_t)d, NULL);
    if (kept) {
        for (int64_t j = 0; j < kept_count; j++)
            for (int64_t c = 0; c < d; c++)
                out_rows[j * d + c] = s->b[j * d + c] + h[kept[j] * d + c];
        return;
    }
#pragma omp parallel for simd schedule(static) if (rows * d > PARALLEL_ELEMENTS)
    for (int64_t i = 0; i < rows * d; i++)
        h[i] = s->b[i] + h[i];
}

/* Gemma3nAudioConformerBlock on one chunk. With `kept` (the last block) the
 * rows after the light conv's depthwise conv are the kept ones only, written
 * compact to out_rows (the rest of the block is per row: the same numbers). */
static void conformer_block(g3n_audio_encoder_state *s, const g3n_audio_layer *layer, layer_history *hist,
                            float *h, const uint8_t *padding, int64_t rows, const int64_t *kept, int64_t kept_count,
                            float *out_rows)
{
    const g3n_audio_config *a = &s->encoder->config;
    int64_t d = a->hidden_size;
    feed_forward(s, &layer->ffw_start, h, rows);
    conformer_attention(s, layer, hist, h, padding, rows);
    for (int64_t i = 0; i < rows; i++) /* zero padded frames before the light conv */
        if (padding[i])
            memset(h + i * d, 0, sizeof(float) * (size_t)d);
    light_conv(s, layer, hist, h, rows, kept, kept_count, out_rows);
    float *rest = kept ? out_rows : h;
    const int64_t rest_rows = kept ? kept_count : rows;
    if (rest_rows == 0)
        return;
    feed_forward(s, &layer->ffw_end, rest, rest_rows);
    clamp_norm_rows(s, rest, layer->norm, rest, rest_rows, d, (float)a->gradient_clipping);
}

/* Sub-sampled frames [t2_done, t2_done + rows) are in s->hidden: conformer, reduction, tokens. */
static int run_conformer(g3n_audio_encoder_state *s, int64_t rows, g3n_error *err)
{
    const g3n_audio_config *a = &s->encoder->config;
    int64_t d = a->hidden_size;
    /* audio_encodings[:, ::reduction_factor]: the rows that become tokens */
    int64_t count = 0;
    for (int64_t i = 0; i < rows; i++)
        if ((s->t2_done + i) % a->reduction_factor == 0)
            s->kept_rows[count++] = i;
    /* the last block finishes only those rows, straight into token_rows */
    for (int j = 0; j < a->num_layers; j++) {
        const int last = j == a->num_layers - 1;
        conformer_block(s, &s->encoder->layers[j], &s->history[j], s->hidden, s->row_padding, rows,
                        last ? s->kept_rows : NULL, count, s->token_rows);
    }
    if (a->num_layers == 0)
        for (int64_t k = 0; k < count; k++)
            memcpy(s->token_rows + k * d, s->hidden + s->kept_rows[k] * d, sizeof(float) * (size_t)d);
    /* masked_fill(mask, 0) */
    for (int64_t k = 0; k < count; k++) {
        s->token_padding[k] = s->row_padding[s->kept_rows[k]];
        if (s->token_padding[k])
            memset(s->token_rows + k * d, 0, sizeof(float) * (size_t)d);
    }
    s->t2_done += rows;
    if (count > 0) {
        int64_t first = s->tokens;
        s->tokens += count;
        if (s->sink && s->sink(s->user, first, s->token_rows, s->token_padding, count, err) != G3N_OK)
            return G3N_ERR;
    }
    return G3N_OK;
}

/* Runs every stage as far as the frames allow. */
static int advance(g3n_audio_encoder_state *s, g3n_error *err)
{
    const g3n_audio_encoder *e = s->encoder;
    const g3n_audio_config *a = &e->config;
    int kt0 = a->sscp_kernel[0][0], kf0 = a->sscp_kernel[0][1], st0 = a->sscp_stride[0][0],
        sf0 = a->sscp_stride[0][1];
    int kt1 = a->sscp_kernel[1][0], kf1 = a->sscp_kernel[1][1], st1 = a->sscp_stride[1][0],
        sf1 = a->sscp_stride[1][1];
    int64_t f_in = a->input_feat_size, f0 = a->sscp_freq_out[0], c0 = a->sscp_channels[0];
    int64_t f1 = a->sscp_freq_out[1], c1 = a->sscp_channels[1], d = a->hidden_size;
    for (;;) {
        int progress = 0;
        /* ---- conv block 0: rows whose kt0 input frames are all in (or the clip ended) */
        int64_t total_t1 = s->finished ? (s->frames_in > 0 ? (s->frames_in - 1) / st0 + 1 : 0) : INT64_MAX;
        int64_t t1_end = s->t1_done;
        while (t1_end < total_t1 && s->t1_first + s->t1_count + (t1_end - s->t1_done) < s->t1_first + s->t1_capacity &&
               (s->finished || st0 * t1_end + kt0 <= s->frames_in))
            t1_end++;
        int64_t new_t1 = t1_end - s->t1_done;
        if (new_t1 > 0) {
            int64_t in_total = s->finished ? s->frames_in : INT64_MAX;
            build_patches(s->patches, s->frames, s->frames_first, in_total, f_in, 1, kt0, kf0, st0, sf0, f0,
                          s->t1_done, new_t1);
            float *out = s->block0 + s->t1_count * f0 * c0;
            g3n_matmul(s->patches, new_t1 * f0, (size_t)(kt0 * kf0), &e->conv[0], out, (size_t)c0);
            cumulative_group_norm_relu(&s->norm[0], out, new_t1, f0, c0, e->conv_norm[0], a->sscp_group_norm_eps);
            for (int64_t r = 0; r < new_t1; r++) /* mask follows the first frame of the receptive field */
                s->block0_padding[s->t1_count + r] = s->frames_padding[st0 * (s->t1_done + r) - s->frames_first];
            s->t1_count += new_t1;
            s->t1_done = t1_end;
            /* drop frames no later block-0 row reads */
            int64_t keep_from = st0 * s->t1_done;
            if (keep_from > s->frames_first + s->frames_count)
                keep_from = s->frames_first + s->frames_count;
            int64_t drop = keep_from - s->frames_first;
            if (drop > 0) {
                s->frames_count -= drop;
                memmove(s->frames, s->frames + drop * f_in, sizeof(float) * (size_t)(s->frames_count * f_in));
                memmove(s->frames_padding, s->frames_padding + drop, (size_t)s->frames_count);
                s->frames_first += drop;
            }
            progress = 1;
        }
        /* ---- conv block 1 + input projection + conformer: one chunk of sub-sampled frames */
        int block0_complete = s->finished && s->t1_done == total_t1;
        int64_t total_t2 = block0_complete ? (s->t1_done > 0 ? (s->t1_done - 1) / st1 + 1 : 0) : INT64_MAX;
        int64_t t2_end = s->t2_done;
        while (t2_end < total_t2 && t2_end - s->t2_done < CHUNK_ROWS &&
               (block0_complete || st1 * t2_end + kt1 <= s->t1_done))
            t2_end++;
        int64_t rows = t2_end - s->t2_done;
        if (rows > 0) {
            int64_t in_total = block0_complete ? s->t1_done : INT64_MAX;
            for (int64_t r0 = 0; r0 < rows; r0 += CONV1_PATCH_ROWS) {
                int64_t n = rows - r0 < CONV1_PATCH_ROWS ? rows - r0 : CONV1_PATCH_ROWS;
                build_patches(s->patches, s->block0, s->t1_first, in_total, f0, c0, kt1, kf1, st1, sf1, f1,
                              s->t2_done + r0, n);
                g3n_matmul(s->patches, n * f1, (size_t)(c0 * kt1 * kf1), &e->conv[1],
                           s->conv_out + r0 * f1 * c1, (size_t)c1);
            }
            cumulative_group_norm_relu(&s->norm[1], s->conv_out, rows, f1, c1, e->conv_norm[1],
                                       a->sscp_group_norm_eps);
            for (int64_t r = 0; r < rows; r++)
                s->row_padding[r] = s->block0_padding[st1 * (s->t2_done + r) - s->t1_first];
            /* [t][F1][C1] flattened freq-major = the input_proj_linear input */
            g3n_gemm_packed(s->conv_out, rows, (size_t)(f1 * c1), &e->input_proj, s->hidden, (size_t)d, NULL);
            /* drop block-0 rows no later block-1 row reads */
            int64_t keep_from = st1 * t2_end;
            if (keep_from > s->t1_first + s->t1_count)
                keep_from = s->t1_first + s->t1_count;
            int64_t drop = keep_from - s->t1_first;
            if (drop > 0) {
                s->t1_count -= drop;
                memmove(s->block0, s->block0 + drop * f0 * c0, sizeof(float) * (size_t)(s->t1_count * f0 * c0));
                memmove(s->block0_padding, s->block0_padding + drop, (size_t)s->t1_count);
                s->t1_first += drop;
            }
            if (run_conformer(s, rows, err) != G3N_OK)
                return G3N_ERR;
            progress = 1;
        }
        if (!progress)
            return G3N_OK;
    }
}

int g3n_audio_encoder_state_push(g3n_audio_encoder_state *s, const float *features, const uint8_t *padding,
                                 int64_t frames, g3n_error *err)
{
    if (s->finished)
        return g3n_error_set(err, "audio encoder: frames pushed after finish (reset the state for a new clip)");
    int64_t width = s->features_width;
    while (frames > 0) {
        int64_t space = s->frames_capacity - s->frames_count;
        if (space == 0)
            return g3n_error_set(err, "audio encoder: internal error: the frame buffer does not drain");
        int64_t n = frames < space ? frames : space;
        memcpy(s->frames + s->frames_count * width, features, sizeof(float) * (size_t)(n * width));
        if (padding)
            memcpy(s->frames_padding + s->frames_count, padding, (size_t)n);
        else
            memset(s->frames_padding + s->frames_count, 0, (size_t)n);
        s->frames_count += n;
        s->frames_in += n;
        features += n * width;
        if (padding)
            padding += n;
        frames -= n;
        if (advance(s, err) != G3N_OK)
            return G3N_ERR;
    }
    return G3N_OK;
}

int g3n_audio_encoder_state_finish(g3n_audio_encoder_state *s, g3n_error *err)
{
    if (s->finished)
        return G3N_OK;
    s->finished = 1;
    return advance(s, err);
}

/* ------------------------------------------------------------------ offline */

typedef struct offline_sink {
    float *out;
    uint8_t *padding;
    int64_t capacity;
    int64_t width;
} offline_sink;

static int collect_tokens(void *user, int64_t first, const float *tokens, const uint8_t *padding, int64_t count,
                          g3n_error *err)
{
    offline_sink *o = user;
    if (first + count > o->capacity)
        return g3n_error_set(err, "audio encoder: internal error: %lld tokens, expected %lld",
                             (long long)(first + count), (long long)o->capacity);
    memcpy(o->out + first * o->width, tokens, sizeof(float) * (size_t)(count * o->width));
    if (o->padding)
        memcpy(o->padding + first, padding, (size_t)count);
    return G3N_OK;
}

int g3n_audio_encoder_encode(const g3n_audio_encoder *e, const float *features, const uint8_t *padding,
                             int64_t frames, float *out, uint8_t *out_padding, g3n_error *err)
{
    if (frames < 1)
        return g3n_error_set(err, "audio encoder: no feature frames");
    offline_sink o = {out, out_padding, g3n_audio_encoder_token_count(&e->config, frames), e->config.hidden_size};
    g3n_audio_encoder_state *s = e->spare ? atomic_exchange(&e->spare->state, NULL) : NULL;
    if (s) {
        s->sink = collect_tokens;
        s->user = &o;
    } else if (g3n_audio_encoder_state_create(&s, e, collect_tokens, &o, err) != G3N_OK) {
        return G3N_ERR;
    }
    int rc = g3n_audio_encoder_state_push(s, features, padding, frames, err);
    if (rc == G3N_OK)
        rc = g3n_audio_encoder_state_finish(s, err);
    if (rc == G3N_OK && s->tokens != o.capacity)
        rc = g3n_error_set(err, "audio encoder: internal error: produced %lld tokens, expected %lld",
                           (long long)s->tokens, (long long)o.capacity);
    /* back to the spare slot for the next clip, unless another encode put its own there first */
    g3n_audio_encoder_state_reset(s);
    s->sink = NULL;
    s->user = NULL;
    g3n_audio_encoder_state *empty = NULL;
    if (!e->spare || !atomic_compare_exchange_strong(&e->spare->state, &empty, s))
        g3n_audio_encoder_state_free(s);
    return rc;
}
