/* vision_encoder.c - timm mobilenetv5_300m_enc (MobileNetV5Encoder) and the
 * soft-token path of Gemma3nModel.get_image_features. See vision_encoder.h; the
 * timm names in the comments below are those of timm's mobilenetv5.py. */
#include "vision_encoder.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "matmul.h"
#include "multimodal_embedder.h"
#include "ops.h"
#include "vision_ops.h"

#define TOWER_PREFIX "model.vision_tower.timm_model."
#define TOWER_EPS 1e-6f        /* RmsNorm2d / RmsNormAct2d eps (timm default) */
#define MSFA_RESOLUTION 16     /* msfa_output_resolution (MNV5 435) */
#define MSFA_EXPANSION 2.0     /* MobileNetV5MultiScaleFusionAdapter expansion_ratio */
#define STEM_CHANNELS 64       /* stem_size */
#define MAX_BLOCKS 128
#define ATTENTION_CHUNK_ROWS 2048 /* query rows (pixel, head) per scores block */
#define STAGES 4

/* ---- architecture: _gen_mobilenet_v5, the mobilenetv5_300m_enc branch ---- */

typedef struct arch_entry {
    int stage;
    int repeat;               /* how many times `blocks` is repeated */
    const char *blocks[2];    /* one block string, or an (mqa, uir) pair */
} arch_entry;

static const arch_entry mobilenetv5_300m_arch[] = {
    {0, 1, {"er_r1_k3_s2_e4_c128", NULL}},
    {0, 2, {"er_r1_k3_s1_e4_c128", NULL}},
    {1, 1, {"uir_r1_a3_k5_s2_e6_c256", NULL}},
    {1, 1, {"uir_r1_a5_k0_s1_e4_c256", NULL}},
    {1, 1, {"uir_r1_a3_k0_s1_e4_c256", NULL}},
    {1, 1, {"uir_r1_a5_k0_s1_e4_c256", NULL}},
    {1, 1, {"uir_r1_a3_k0_s1_e4_c256", NULL}},
    {2, 1, {"uir_r1_a5_k5_s2_e6_c640", NULL}},
    {2, 7, {"uir_r1_a5_k0_s1_e4_c640", NULL}},
    {2, 1, {"uir_r1_a0_k0_s1_e1_c640", NULL}},
    {2, 14, {"mqa_r1_k3_h12_v2_s1_d64_c640", "uir_r1_a0_k0_s1_e2_c640"}},
    {3, 1, {"uir_r1_a5_k5_s2_e6_c1280", NULL}},
    {3, 19, {"mqa_r1_k3_h16_s1_d96_c1280", "uir_r1_a0_k0_s1_e2_c1280"}},
};

typedef enum block_type { BLOCK_EDGE_RESIDUAL, BLOCK_UNIVERSAL_INVERTED, BLOCK_MULTI_QUERY } block_type;

/* One block of the trunk: its decoded arguments, sizes and weights. */
typedef struct vision_block {
    block_type type;
    int stage, index;           /* blocks.<stage>.<index> */
    char prefix[96];            /* "model.vision_tower.timm_model.blocks.S.J." */
    int in_channels, out_channels, mid_channels;
    int stride;                 /* only the first block of a stage keeps its stride */
    int has_skip;               /* in == out && stride == 1 */
    int exp_kernel;             /* er: conv_exp kernel */
    int start_kernel;           /* uir: dw_start kernel (0 = absent) */
    int mid_kernel;             /* uir: dw_mid kernel (0 = absent) */
    int heads, key_dim, value_dim, kv_stride, kv_kernel; /* mqa */
    double exp_ratio;

    /* EdgeResidual */
    float *conv_exp_packed;     /* owned [mid, k, k, in] */
    g3n_packed_matrix conv_exp; /* packed from conv_exp_packed */
    const float *bn1, *bn2;
    g3n_packed_matrix conv_pwl;
    /* UniversalInvertedResidual */
    float *dw_start;            /* owned [a*a, in] */
    const float *dw_start_norm;
    g3n_packed_matrix pw_exp;
    const float *pw_exp_norm;
    float *dw_mid;              /* owned [k*k, mid] */
    const float *dw_mid_norm;
    g3n_packed_matrix pw_proj;
    const float *pw_proj_norm;
    const float *layer_scale;   /* uir and mqa */
    /* MobileAttention (multi-query) */
    const float *norm;
    g3n_packed_matrix query, key, value, output;
    float *key_down, *value_down; /* owned [k*k, C] (kv_stride > 1) */
    const float *key_norm, *value_norm;
} vision_block;

typedef struct work_buffer {
    float *data;
    int64_t capacity; /* floats */
} work_buffer;

enum { BUF_X, BUF_A, BUF_B, BUF_C, BUF_Q, BUF_K, BUF_V, BUF_VT, BUF_SCORES, BUF_O, BUF_F2, BUF_COLUMN, BUF_TOKENS,
       BUF_COUNT };

struct g3n_vision_encoder {
    g3n_vision_config config;
    int64_t text_hidden;
    int stem_channels;
    g3n_precision precision;    /* of every GEMM (gemm_packed.h) */
    float *stem_packed;         /* owned [64, 3, 3, 3] -> [64, 3*3*3] */
    g3n_packed_matrix stem;
    const float *stem_bias, *stem_norm;
    vision_block blocks[MAX_BLOCKS];
    int block_count;
    int stage_channels[STAGES];
    int msfa_in, msfa_mid;
    g3n_packed_matrix msfa_pw_exp, msfa_pw_proj;
    g3n_packed_matrix attention_keys, attention_values; /* re-packed per attention block */
    const float *msfa_pw_exp_norm, *msfa_pw_proj_norm, *msfa_norm;
    g3n_multimodal_embedder embed_vision;
    work_buffer buffers[BUF_COUNT];
};

/* ---- channel rounding ---- */

/* timm helpers.make_divisible(v, divisor=8, min_value=None, round_limit=0.9) */
static int make_divisible(double v)
{
    const int divisor = 8;
    int new_v = (int)(v + divisor / 2.0) / divisor * divisor;
    if (new_v < divisor)
        new_v = divisor;
    if (new_v < 0.9 * v)
        new_v += divisor;
    return new_v;
}

/* _efficientnet_builder.round_channels(c, multiplier) */
static int round_channels(int channels, double multiplier)
{
    if (multiplier == 0.0)
        return channels;
    return make_divisible(channels * multiplier);
}

/* ---- block decoding (_decode_block_str) ---- */

