/* test_vision_encoder.c - the MobileNetV5 tower (services/vision_encoder):
 * the tensor list against the real-layout mm-tiny checkpoint and the spec's
 * parameter count, each NHWC primitive against a naive NCHW port of the spec's
 * Appendix A (explicit 'same' padding), the encoder loaded from the checkpoint
 * vs synth, the batch API, and non-768 input sizes (MSFA bilinear path). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "safetensors.h"
#include "test_util.h"
#include "vision_encoder.h"
#include "vision_ops.h"
#include "weights.h"

static double max_abs_difference(const float *a, const float *b, int64_t n)
{
    double max = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= max))
            max = d;
    }
    return max;
}

static void load_config(const char *case_name, g3n_model_config *config)
{
    char path[1024], relative[256];
    snprintf(relative, sizeof relative, "%s/config.json", case_name);
    g3n_error err = {{0}};
    int rc = g3n_config_load(config, g3n_test_fixture(relative, path, sizeof path), &err);
    if (rc != G3N_OK)
        fprintf(stderr, "%s\n", err.message);
    assert_int_equal(rc, G3N_OK);
}

/* Every model.vision_tower.* tensor of the real checkpoint, with its shape, and nothing else. */
static void test_tensor_list_matches_checkpoint(void **state)
{
    (void)state;
    g3n_model_config config = {0};
    load_config("mm-tiny", &config);
    g3n_tensor_list list = {0};
    g3n_error err = {{0}};
    assert_int_equal(g3n_vision_encoder_list_tensors(&config, &list, &err), G3N_OK);
    char path[1024];
    g3n_checkpoint *checkpoint;
    assert_int_equal(
        g3n_checkpoint_open(&checkpoint, g3n_test_fixture("mm-tiny/hf-checkpoint", path, sizeof path), &err), G3N_OK);
    int in_checkpoint = 0;
    for (int i = 0; i < g3n_checkpoint_count(checkpoint); i++) {
        const g3n_safetensors_entry *e = g3n_checkpoint_entry_at(checkpoint, i);
        if (strncmp(e->name, "model.vision_tower.", 19) != 0)
            continue;
        in_checkpoint++;
        const g3n_tensor_spec *spec = g3n_tensor_list_find(&list, e->name);
        if (!spec)
            fprintf(stderr, "not listed: %s\n", e->name);
        assert_non_null(spec);
        assert_int_equal(spec->ndim, e->ndim);
        for (int d = 0; d < e->ndim; d++)
            assert_int_equal(spec->shape[d], e->shape[d]);
    }
    assert_int_equal(in_checkpoint, list.count);
    assert_int_equal(list.count, 548);
    g3n_checkpoint_close(checkpoint);
    g3n_tensor_list_free(&list);
    g3n_config_free(&config);

    /* full size: the spec's 294,126,912 parameters (§2.5) in 548 tensors */
    load_config("vision-full", &config);
    assert_int_equal(g3n_vision_encoder_list_tensors(&config, &list, &err), G3N_OK);
    int64_t params = 0;
    for (int i = 0; i < list.count; i++)
        params += g3n_shape_numel(list.items[i].ndim, list.items[i].shape);
    assert_int_equal(list.count, 548);
    assert_int_equal(params, 294126912);
    const g3n_tensor_spec *q = g3n_tensor_list_find(&list, "model.vision_tower.timm_model.blocks.3.1.attn.query.proj.weight");
    assert_non_null(q);
    assert_int_equal(q->shape[0], 1536);
    assert_int_equal(q->shape[1], 1280);
    g3n_tensor_list_free(&list);
    g3n_config_free(&config);
}

/* ---- naive NCHW references, written from the spec's Appendix A ---- */

static float *nchw_from_nhwc(const float *x, int h, int w, int c)
{
    float *out = malloc(sizeof(float) * (size_t)h * w * c);
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++)
            for (int ch = 0; ch < c; ch++)
                out[((size_t)ch * h + y) * w + xx] = x[((size_t)y * w + xx) * c + ch];
    return out;
}