static int decode_field(const char *block_string, char key, int key_length, const char *long_key, double fallback,
                        double *out)
{
    /* tokens after the first '_': key prefix (non-digit) then value */
    const char *p = strchr(block_string, '_');
    while (p) {
        p++;
        const char *end = strchr(p, '_');
        size_t length = end ? (size_t)(end - p) : strlen(p);
        size_t prefix = 0;
        while (prefix < length && !(p[prefix] >= '0' && p[prefix] <= '9'))
            prefix++;
        int match = long_key ? (prefix == strlen(long_key) && strncmp(p, long_key, prefix) == 0)
                             : ((int)prefix == key_length && p[0] == key);
        if (match && prefix < length) {
            *out = strtod(p + prefix, NULL);
            return 1;
        }
        p = end;
    }
    *out = fallback;
    return 0;
}

static double block_field(const char *block_string, char key, double fallback)
{
    double v;
    decode_field(block_string, key, 1, NULL, fallback, &v);
    return v;
}

/* Builds the block list (types, sizes) from the arch table and the multiplier. */
static int build_blocks(double multiplier, vision_block *blocks, int *count, int *stem_channels, int *stage_channels,
                        g3n_error *err)
{
    int in = multiplier < 1.0 ? STEM_CHANNELS : round_channels(STEM_CHANNELS, multiplier); /* fix_stem */
    *stem_channels = in;
    int n = 0;
    int stage_index[STAGES] = {0};
    size_t entries = sizeof mobilenetv5_300m_arch / sizeof mobilenetv5_300m_arch[0];
    for (size_t e = 0; e < entries; e++) {
        const arch_entry *entry = &mobilenetv5_300m_arch[e];
        for (int r = 0; r < entry->repeat; r++) {
            for (int part = 0; part < 2 && entry->blocks[part]; part++) {
                const char *s = entry->blocks[part];
                if (n >= MAX_BLOCKS)
                    return g3n_error_set(err, "vision encoder: more than %d blocks", MAX_BLOCKS);
                vision_block *b = &blocks[n++];
                memset(b, 0, sizeof *b);
                b->stage = entry->stage;
                b->index = stage_index[entry->stage]++;
                snprintf(b->prefix, sizeof b->prefix, TOWER_PREFIX "blocks.%d.%d.", b->stage, b->index);
                b->in_channels = in;
                b->out_channels = round_channels((int)block_field(s, 'c', 0), multiplier);
                b->stride = b->index == 0 ? (int)block_field(s, 's', 1) : 1;
                b->exp_ratio = block_field(s, 'e', 1.0);
                if (strncmp(s, "er_", 3) == 0) {
                    b->type = BLOCK_EDGE_RESIDUAL;
                    b->exp_kernel = (int)block_field(s, 'k', 3);
                    b->mid_channels = make_divisible(in * b->exp_ratio);
                } else if (strncmp(s, "uir_", 4) == 0) {
                    b->type = BLOCK_UNIVERSAL_INVERTED;
                    b->start_kernel = (int)block_field(s, 'a', 0);
                    b->mid_kernel = (int)block_field(s, 'k', 0);
                    b->mid_channels = make_divisible(in * b->exp_ratio);
                } else {
                    b->type = BLOCK_MULTI_QUERY;
                    b->heads = (int)block_field(s, 'h', 8);
                    b->key_dim = b->value_dim = (int)block_field(s, 'd', 64);
                    b->kv_stride = (int)block_field(s, 'v', 1);
                    b->kv_kernel = (int)block_field(s, 'k', 3);
                }
                b->has_skip = b->in_channels == b->out_channels && b->stride == 1;
                in = b->out_channels;
                stage_channels[b->stage] = in;
            }
        }
    }
    *count = n;
    return G3N_OK;
}

/* ---- config ---- */

int g3n_vision_config_parse(const g3n_model_config *config, g3n_vision_config *vision, g3n_error *err)
{
    memset(vision, 0, sizeof *vision);
    const cJSON *json = config->vision_json;
    if (!json || !cJSON_IsObject(json))
        return g3n_error_set(err, "%s: no vision_config", config->path[0] ? config->path : "config");
    const char *architecture = g3n_json_get_string(json, "architecture", "mobilenetv5_300m_enc");
    snprintf(vision->architecture, sizeof vision->architecture, "%s", architecture);
    if (strcmp(architecture, "mobilenetv5_300m_enc") != 0)
        return g3n_error_set(err, "%s: vision_config.architecture '%s' is not supported (only mobilenetv5_300m_enc)",
                             config->path, architecture);
    vision->channel_multiplier = 1.0;
    const cJSON *model_args = cJSON_GetObjectItemCaseSensitive(json, "model_args");
    if (model_args && cJSON_IsObject(model_args) &&
        g3n_json_get_double(model_args, "channel_multiplier", 1.0, &vision->channel_multiplier, err) != G3N_OK)
        return g3n_error_prefix(err, "vision_config.model_args");
    if (!(vision->channel_multiplier > 0.0 && vision->channel_multiplier <= 8.0))
        return g3n_error_set(err, "vision_config.model_args.channel_multiplier %g out of range",
                             vision->channel_multiplier);
    if (g3n_json_get_int(json, "hidden_size", 2048, &vision->hidden_size, err) != G3N_OK ||
        g3n_json_get_double(json, "rms_norm_eps", 1e-6, &vision->rms_norm_eps, err) != G3N_OK ||
        g3n_json_get_int(json, "vocab_size", 128, &vision->vocab_size, err) != G3N_OK ||
        g3n_json_get_int(json, "vocab_offset", 262144, &vision->vocab_offset, err) != G3N_OK)
        return g3n_error_prefix(err, "vision_config");
    if (vision->hidden_size != 2048)
        return g3n_error_set(err, "vision_config.hidden_size %lld: MobileNetV5's fusion adapter outputs 2048",
                             (long long)vision->hidden_size);
    vision->image_size = 768;
    vision->soft_tokens = MSFA_RESOLUTION * MSFA_RESOLUTION;
    if (config->vision_soft_tokens_per_image && config->vision_soft_tokens_per_image != vision->soft_tokens)
        return g3n_error_set(err, "vision_soft_tokens_per_image %lld, but the tower makes %lld tokens",
                             (long long)config->vision_soft_tokens_per_image, (long long)vision->soft_tokens);
    return G3N_OK;
}

/* ---- tensor list ---- */

#define ADD(ndim, ...)                                                                                   \
    do {                                                                                                 \
        if (g3n_tensor_list_add(list, ndim, (const int64_t[]){__VA_ARGS__}, err, "%s%s", pre, name) != G3N_OK) \
            return G3N_ERR;                                                                              \
    } while (0)

static int list_block(const vision_block *b, g3n_tensor_list *list, g3n_error *err)
{
    const char *pre = b->prefix, *name;
    int64_t in = b->in_channels, out = b->out_channels, mid = b->mid_channels;
    switch (b->type) {
    case BLOCK_EDGE_RESIDUAL:
        name = "conv_exp.weight"; ADD(4, mid, in, b->exp_kernel, b->exp_kernel);
        name = "bn1.weight"; ADD(1, mid);
        name = "conv_pwl.weight"; ADD(4, out, mid, 1, 1);
        name = "bn2.weight"; ADD(1, out);
        break;
    case BLOCK_UNIVERSAL_INVERTED:
        if (b->start_kernel) {
            name = "dw_start.conv.weight"; ADD(4, in, 1, b->start_kernel, b->start_kernel);
            name = "dw_start.bn.weight"; ADD(1, in);
        }
        name = "pw_exp.conv.weight"; ADD(4, mid, in, 1, 1);
        name = "pw_exp.bn.weight"; ADD(1, mid);
        if (b->mid_kernel) {
            name = "dw_mid.conv.weight"; ADD(4, mid, 1, b->mid_kernel, b->mid_kernel);
            name = "dw_mid.bn.weight"; ADD(1, mid);
        }
        name = "pw_proj.conv.weight"; ADD(4, out, mid, 1, 1);
        name = "pw_proj.bn.weight"; ADD(1, out);
        name = "layer_scale.gamma"; ADD(1, out);
        break;
    case BLOCK_MULTI_QUERY: {
        int64_t c = in;
        name = "norm.weight"; ADD(1, c);
        name = "attn.query.proj.weight"; ADD(4, (int64_t)b->heads * b->key_dim, c, 1, 1);
        if (b->kv_stride > 1) {
            name = "attn.key.down_conv.weight"; ADD(4, c, 1, b->kv_kernel, b->kv_kernel);
            name = "attn.key.norm.weight"; ADD(1, c);
        }
        name = "attn.key.proj.weight"; ADD(4, b->key_dim, c, 1, 1);
        if (b->kv_stride > 1) {
            name = "attn.value.down_conv.weight"; ADD(4, c, 1, b->kv_kernel, b->kv_kernel);
            name = "attn.value.norm.weight"; ADD(1, c);
        }
        name = "attn.value.proj.weight"; ADD(4, b->value_dim, c, 1, 1);
        name = "attn.output.proj.weight"; ADD(4, out, (int64_t)b->heads * b->value_dim, 1, 1);
        name = "layer_scale.gamma"; ADD(1, out);
        break;
    }
    }
    return G3N_OK;
}

int g3n_vision_encoder_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err)
{
    g3n_vision_config vision;
    if (g3n_vision_config_parse(config, &vision, err) != G3N_OK)
        return G3N_ERR;
    vision_block *blocks = calloc(MAX_BLOCKS, sizeof *blocks);
    if (!blocks)
        return g3n_error_set(err, "vision encoder: out of memory");
    int count = 0, stem = 0, stage_channels[STAGES] = {0};
    int rc = build_blocks(vision.channel_multiplier, blocks, &count, &stem, stage_channels, err);
    const char *pre = TOWER_PREFIX, *name;
    if (rc == G3N_OK) {
        rc = G3N_ERR;
        do {
            name = "conv_stem.conv.weight"; ADD(4, stem, 3, 3, 3);
            name = "conv_stem.conv.bias"; ADD(1, stem);
            name = "conv_stem.bn.weight"; ADD(1, stem);
            int i = 0;
            for (; i < count; i++)
                if (list_block(&blocks[i], list, err) != G3N_OK)
                    break;
            if (i < count)
                break;
            int64_t msfa_in = stage_channels[2] + stage_channels[3];
            int64_t msfa_mid = make_divisible(msfa_in * MSFA_EXPANSION), hidden = vision.hidden_size;
            name = "msfa.ffn.pw_exp.conv.weight"; ADD(4, msfa_mid, msfa_in, 1, 1);
            name = "msfa.ffn.pw_exp.bn.weight"; ADD(1, msfa_mid);
            name = "msfa.ffn.pw_proj.conv.weight"; ADD(4, hidden, msfa_mid, 1, 1);
            name = "msfa.ffn.pw_proj.bn.weight"; ADD(1, hidden);
            name = "msfa.norm.weight"; ADD(1, hidden);
            rc = G3N_OK;
        } while (0);
    }
    free(blocks);
    return rc;
}

#undef ADD

/* ---- loading ---- */

/* A 1x1 conv kernel [rows, cols, 1, 1] packed for the GEMM (the stored weights stay the source). */
static int load_matrix(g3n_weights *weights, const char *prefix, const char *name, int64_t rows, int64_t cols,
                       g3n_precision precision, g3n_packed_matrix *out, g3n_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    g3n_tensor t;
    g3n_matrix view;
    if (g3n_weights_get(weights, full, 4, (const int64_t[]){rows, cols, 1, 1}, &t, err) != G3N_OK ||
        g3n_matrix_from_tensor(&view, &t, err) != G3N_OK ||
        g3n_packed_matrix_pack(out, &view, precision, err) != G3N_OK)
        return g3n_error_prefix(err, "%s", full);
    return G3N_OK;
}

static int load_vector(g3n_weights *weights, const char *prefix, const char *name, int64_t size, const float **out,
                       g3n_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return g3n_weights_get_f32(weights, full, 1, (const int64_t[]){size}, out, err);
}

/* A depthwise kernel [C, 1, k, k] repacked to [k*k, C] (owned by *out). */
static int load_depthwise(g3n_weights *weights, const char *prefix, const char *name, int channels, int kernel,
                          float **out, g3n_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const float *torch_kernel;
    if (g3n_weights_get_f32(weights, full, 4, (const int64_t[]){channels, 1, kernel, kernel}, &torch_kernel, err) !=
        G3N_OK)
        return G3N_ERR;
    *out = g3n_aligned_alloc(sizeof(float) * (size_t)channels * (size_t)(kernel * kernel));
    if (!*out)
        return g3n_error_set(err, "%s: out of memory", full);
    g3n_vision_pack_depthwise(torch_kernel, channels, kernel, *out);
    return G3N_OK;
}