/* same_pad + F.conv2d(groups), NCHW: returns [cout, oh, ow]. */
static float *reference_conv(const float *x, int cin, int h, int w, const float *weight, int cout, int k, int stride,
                             int groups, int *oh_out, int *ow_out)
{
    int ph = (int)fmax((ceil((double)h / stride) - 1) * stride + k - h, 0);
    int pw = (int)fmax((ceil((double)w / stride) - 1) * stride + k - w, 0);
    int top = ph / 2, left = pw / 2;
    int oh = (h + ph - k) / stride + 1, ow = (w + pw - k) / stride + 1;
    int cin_per_group = cin / groups, cout_per_group = cout / groups;
    float *out = calloc((size_t)cout * oh * ow, sizeof(float));
    for (int o = 0; o < cout; o++) {
        int g = o / cout_per_group;
        for (int y = 0; y < oh; y++)
            for (int xx = 0; xx < ow; xx++) {
                double acc = 0.0;
                for (int ci = 0; ci < cin_per_group; ci++)
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            int iy = y * stride + i - top, ix = xx * stride + j - left;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            acc += (double)weight[(((size_t)o * cin_per_group + ci) * k + i) * k + j] *
                                   x[((size_t)(g * cin_per_group + ci) * h + iy) * w + ix];
                        }
                out[((size_t)o * oh + y) * ow + xx] = (float)acc;
            }
    }
    *oh_out = oh;
    *ow_out = ow;
    return out;
}

static void check_convs(int h, int w, int c, int k, int stride)
{
    float *x = malloc(sizeof(float) * (size_t)h * w * c);
    float *dw = malloc(sizeof(float) * (size_t)c * k * k), *dw_packed = malloc(sizeof(float) * (size_t)c * k * k);
    int cout = 5;
    float *dense = malloc(sizeof(float) * (size_t)cout * c * k * k);
    float *dense_packed = malloc(sizeof(float) * (size_t)cout * c * k * k);
    g3n_test_random_floats(x, (int64_t)h * w * c, 1 + (uint64_t)h);
    g3n_test_random_floats(dw, (int64_t)c * k * k, 2);
    g3n_test_random_floats(dense, (int64_t)cout * c * k * k, 3);
    float *x_nchw = nchw_from_nhwc(x, h, w, c);
    int oh, ow;
    /* depthwise */
    float *expected = reference_conv(x_nchw, c, h, w, dw, c, k, stride, c, &oh, &ow);
    assert_int_equal(oh, g3n_vision_same_output(h, k, stride));
    assert_int_equal(ow, g3n_vision_same_output(w, k, stride));
    float *out = malloc(sizeof(float) * (size_t)oh * ow * (c > cout ? c : cout));
    g3n_vision_pack_depthwise(dw, c, k, dw_packed);
    g3n_vision_depthwise_conv(x, h, w, c, dw_packed, k, stride, out);
    float *out_nchw = nchw_from_nhwc(out, oh, ow, c);
    assert_true(max_abs_difference(out_nchw, expected, (int64_t)c * oh * ow) < 1e-5);
    free(expected);
    free(out_nchw);
    /* dense, small im2col chunks (7 pixels) to cover the chunking */
    expected = reference_conv(x_nchw, c, h, w, dense, cout, k, stride, 1, &oh, &ow);
    g3n_vision_pack_dense(dense, cout, c, k, dense_packed);
    int64_t depth = (int64_t)k * k * c;
    g3n_matrix matrix = {G3N_DTYPE_F32, cout, depth, sizeof(float) * (size_t)depth, dense_packed};
    float *column = malloc(sizeof(float) * 7 * (size_t)depth);
    float bias[5] = {0.5f, -0.25f, 0.0f, 1.0f, 2.0f};
    g3n_vision_dense_conv(x, h, w, c, &matrix, k, stride, bias, column, 7, out);
    out_nchw = nchw_from_nhwc(out, oh, ow, cout);
    for (int o = 0; o < cout; o++)
        for (int p = 0; p < oh * ow; p++)
            expected[o * oh * ow + p] += bias[o];
    const double dense_error = max_abs_difference(out_nchw, expected, (int64_t)cout * oh * ow);
    if (dense_error >= 1e-5 * sqrt((double)depth / 54.0)) /* (f32 sums of `depth` products; 54 the smallest) */
        fail_msg("[%s] dense %dx%dx%d k%d s%d: error %.3g", g3n_isa_name(g3n_isa_active()), h, w, c, k, stride,
                 dense_error);
    free(expected);
    free(out_nchw);
    free(column);
    free(out);
    free(x_nchw);
    free(x);
    free(dw);
    free(dw_packed);
    free(dense);
    free(dense_packed);
}