/* A dense kernel [Cout, Cin, k, k] repacked to the matrix [Cout, k*k*Cin] (owned by *packed). */
static int load_dense(g3n_weights *weights, const char *prefix, const char *name, int out_channels, int in_channels,
                      int kernel, g3n_precision precision, float **packed, g3n_packed_matrix *matrix, g3n_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const float *torch_kernel;
    if (g3n_weights_get_f32(weights, full, 4, (const int64_t[]){out_channels, in_channels, kernel, kernel},
                            &torch_kernel, err) != G3N_OK)
        return G3N_ERR;
    int64_t cols = (int64_t)kernel * kernel * in_channels;
    *packed = g3n_aligned_alloc(sizeof(float) * (size_t)out_channels * (size_t)cols);
    if (!*packed)
        return g3n_error_set(err, "%s: out of memory", full);
    g3n_vision_pack_dense(torch_kernel, out_channels, in_channels, kernel, *packed);
    g3n_matrix view = {G3N_DTYPE_F32, out_channels, cols, sizeof(float) * (size_t)cols, *packed};
    if (g3n_packed_matrix_pack(matrix, &view, precision, err) != G3N_OK)
        return g3n_error_prefix(err, "%s", full);
    return G3N_OK;
}

static int load_block(vision_block *b, g3n_weights *weights, g3n_precision precision, g3n_error *err)
{
    const char *p = b->prefix;
    int in = b->in_channels, out = b->out_channels, mid = b->mid_channels;
    switch (b->type) {
    case BLOCK_EDGE_RESIDUAL:
        if (load_dense(weights, p, "conv_exp.weight", mid, in, b->exp_kernel, precision, &b->conv_exp_packed,
                       &b->conv_exp, err) != G3N_OK ||
            load_vector(weights, p, "bn1.weight", mid, &b->bn1, err) != G3N_OK ||
            load_matrix(weights, p, "conv_pwl.weight", out, mid, precision, &b->conv_pwl, err) != G3N_OK ||
            load_vector(weights, p, "bn2.weight", out, &b->bn2, err) != G3N_OK)
            return G3N_ERR;
        return G3N_OK;
    case BLOCK_UNIVERSAL_INVERTED:
        if (b->start_kernel &&
            (load_depthwise(weights, p, "dw_start.conv.weight", in, b->start_kernel, &b->dw_start, err) != G3N_OK ||
             load_vector(weights, p, "dw_start.bn.weight", in, &b->dw_start_norm, err) != G3N_OK))
            return G3N_ERR;
        if (load_matrix(weights, p, "pw_exp.conv.weight", mid, in, precision, &b->pw_exp, err) != G3N_OK ||
            load_vector(weights, p, "pw_exp.bn.weight", mid, &b->pw_exp_norm, err) != G3N_OK)
            return G3N_ERR;
        if (b->mid_kernel &&
            (load_depthwise(weights, p, "dw_mid.conv.weight", mid, b->mid_kernel, &b->dw_mid, err) != G3N_OK ||
             load_vector(weights, p, "dw_mid.bn.weight", mid, &b->dw_mid_norm, err) != G3N_OK))
            return G3N_ERR;
        if (load_matrix(weights, p, "pw_proj.conv.weight", out, mid, precision, &b->pw_proj, err) != G3N_OK ||
            load_vector(weights, p, "pw_proj.bn.weight", out, &b->pw_proj_norm, err) != G3N_OK ||
            load_vector(weights, p, "layer_scale.gamma", out, &b->layer_scale, err) != G3N_OK)
            return G3N_ERR;
        return G3N_OK;
    case BLOCK_MULTI_QUERY:
        if (load_vector(weights, p, "norm.weight", in, &b->norm, err) != G3N_OK ||
            load_matrix(weights, p, "attn.query.proj.weight", (int64_t)b->heads * b->key_dim, in, precision, &b->query, err) !=
                G3N_OK)
            return G3N_ERR;
        if (b->kv_stride > 1 &&
            (load_depthwise(weights, p, "attn.key.down_conv.weight", in, b->kv_kernel, &b->key_down, err) != G3N_OK ||
             load_vector(weights, p, "attn.key.norm.weight", in, &b->key_norm, err) != G3N_OK ||
             load_depthwise(weights, p, "attn.value.down_conv.weight", in, b->kv_kernel, &b->value_down, err) !=
                 G3N_OK ||
             load_vector(weights, p, "attn.value.norm.weight", in, &b->value_norm, err) != G3N_OK))
            return G3N_ERR;
        if (load_matrix(weights, p, "attn.key.proj.weight", b->key_dim, in, precision, &b->key, err) != G3N_OK ||
            load_matrix(weights, p, "attn.value.proj.weight", b->value_dim, in, precision, &b->value, err) != G3N_OK ||
            load_matrix(weights, p, "attn.output.proj.weight", out, (int64_t)b->heads * b->value_dim, precision, &b->output,
                        err) != G3N_OK ||
            load_vector(weights, p, "layer_scale.gamma", out, &b->layer_scale, err) != G3N_OK)
            return G3N_ERR;
        return G3N_OK;
    }
    return g3n_error_set(err, "%s: unknown block type", p);
}

void g3n_vision_encoder_free(g3n_vision_encoder *encoder)
{
    if (!encoder)
        return;
    g3n_packed_matrix_free(&encoder->stem);
    g3n_packed_matrix_free(&encoder->msfa_pw_exp);
    g3n_packed_matrix_free(&encoder->msfa_pw_proj);
    g3n_packed_matrix_free(&encoder->attention_keys);
    g3n_packed_matrix_free(&encoder->attention_values);
    g3n_aligned_free(encoder->stem_packed);
    for (int i = 0; i < encoder->block_count; i++) {
        vision_block *b = &encoder->blocks[i];
        g3n_packed_matrix *packed[] = {&b->conv_exp, &b->conv_pwl, &b->pw_exp,  &b->pw_proj,
                                       &b->query,    &b->key,      &b->value,   &b->output};
        for (size_t j = 0; j < sizeof packed / sizeof packed[0]; j++)
            g3n_packed_matrix_free(packed[j]);
        g3n_aligned_free(b->conv_exp_packed);
        g3n_aligned_free(b->dw_start);
        g3n_aligned_free(b->dw_mid);
        g3n_aligned_free(b->key_down);
        g3n_aligned_free(b->value_down);
    }
    for (int i = 0; i < BUF_COUNT; i++)
        g3n_aligned_free(encoder->buffers[i].data);
    free(encoder);
}