/* The vision ops run on every instruction set this CPU has (portable, AVX2, AVX-512). */
static const g3n_isa every_isa[] = {G3N_ISA_PORTABLE, G3N_ISA_AVX2, G3N_ISA_AVX512};

static int use_isa(g3n_isa isa)
{
    if (g3n_isa_set(isa) == isa)
        return 1;
    printf("  (this CPU lacks %s: skipped)\n", g3n_isa_name(isa));
    return 0;
}

/* Depthwise and dense convs, stride 1 and 2, even and odd sizes (asymmetric 'same' padding),
 * channel counts below, at and past the vector kernels' blocks (8/16 lanes, 32/64 channels). */
static void check_all_convs(void)
{
    check_convs(12, 10, 6, 3, 1);
    check_convs(7, 6, 40, 3, 2);  /* a 32-channel block and an 8-channel tail */
    check_convs(6, 5, 77, 5, 1);  /* 64 + 13 */
    check_convs(12, 10, 6, 3, 2); /* pad 0 top/left, 1 bottom/right */
    check_convs(12, 12, 4, 5, 2); /* pad 1, 2 */
    check_convs(9, 7, 4, 5, 2);   /* odd: symmetric 2, 2 */
    check_convs(9, 11, 3, 5, 1);
}

static void test_convolutions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof every_isa / sizeof every_isa[0]; i++)
        if (use_isa(every_isa[i]))
            check_all_convs();
    g3n_isa_set(g3n_isa_detect());
    assert_int_equal(g3n_vision_same_pad_before(768, 3, 2), 0);
    assert_int_equal(g3n_vision_same_pad_before(192, 5, 2), 1);
    assert_int_equal(g3n_vision_same_pad_before(7, 5, 2), 2);
}

/* RMS norm (+gelu, +gamma, +residual aliasing the output), softmax, resizes, pooling. */
static void check_elementwise(void)
{
    enum { ROWS = 7, C = 37 };
    float x[ROWS * C], w[C], gamma[C], residual[ROWS * C], out[ROWS * C];
    g3n_test_random_floats(x, ROWS * C, 11);
    g3n_test_random_floats(w, C, 12);
    g3n_test_random_floats(gamma, C, 13);
    g3n_test_random_floats(residual, ROWS * C, 14);
    float expected[ROWS * C], expected_gelu[ROWS * C];
    for (int r = 0; r < ROWS; r++) {
        double ms = 0.0;
        for (int c = 0; c < C; c++)
            ms += (double)x[r * C + c] * x[r * C + c];
        float inv = 1.0f / sqrtf((float)(ms / C) + 1e-6f);
        for (int c = 0; c < C; c++) {
            float y = x[r * C + c] * inv * w[c];
            expected[r * C + c] = y * gamma[c] + residual[r * C + c];
            expected_gelu[r * C + c] = 0.5f * y * (1.0f + tanhf(0.7978845608028654f * (y + 0.044715f * y * y * y)));
        }
    }
    memcpy(out, residual, sizeof out);
    g3n_vision_rms_norm_rows(x, ROWS, C, w, 1e-6f, 0, gamma, out, out); /* residual aliases out */
    assert_true(max_abs_difference(out, expected, ROWS * C) < 1e-6);
    g3n_vision_rms_norm_rows(x, ROWS, C, w, 1e-6f, 1, NULL, NULL, out);
    assert_true(max_abs_difference(out, expected_gelu, ROWS * C) < 2e-6);

    /* softmax: rows sum to 1, ordering kept, matches exp/sum */
    float s[3 * 19];
    g3n_test_random_floats(s, 3 * 19, 15);
    for (int i = 0; i < 3 * 19; i++)
        s[i] *= 20.0f;
    float e[3 * 19];
    for (int r = 0; r < 3; r++) {
        float max = -INFINITY;
        for (int i = 0; i < 19; i++)
            max = fmaxf(max, s[r * 19 + i]);
        double sum = 0.0;
        for (int i = 0; i < 19; i++)
            sum += exp((double)s[r * 19 + i] - max);
        for (int i = 0; i < 19; i++)
            e[r * 19 + i] = (float)(exp((double)s[r * 19 + i] - max) / sum);
    }
    g3n_vision_softmax_rows(s, 3, 19);
    assert_true(max_abs_difference(s, e, 3 * 19) < 1e-6);

    /* nearest 4 -> 7 (non-2x: floor(dst * 4/7)) and 3 -> 6 (dst >> 1), into a channel slice */
    float in[4 * 4 * 2], up[7 * 7 * 3];
    for (int i = 0; i < 32; i++)
        in[i] = (float)i;
    g3n_vision_resize_nearest(in, 4, 4, 2, 7, 7, up + 1, 3);
    for (int y = 0; y < 7; y++)
        for (int xx = 0; xx < 7; xx++)
            for (int c = 0; c < 2; c++) {
                int sy = (int)floorf((float)y * (4.0f / 7.0f)), sx = (int)floorf((float)xx * (4.0f / 7.0f));
                assert_true(up[(y * 7 + xx) * 3 + 1 + c] == in[(sy * 4 + sx) * 2 + c]);
            }
    /* bilinear 4 -> 16 and 20 -> 16 against the spec's formula */
    float big[20 * 20], small16[16 * 16];
    g3n_test_random_floats(big, 400, 16);
    for (int n_in = 4; n_in <= 20; n_in += 16) {
        g3n_vision_resize_bilinear(big, n_in, n_in, 1, 16, 16, small16);
        for (int y = 0; y < 16; y++)
            for (int xx = 0; xx < 16; xx++) {
                double sc = (double)n_in / 16, sy = fmax((y + 0.5) * sc - 0.5, 0), sx = fmax((xx + 0.5) * sc - 0.5, 0);
                int y0 = (int)sy, x0 = (int)sx, y1 = y0 + (y0 < n_in - 1), x1 = x0 + (x0 < n_in - 1);
                double ly = sy - y0, lx = sx - x0;
                double v = (1 - ly) * ((1 - lx) * big[y0 * n_in + x0] + lx * big[y0 * n_in + x1]) +
                           ly * ((1 - lx) * big[y1 * n_in + x0] + lx * big[y1 * n_in + x1]);
                assert_true(fabs(small16[y * 16 + xx] - v) < 1e-5);
            }
    }
    /* avg pool 3x3/3 */
    float pooled[2 * 2 * 1], grid[6 * 6];
    for (int i = 0; i < 36; i++)
        grid[i] = (float)i;
    g3n_vision_avg_pool(grid, 6, 6, 1, 3, 3, pooled);
    assert_true(fabsf(pooled[0] - 7.0f) < 1e-6f && fabsf(pooled[3] - 28.0f) < 1e-6f);
}

static void test_elementwise(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof every_isa / sizeof every_isa[0]; i++)
        if (use_isa(every_isa[i]))
            check_elementwise();
    g3n_isa_set(g3n_isa_detect());
}

static g3n_vision_encoder *open_encoder(const g3n_model_config *config, g3n_weights **weights, const char *checkpoint,
                                        uint64_t seed)
{
    g3n_error err = {{0}};
    int rc;
    if (checkpoint) {
        char path[1024];
        rc = g3n_weights_open_checkpoint(weights, g3n_test_fixture(checkpoint, path, sizeof path), &err);
    } else {
        rc = g3n_weights_open_synth(weights, seed, G3N_DTYPE_BF16, &err);
    }
    assert_int_equal(rc, G3N_OK);
    g3n_vision_encoder *encoder = NULL;
    rc = g3n_vision_encoder_load(&encoder, config, *weights, &err);
    if (rc != G3N_OK)
        fprintf(stderr, "%s\n", err.message);
    assert_int_equal(rc, G3N_OK);
    return encoder;
}

/* The same numbers from the bf16 checkpoint and from synth(seed 41) in bf16;
 * a batch of two equals two single calls; 64 and 100 pixel inputs take the
 * MSFA bilinear paths (100: a 4 -> 7 nearest upsample). */