int g3n_vision_encoder_load(g3n_vision_encoder **out, const g3n_model_config *config, g3n_weights *weights,
                            g3n_error *err)
{
    return g3n_vision_encoder_load_precision(out, config, weights, g3n_tower_precision_default(), err);
}

int g3n_vision_encoder_load_precision(g3n_vision_encoder **out, const g3n_model_config *config, g3n_weights *weights,
                                      g3n_precision precision, g3n_error *err)
{
    *out = NULL;
    g3n_vision_encoder *e = calloc(1, sizeof *e);
    if (!e)
        return g3n_error_set(err, "vision encoder: out of memory");
    e->precision = precision;
    if (g3n_vision_config_parse(config, &e->config, err) != G3N_OK ||
        build_blocks(e->config.channel_multiplier, e->blocks, &e->block_count, &e->stem_channels, e->stage_channels,
                     err) != G3N_OK)
        goto fail;
    e->text_hidden = config->text.hidden_size;
    /* conv_stem: ConvNormAct(3 -> stem, k3 s2, bias) */
    if (load_dense(weights, TOWER_PREFIX, "conv_stem.conv.weight", e->stem_channels, 3, 3, e->precision,
                   &e->stem_packed, &e->stem, err) != G3N_OK ||
        load_vector(weights, TOWER_PREFIX, "conv_stem.conv.bias", e->stem_channels, &e->stem_bias, err) != G3N_OK ||
        load_vector(weights, TOWER_PREFIX, "conv_stem.bn.weight", e->stem_channels, &e->stem_norm, err) != G3N_OK)
        goto fail;
    for (int i = 0; i < e->block_count; i++)
        if (load_block(&e->blocks[i], weights, e->precision, err) != G3N_OK)
            goto fail;
    /* msfa: UIR(a0, k0, e2, noskip, no layer scale) + norm */
    e->msfa_in = e->stage_channels[2] + e->stage_channels[3];
    e->msfa_mid = make_divisible(e->msfa_in * MSFA_EXPANSION);
    int64_t hidden = e->config.hidden_size;
    if (load_matrix(weights, TOWER_PREFIX, "msfa.ffn.pw_exp.conv.weight", e->msfa_mid, e->msfa_in, e->precision, &e->msfa_pw_exp,
                    err) != G3N_OK ||
        load_vector(weights, TOWER_PREFIX, "msfa.ffn.pw_exp.bn.weight", e->msfa_mid, &e->msfa_pw_exp_norm, err) !=
            G3N_OK ||
        load_matrix(weights, TOWER_PREFIX, "msfa.ffn.pw_proj.conv.weight", hidden, e->msfa_mid, e->precision, &e->msfa_pw_proj,
                    err) != G3N_OK ||
        load_vector(weights, TOWER_PREFIX, "msfa.ffn.pw_proj.bn.weight", hidden, &e->msfa_pw_proj_norm, err) !=
            G3N_OK ||
        load_vector(weights, TOWER_PREFIX, "msfa.norm.weight", hidden, &e->msfa_norm, err) != G3N_OK)
        goto fail;
    if (g3n_multimodal_embedder_load(&e->embed_vision, weights, "model.embed_vision", hidden, e->text_hidden,
                                     e->config.vocab_size, e->config.vocab_offset, e->config.rms_norm_eps,
                                     err) != G3N_OK)
        goto fail;
    *out = e;
    return G3N_OK;
fail:
    g3n_error_prefix(err, "vision encoder");
    g3n_vision_encoder_free(e);
    return G3N_ERR;
}

g3n_precision g3n_vision_encoder_precision(const g3n_vision_encoder *encoder)
{
    return encoder->precision;
}

const g3n_vision_config *g3n_vision_encoder_config(const g3n_vision_encoder *encoder)
{
    return &encoder->config;
}

int64_t g3n_vision_encoder_text_hidden(const g3n_vision_encoder *encoder)
{
    return encoder->text_hidden;
}

/* ---- forward ---- */

/* Optional time per part (env G3N_VISION_PROFILE=1), printed to stderr after each image. */
enum { PART_STEM, PART_EDGE, PART_INVERTED, PART_ATTN_PROJ, PART_ATTN_SCORES, PART_ATTN_VALUES, PART_FUSION,
       PART_COUNT };
static const char *const part_names[PART_COUNT] = {"stem", "edge_residual", "inverted_residual", "attn_proj",
                                                   "attn_scores+softmax", "attn_values", "fusion"};
static double part_seconds[PART_COUNT];
static int profile_enabled = -1;

static double profile_mark(int part, double since)
{
    if (profile_enabled < 0) {
        const char *v = getenv("G3N_VISION_PROFILE");
        profile_enabled = v && v[0] == '1';
    }
    if (!profile_enabled)
        return 0.0;
    double now = g3n_now_seconds();
    if (part >= 0 && since > 0.0)
        part_seconds[part] += now - since;
    return now;
}

/* Grows a work buffer to at least `floats` (contents are not kept). */
static float *buffer(g3n_vision_encoder *e, int which, int64_t floats, g3n_error *err)
{
    work_buffer *b = &e->buffers[which];
    if (b->capacity < floats) {
        g3n_aligned_free(b->data);
        b->data = g3n_aligned_alloc(sizeof(float) * (size_t)floats);
        b->capacity = b->data ? floats : 0;
        if (!b->data) {
            g3n_error_set(err, "vision encoder: out of memory (%lld floats)", (long long)floats);
            return NULL;
        }
    }
    return b->data;
}

static void swap_buffers(g3n_vision_encoder *e, int a, int b)
{
    work_buffer t = e->buffers[a];
    e->buffers[a] = e->buffers[b];
    e->buffers[b] = t;
}

/* A 1x1 conv (one GEMM over pixels) with no tail. */
static void conv1x1(const float *x, int64_t pixels, const g3n_packed_matrix *w, float *y)
{
    g3n_gemm_packed(x, pixels, (size_t)w->cols, w, y, (size_t)w->rows, NULL);
}

/* A 1x1 conv whose RmsNorm tail (g3n_vision_rms_norm_rows' arguments) runs on
 * each finished block of pixels while it is in cache; the result goes to out
 * (which may be y, or the shortcut x when residual is x). */
static void conv1x1_norm(const float *x, int64_t pixels, const g3n_packed_matrix *w, float *y, const float *weight,
                         int gelu, const float *gamma, const float *residual, float *out)
{
    g3n_vision_norm_epilogue tail = {(int)w->rows, NULL, weight, TOWER_EPS, gelu, gamma, residual, out};
    g3n_gemm_epilogue epilogue = {g3n_vision_norm_epilogue_apply, &tail};
    g3n_gemm_packed(x, pixels, (size_t)w->cols, w, y, (size_t)w->rows, &epilogue);
}

/* EdgeResidual.forward. x in BUF_X [h*w, in] -> BUF_X [h'*w', out]. */
static int edge_residual(g3n_vision_encoder *e, const vision_block *b, int *height, int *width, g3n_error *err)
{
    int h = *height, w = *width;
    int oh = g3n_vision_same_output(h, b->exp_kernel, b->stride), ow = g3n_vision_same_output(w, b->exp_kernel, b->stride);
    int64_t pixels = (int64_t)oh * ow, depth = (int64_t)b->exp_kernel * b->exp_kernel * b->in_channels;
    int64_t column_pixels = (1 << 22) / depth;
    if (column_pixels < 64)
        column_pixels = 64;
    if (column_pixels > pixels)
        column_pixels = pixels;
    float *x = e->buffers[BUF_X].data;
    float *mid = buffer(e, BUF_B, pixels * b->mid_channels, err);
    float *column = buffer(e, BUF_COLUMN, column_pixels * depth, err);
    float *y = buffer(e, BUF_A, pixels * b->out_channels, err);
    if (!mid || !column || !y)
        return G3N_ERR;
    /* conv_exp (dense k x k) -> bn1 (RmsNormAct: norm + GELU), fused */
    g3n_vision_norm_epilogue bn1 = {b->mid_channels, NULL, b->bn1, TOWER_EPS, 1, NULL, NULL, mid};
    g3n_gemm_epilogue bn1_tail = {g3n_vision_norm_epilogue_apply, &bn1};
    g3n_vision_dense_conv_packed(x, h, w, b->in_channels, &b->conv_exp, b->exp_kernel, b->stride, column,
                                 column_pixels, mid, &bn1_tail);
    /* conv_pwl -> bn2 (+ shortcut) */
    conv1x1_norm(mid, pixels, &b->conv_pwl, y, b->bn2, 0, NULL, b->has_skip ? x : NULL, y);
    swap_buffers(e, BUF_X, BUF_A);
    *height = oh;
    *width = ow;
    return G3N_OK;
}

/* UniversalInvertedResidual.forward. */
static int universal_inverted_residual(g3n_vision_encoder *e, const vision_block *b, int *height, int *width,
                                       g3n_error *err)
{
    int h = *height, w = *width;
    int64_t pixels = (int64_t)h * w;
    float *x = e->buffers[BUF_X].data;
    const float *y = x;
    if (b->start_kernel) { /* dw_start: stride only when there is no dw_mid */
        int stride = b->mid_kernel ? 1 : b->stride;
        int oh = g3n_vision_same_output(h, b->start_kernel, stride), ow = g3n_vision_same_output(w, b->start_kernel, stride);
        float *t = buffer(e, BUF_A, (int64_t)oh * ow * b->in_channels, err);
        if (!t)
            return G3N_ERR;
        g3n_vision_depthwise_conv(x, h, w, b->in_channels, b->dw_start, b->start_kernel, stride, t);
        h = oh;
        w = ow;
        pixels = (int64_t)h * w;
        g3n_vision_rms_norm_rows(t, pixels, b->in_channels, b->dw_start_norm, TOWER_EPS, 0, NULL, NULL, t);
        y = t;
    }
    float *expanded = buffer(e, BUF_B, pixels * b->mid_channels, err);
    if (!expanded)
        return G3N_ERR;
    conv1x1_norm(y, pixels, &b->pw_exp, expanded, b->pw_exp_norm, 1, NULL, NULL, expanded);
    y = expanded;
    if (b->mid_kernel) {
        int oh = g3n_vision_same_output(h, b->mid_kernel, b->stride), ow = g3n_vision_same_output(w, b->mid_kernel, b->stride);
        float *t = buffer(e, BUF_C, (int64_t)oh * ow * b->mid_channels, err);
        if (!t)
            return G3N_ERR;
        g3n_vision_depthwise_conv(expanded, h, w, b->mid_channels, b->dw_mid, b->mid_kernel, b->stride, t);
        h = oh;
        w = ow;
        pixels = (int64_t)h * w;
        g3n_vision_rms_norm_rows(t, pixels, b->mid_channels, b->dw_mid_norm, TOWER_EPS, 1, NULL, NULL, t);
        y = t;
    }
    float *projected = buffer(e, BUF_A, pixels * b->out_channels, err);
    if (!projected)
        return G3N_ERR;
    if (b->has_skip) { /* x = x + layer_scale(norm(pw_proj(y))) */
        conv1x1_norm(y, pixels, &b->pw_proj, projected, b->pw_proj_norm, 0, b->layer_scale, x, x);
    } else {
        conv1x1_norm(y, pixels, &b->pw_proj, projected, b->pw_proj_norm, 0, b->layer_scale, NULL, projected);
        swap_buffers(e, BUF_X, BUF_A);
    }
    *height = h;
    *width = w;
    return G3N_OK;
}

/* MultiQueryAttention2d key or value path: [down_conv + norm] + proj -> [M, dim]. */
static int attention_key_value(g3n_vision_encoder *e, const vision_block *b, const float *xn, int h, int w,
                               const float *down, const float *down_norm, const g3n_packed_matrix *proj, float *out,
                               int64_t *kv_pixels, g3n_error *err)
{
    const float *t = xn;
    int64_t pixels = (int64_t)h * w;
    if (b->kv_stride > 1) {
        int oh = g3n_vision_same_output(h, b->kv_kernel, b->kv_stride);
        int ow = g3n_vision_same_output(w, b->kv_kernel, b->kv_stride);
        float *d = buffer(e, BUF_B, (int64_t)oh * ow * b->in_channels, err);
        if (!d)
            return G3N_ERR;
        g3n_vision_depthwise_conv(xn, h, w, b->in_channels, down, b->kv_kernel, b->kv_stride, d);
        pixels = (int64_t)oh * ow;
        g3n_vision_rms_norm_rows(d, pixels, b->in_channels, down_norm, TOWER_EPS, 0, NULL, NULL, d);
        t = d;
    }
    conv1x1(t, pixels, proj, out);
    *kv_pixels = pixels;
    return G3N_OK;
}