static void test_encoder_sources_batch_and_sizes(void **state)
{
    (void)state;
    g3n_model_config config = {0};
    load_config("mm-tiny", &config);
    g3n_weights *checkpoint_weights = NULL, *synth_weights = NULL;
    g3n_vision_encoder *from_checkpoint = open_encoder(&config, &checkpoint_weights, "mm-tiny/hf-checkpoint", 0);
    g3n_vision_encoder *from_synth = open_encoder(&config, &synth_weights, NULL, 41);
    const g3n_vision_config *vc = g3n_vision_encoder_config(from_synth);
    assert_int_equal(vc->soft_tokens, 256);
    assert_true(vc->channel_multiplier == 0.125);
    int64_t per_image = vc->soft_tokens * vc->hidden_size, text_hidden = g3n_vision_encoder_text_hidden(from_synth);
    int side = 64;
    int64_t image_floats = 3 * (int64_t)side * side;
    float *pixels = malloc(sizeof(float) * (size_t)(2 * image_floats));
    g3n_test_random_floats(pixels, 2 * image_floats, 21);
    for (int64_t i = 0; i < 2 * image_floats; i++)
        pixels[i] = 0.5f + 0.5f * pixels[i];
    float *a = malloc(sizeof(float) * (size_t)(2 * per_image)), *b = malloc(sizeof(float) * (size_t)(2 * per_image));
    float *single = malloc(sizeof(float) * (size_t)per_image);
    float *embeds = malloc(sizeof(float) * (size_t)(2 * vc->soft_tokens * text_hidden));
    g3n_error err = {{0}};
    assert_int_equal(g3n_vision_encoder_encode(from_checkpoint, pixels, 2, side, side, a, embeds, &err), G3N_OK);
    assert_int_equal(g3n_vision_encoder_tower(from_synth, pixels, 2, side, side, b, &err), G3N_OK);
    assert_true(max_abs_difference(a, b, 2 * per_image) == 0.0);
    assert_int_equal(g3n_vision_encoder_tower(from_synth, pixels + image_floats, 1, side, side, single, &err), G3N_OK);
    assert_true(max_abs_difference(single, b + per_image, per_image) == 0.0);
    assert_true(max_abs_difference(b, b + per_image, per_image) > 1e-3); /* different images differ */
    /* every token was RMS-normalised by msfa.norm (weights near 1): rms close to 1 */
    for (int t = 0; t < 256; t += 51) {
        double ms = 0.0;
        for (int64_t c = 0; c < vc->hidden_size; c++)
            ms += (double)a[t * vc->hidden_size + c] * a[t * vc->hidden_size + c];
        double rms = sqrt(ms / (double)vc->hidden_size);
        assert_true(rms > 0.7 && rms < 1.3);
    }
    /* soft tokens: RMS-normalised without weight */
    for (int64_t t = 0; t < 2 * vc->soft_tokens; t += 97) {
        double ms = 0.0;
        for (int64_t c = 0; c < text_hidden; c++)
            ms += (double)embeds[t * text_hidden + c] * embeds[t * text_hidden + c];
        assert_true(fabs(sqrt(ms / (double)text_hidden) - 1.0) < 1e-3);
    }
    /* non-768 sizes */
    float *odd = malloc(sizeof(float) * 3 * 100 * 100);
    g3n_test_random_floats(odd, 3 * 100 * 100, 22);
    assert_int_equal(g3n_vision_encoder_tower(from_synth, odd, 1, 100, 100, single, &err), G3N_OK);
    for (int64_t i = 0; i < per_image; i++)
        assert_true(isfinite(single[i]));
    /* too small: a clear error */
    assert_int_equal(g3n_vision_encoder_tower(from_synth, odd, 1, 8, 8, single, &err), G3N_ERR);
    assert_true(strlen(err.message) > 0);
    free(odd);
    free(embeds);
    free(single);
    free(a);
    free(b);
    free(pixels);
    g3n_vision_encoder_free(from_checkpoint);
    g3n_vision_encoder_free(from_synth);
    g3n_weights_close(checkpoint_weights);
    g3n_weights_close(synth_weights);
    g3n_config_free(&config);
}

/* A checkpoint of another channel multiplier fails with an error naming a tensor. */
static void test_wrong_multiplier(void **state)
{
    (void)state;
    g3n_model_config config = {0};
    load_config("vision-full", &config); /* multiplier 1.0 */
    char path[1024];
    g3n_weights *weights = NULL;
    g3n_error err = {{0}};
    assert_int_equal(
        g3n_weights_open_checkpoint(&weights, g3n_test_fixture("mm-tiny/hf-checkpoint", path, sizeof path), &err),
        G3N_OK);
    g3n_vision_encoder *encoder = NULL;
    assert_int_equal(g3n_vision_encoder_load(&encoder, &config, weights, &err), G3N_ERR);
    assert_null(encoder);
    assert_non_null(strstr(err.message, "model.vision_tower.timm_model."));
    g3n_weights_close(weights);
    g3n_config_free(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_list_matches_checkpoint),
        cmocka_unit_test(test_convolutions),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_encoder_sources_batch_and_sizes),
        cmocka_unit_test(test_wrong_multiplier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