/* MobileAttention.forward with MultiQueryAttention2d. */
static int mobile_attention(g3n_vision_encoder *e, const vision_block *b, int h, int w, g3n_error *err)
{
    int64_t n = (int64_t)h * w;
    int heads = b->heads, kd = b->key_dim, vd = b->value_dim, c = b->in_channels;
    float *x = e->buffers[BUF_X].data;
    float *xn = buffer(e, BUF_A, n * c, err);
    float *q = buffer(e, BUF_Q, n * heads * kd, err);
    float *k = buffer(e, BUF_K, n * kd, err);
    float *v = buffer(e, BUF_V, n * vd, err);
    float *vt = buffer(e, BUF_VT, n * vd, err);
    float *o = buffer(e, BUF_O, n * heads * vd, err);
    if (!xn || !q || !k || !v || !vt || !o)
        return G3N_ERR;
    double t0 = profile_mark(-1, 0.0);
    g3n_vision_rms_norm_rows(x, n, c, b->norm, TOWER_EPS, 0, NULL, NULL, xn);
    conv1x1(xn, n, &b->query, q); /* q[n][h*kd + d] */
    int64_t m = 0;
    if (attention_key_value(e, b, xn, h, w, b->key_down, b->key_norm, &b->key, k, &m, err) != G3N_OK ||
        attention_key_value(e, b, xn, h, w, b->value_down, b->value_norm, &b->value, v, &m, err) != G3N_OK)
        return G3N_ERR;
    /* K and V have one head shared by all query heads, so the rows (n, head) of q,
     * q[n][head*kd + d], form one [n*heads, kd] matrix (row stride kd), and the
     * outputs o[n][head*vd + e] one [n*heads, vd] matrix: one GEMM each, over
     * chunks of rows so that the scores stay in cache. */
    int64_t rows = n * heads, chunk = ATTENTION_CHUNK_ROWS < rows ? ATTENTION_CHUNK_ROWS : rows;
    float *scores = buffer(e, BUF_SCORES, chunk * m, err);
    if (!scores)
        return G3N_ERR;
    /* SDPA math backend: softmax((q*sqrt(s)) (k*sqrt(s))^T) v, s = kd^-0.5 */
    float root_scale = (float)sqrt(1.0 / sqrt((double)kd));
    g3n_scale(q, root_scale, q, n * heads * kd);
    g3n_scale(k, root_scale, k, m * kd);
    for (int64_t j = 0; j < m; j++) /* v^T: [vd, m] */
        for (int d = 0; d < vd; d++)
            vt[(int64_t)d * m + j] = v[j * vd + d];
    g3n_matrix key_matrix = {G3N_DTYPE_F32, m, kd, sizeof(float) * (size_t)kd, k};
    g3n_matrix value_matrix = {G3N_DTYPE_F32, vd, m, sizeof(float) * (size_t)m, vt};
    if (g3n_packed_matrix_pack(&e->attention_keys, &key_matrix, e->precision, err) != G3N_OK ||
        g3n_packed_matrix_pack(&e->attention_values, &value_matrix, e->precision, err) != G3N_OK)
        return G3N_ERR;
    g3n_gemm_epilogue softmax = {g3n_vision_softmax_epilogue_apply, NULL};
    t0 = profile_mark(PART_ATTN_PROJ, t0);
    for (int64_t first = 0; first < rows; first += chunk) {
        int64_t count = rows - first < chunk ? rows - first : chunk;
        /* scores = q k^T, softmax over keys per finished row block */
        g3n_gemm_packed(q + first * kd, count, (size_t)kd, &e->attention_keys, scores, (size_t)m, &softmax);
        t0 = profile_mark(PART_ATTN_SCORES, t0);
        g3n_gemm_packed(scores, count, (size_t)m, &e->attention_values, o + first * vd, (size_t)vd, NULL);
        t0 = profile_mark(PART_ATTN_VALUES, t0);
    }
    conv1x1(o, n, &b->output, xn); /* output.proj, into BUF_A */
    /* x = attn * layer_scale + shortcut */
    const float *gamma = b->layer_scale;
    int out = b->out_channels;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < n; p++)
        for (int ch = 0; ch < out; ch++)
            x[p * out + ch] += xn[p * out + ch] * gamma[ch];
    profile_mark(PART_ATTN_PROJ, t0);
    return G3N_OK;
}

/* MobileNetV5MultiScaleFusionAdapter.forward: F2 in BUF_F2, F3 in BUF_X -> tokens [16*16, hidden]. */
static int fusion_adapter(g3n_vision_encoder *e, int h2, int w2, int h3, int w3, float *tokens, g3n_error *err)
{
    int c2 = e->stage_channels[2], c3 = e->stage_channels[3], cin = e->msfa_in, mid = e->msfa_mid;
    int hidden = (int)e->config.hidden_size;
    int64_t pixels = (int64_t)h2 * w2;
    float *cat = buffer(e, BUF_A, pixels * cin, err);
    float *expanded = buffer(e, BUF_B, pixels * mid, err);
    float *projected = buffer(e, BUF_C, pixels * hidden, err);
    if (!cat || !expanded || !projected)
        return G3N_ERR;
    const float *f2 = e->buffers[BUF_F2].data, *f3 = e->buffers[BUF_X].data;
    for (int64_t p = 0; p < pixels; p++)
        memcpy(cat + p * cin, f2 + p * c2, sizeof(float) * (size_t)c2);
    /* F3 is interpolated (nearest) to F2's size when smaller; with stride-2
     * stages it is never larger, and equal sizes copy through the same call. */
    if (h3 > h2 || w3 > w2)
        return g3n_error_set(err, "vision encoder: stage-3 map %dx%d larger than stage-2 map %dx%d", h3, w3, h2, w2);
    g3n_vision_resize_nearest(f3, h3, w3, c3, h2, w2, cat + c2, cin);
    conv1x1_norm(cat, pixels, &e->msfa_pw_exp, expanded, e->msfa_pw_exp_norm, 1, NULL, NULL, expanded);
    conv1x1_norm(expanded, pixels, &e->msfa_pw_proj, projected, e->msfa_pw_proj_norm, 0, NULL, NULL, projected);
    const float *pooled = projected;
    if (h2 != MSFA_RESOLUTION || w2 != MSFA_RESOLUTION) {
        float *resized = buffer(e, BUF_A, (int64_t)MSFA_RESOLUTION * MSFA_RESOLUTION * hidden, err);
        if (!resized)
            return G3N_ERR;
        if (h2 % MSFA_RESOLUTION || w2 % MSFA_RESOLUTION)
            g3n_vision_resize_bilinear(projected, h2, w2, hidden, MSFA_RESOLUTION, MSFA_RESOLUTION, resized);
        else
            g3n_vision_avg_pool(projected, h2, w2, hidden, h2 / MSFA_RESOLUTION, w2 / MSFA_RESOLUTION, resized);
        pooled = resized;
    }
    g3n_vision_rms_norm_rows(pooled, MSFA_RESOLUTION * MSFA_RESOLUTION, hidden, e->msfa_norm, TOWER_EPS, 0, NULL,
                             NULL, tokens);
    return G3N_OK;
}

/* MobileNetV5Encoder.forward_features for one image: pixels [3, H, W] -> tokens [256, hidden]. */
static int tower_one(g3n_vision_encoder *e, const float *pixels, int height, int width, float *tokens, g3n_error *err)
{
    int64_t plane = (int64_t)height * width;
    float *nhwc = buffer(e, BUF_A, plane * 3, err);
    int sh = g3n_vision_same_output(height, 3, 2), sw = g3n_vision_same_output(width, 3, 2);
    float *x = buffer(e, BUF_X, (int64_t)sh * sw * e->stem_channels, err);
    int64_t column_pixels = (int64_t)sh * sw < 65536 ? (int64_t)sh * sw : 65536;
    float *column = buffer(e, BUF_COLUMN, column_pixels * 27, err);
    if (!nhwc || !x || !column)
        return G3N_ERR;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < plane; p++)
        for (int ch = 0; ch < 3; ch++)
            nhwc[p * 3 + ch] = pixels[ch * plane + p];
    double t0 = profile_mark(-1, 0.0);
    /* conv_stem: conv3x3 s2 + bias -> RmsNorm -> GELU */
    g3n_vision_norm_epilogue stem_tail = {e->stem_channels, e->stem_bias, e->stem_norm, TOWER_EPS, 1, NULL, NULL, x};
    g3n_gemm_epilogue stem_epilogue = {g3n_vision_norm_epilogue_apply, &stem_tail};
    g3n_vision_dense_conv_packed(nhwc, height, width, 3, &e->stem, 3, 2, column, column_pixels, x, &stem_epilogue);
    int h = sh, w = sw, h2 = 0, w2 = 0;
    t0 = profile_mark(PART_STEM, t0);
    for (int i = 0; i < e->block_count; i++) {
        const vision_block *b = &e->blocks[i];
        int rc = b->type == BLOCK_EDGE_RESIDUAL        ? edge_residual(e, b, &h, &w, err)
                 : b->type == BLOCK_UNIVERSAL_INVERTED ? universal_inverted_residual(e, b, &h, &w, err)
                                                       : mobile_attention(e, b, h, w, err);
        if (rc != G3N_OK)
            return g3n_error_prefix(err, "%sforward", b->prefix + strlen(TOWER_PREFIX));
        if (b->type != BLOCK_MULTI_QUERY)
            t0 = profile_mark(b->type == BLOCK_EDGE_RESIDUAL ? PART_EDGE : PART_INVERTED, t0);
        else
            t0 = profile_mark(-1, 0.0);
        int last_of_stage = i + 1 == e->block_count || e->blocks[i + 1].stage != b->stage;
        if (last_of_stage && b->stage == 2) { /* msfa input 0: the stage-2 output */
            int64_t count = (int64_t)h * w * b->out_channels;
            float *f2 = buffer(e, BUF_F2, count, err);
            if (!f2)
                return G3N_ERR;
            memcpy(f2, e->buffers[BUF_X].data, sizeof(float) * (size_t)count);
            h2 = h;
            w2 = w;
        }
    }
    int rc = fusion_adapter(e, h2, w2, h, w, tokens, err);
    profile_mark(PART_FUSION, t0);
    if (profile_enabled > 0) {
        for (int p = 0; p < PART_COUNT; p++) {
            fprintf(stderr, "vision profile: %-18s %7.3f s\n", part_names[p], part_seconds[p]);
            part_seconds[p] = 0.0;
        }
    }
    return rc;
}

int g3n_vision_encoder_tower(g3n_vision_encoder *encoder, const float *pixel_values, int images, int height, int width,
                             float *tower_tokens, g3n_error *err)
{
    if (images < 0 || height < 32 || width < 32)
        return g3n_error_set(err, "vision encoder: bad input %d images of %dx%d (need >= 32x32)", images, height,
                             width);
    int64_t per_image = encoder->config.soft_tokens * encoder->config.hidden_size;
    for (int i = 0; i < images; i++)
        if (tower_one(encoder, pixel_values + (int64_t)i * 3 * height * width, height, width,
                      tower_tokens + i * per_image, err) != G3N_OK)
            return g3n_error_prefix(err, "vision encoder: image %d", i);
    return G3N_OK;
}

int g3n_vision_encoder_embed(g3n_vision_encoder *encoder, const float *tower_tokens, int images, float *image_embeds,
                             g3n_error *err)
{
    int64_t tokens = encoder->config.soft_tokens, hidden = encoder->config.hidden_size;
    float *scaled = buffer(encoder, BUF_TOKENS, tokens * hidden, err);
    if (!scaled)
        return G3N_ERR;
    /* get_image_features: vision_outputs * vision_hidden_size ** 0.5 (f32 multiply) */
    float scale = (float)sqrt((double)hidden);
    for (int i = 0; i < images; i++) {
        g3n_scale(tower_tokens + i * tokens * hidden, scale, scaled, tokens * hidden);
        if (g3n_multimodal_embedder_soft(&encoder->embed_vision, scaled, tokens,
                                         image_embeds + i * tokens * encoder->text_hidden, err) != G3N_OK)
            return g3n_error_prefix(err, "embed_vision: image %d", i);
    }
    return G3N_OK;
}

int g3n_vision_encoder_encode(g3n_vision_encoder *encoder, const float *pixel_values, int images, int height, int width,
                              float *tower_tokens, float *image_embeds, g3n_error *err)
{
    int64_t per_image = encoder->config.soft_tokens * encoder->config.hidden_size;
    float *own = NULL;
    if (!tower_tokens) {
        own = g3n_aligned_alloc(sizeof(float) * (size_t)(per_image * (images > 0 ? images : 1)));
        if (!own)
            return g3n_error_set(err, "vision encoder: out of memory");
        tower_tokens = own;
    }
    int rc = g3n_vision_encoder_tower(encoder, pixel_values, images, height, width, tower_tokens, err);
    if (rc == G3N_OK)
        rc = g3n_vision_encoder_embed(encoder, tower_tokens, images, image_embeds, err);
    g3n_aligned_free(own);
    return rc;
}
