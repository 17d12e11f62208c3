/* vision_check.c - `g3n check` kinds "image-preprocess" and "vision".
 *
 * image-preprocess: image.png / image.jpg (and image-rotated.jpg, EXIF
 *   orientation 6, where the case has it) in the case folder -> pixel_values
 *   [1,3,768,768], compared with pixel_values_png / pixel_values_jpg /
 *   pixel_values_jpg_rotated by mean-abs and max-abs.
 * vision: pixel_values (case.json "pixel_values" points at another case) ->
 *   tower output [1,2048,16,16] (golden NCHW; ours is token-major NHWC, so it
 *   is transposed for the comparison) -> image_embeds [1,256,text_hidden], with
 *   synth(seed) weights, compared by rel-L2.
 * The golden tower_output is last_hidden_state * sqrt(hidden): the reference's
 * get_image_features scales a permuted *view* of last_hidden_state in place
 * (`last_hidden_state *= hidden_size**0.5`, modeling_gemma3n.py 1983), so the
 * stored tensor carries the factor; ours is compared after the same f32 multiply. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_preprocess.h"
#include "vision_check.h"
#include "matmul.h"
#include "ops.h"
#include "vision_encoder.h"

static int preprocess_one(g3n_check_case *c, const char *file_name, const char *golden_name, double mean_abs_limit,
                          double max_abs_limit, g3n_error *err)
{
    g3n_tensor golden;
    if (g3n_check_golden(c, golden_name, &golden, err) != G3N_OK)
        return G3N_ERR;
    if (golden.ndim != 4 || golden.shape[0] != 1 || golden.shape[1] != 3 || golden.shape[2] != golden.shape[3])
        return g3n_error_set(err, "%s: golden %s is not [1,3,S,S]", c->case_dir, golden_name);
    g3n_image_options options = g3n_image_default_options();
    options.size = (int)golden.shape[2];
    int64_t count = 3 * golden.shape[2] * golden.shape[3];
    float *pixels = malloc(sizeof(float) * (size_t)count);
    if (!pixels)
        return g3n_error_set(err, "out of memory");
    char path[1200];
    double start = g3n_now_seconds();
    int rc = g3n_image_preprocess_file(g3n_check_case_file(c, file_name, path, sizeof path), &options, pixels, err);
    if (rc == G3N_OK) {
        fprintf(c->out, "# %s: preprocessed in %.3f s\n", file_name, g3n_now_seconds() - start);
        g3n_check_compare_mean_abs(c, golden_name, pixels, count, &golden, mean_abs_limit, max_abs_limit);
    }
    free(pixels);
    return rc;
}

int g3n_check_kind_image_preprocess(g3n_check_case *c, g3n_error *err)
{
    double mean_abs = g3n_check_tolerance(c, "mean_abs", 0.002);
    double max_abs = g3n_check_tolerance(c, "max_abs", 0.012);
    if (preprocess_one(c, "image.png", "pixel_values_png", mean_abs, max_abs, err) != G3N_OK ||
        preprocess_one(c, "image.jpg", "pixel_values_jpg", mean_abs, max_abs, err) != G3N_OK)
        return G3N_ERR;
    /* a photo stored sideways with EXIF orientation 6: the reference's load_image turns it upright
     * (checked where the case has it: scripts/fixture-cases/image-rotated-jpeg.patch adds it) */
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(c->case_json, "tensors");
    if (cJSON_GetObjectItemCaseSensitive(tensors, "pixel_values_jpg_rotated") &&
        preprocess_one(c, "image-rotated.jpg", "pixel_values_jpg_rotated", mean_abs, max_abs, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

/* The stated rel-L2 budget of a fast path (check.h of this service). */
static double fast_budget(g3n_precision precision)
{
    return precision == G3N_PRECISION_INT8 ? G3N_VISION_INT8_REL_L2 : G3N_VISION_BF16_REL_L2;
}

int g3n_check_kind_vision(g3n_check_case *c, g3n_error *err)
{
    return g3n_vision_check_case(c, G3N_PRECISION_F32, err);
}

int g3n_vision_check_case(g3n_check_case *c, g3n_precision precision, g3n_error *err)
{
    if (!c->has_config)
        return g3n_error_set(err, "%s: a vision case needs config.json", c->case_dir);
    uint64_t seed;
    if (g3n_check_seed(c, &seed, err) != G3N_OK)
        return G3N_ERR;
    const char *reference = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->case_json, "pixel_values"));
    if (!reference)
        return g3n_error_set(err, "%s: case.json has no \"pixel_values\" reference", c->case_dir);
    g3n_tensor pixels = {0}, tower_golden, embeds_golden;
    g3n_weights *weights = NULL;
    g3n_vision_encoder *encoder = NULL;
    float *tower = NULL, *tower_nchw = NULL, *embeds = NULL;
    int rc = G3N_ERR;
    if (g3n_check_golden(c, "tower_output", &tower_golden, err) != G3N_OK ||
        g3n_check_golden(c, "image_embeds", &embeds_golden, err) != G3N_OK ||
        g3n_check_resolve_reference(c, reference, &pixels, err) != G3N_OK)
        goto done;
    if (pixels.ndim != 4 || pixels.shape[1] != 3)
        goto done_shape;
    int images = (int)pixels.shape[0], height = (int)pixels.shape[2], width = (int)pixels.shape[3];
    double start = g3n_now_seconds();
    /* BF16 synth: what a checkpoint stores (the values are bf16-exact), packed as bf16 panels */
    if (g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, err) != G3N_OK ||
        g3n_vision_encoder_load_precision(&encoder, &c->config, weights, precision, err) != G3N_OK)
        goto done;
    double loaded = g3n_now_seconds();
    const g3n_vision_config *vc = g3n_vision_encoder_config(encoder);
    int64_t tokens = vc->soft_tokens, hidden = vc->hidden_size, text_hidden = g3n_vision_encoder_text_hidden(encoder);
    int64_t tower_count = images * tokens * hidden;
    if (g3n_tensor_numel(&tower_golden) != tower_count ||
        g3n_tensor_numel(&embeds_golden) != images * tokens * text_hidden)
        goto done_shape;
    tower = malloc(sizeof(float) * (size_t)tower_count);
    tower_nchw = malloc(sizeof(float) * (size_t)tower_count);
    embeds = malloc(sizeof(float) * (size_t)(images * tokens * text_hidden));
    if (!tower || !tower_nchw || !embeds) {
        g3n_error_set(err, "out of memory");
        goto done;
    }
    if (g3n_vision_encoder_tower(encoder, pixels.data, images, height, width, tower, err) != G3N_OK)
        goto done;
    double encoded = g3n_now_seconds();
    if (g3n_vision_encoder_embed(encoder, tower, images, embeds, err) != G3N_OK)
        goto done;
    double embedded = g3n_now_seconds();
    fprintf(c->out,
            "# vision: %d image(s) %dx%d, multiplier %g, weights %.2f s, tower %.2f s, embed %.3f s, %d threads, %s "
            "compute\n",
            images, height, width, vc->channel_multiplier, loaded - start, encoded - loaded, embedded - encoded,
            g3n_get_threads(), g3n_precision_name(precision));
    const float scale = (float)sqrt((double)hidden);
    for (int i = 0; i < images; i++) /* [tokens, hidden] -> [hidden, tokens], * sqrt(hidden) */
        for (int64_t t = 0; t < tokens; t++)
            for (int64_t h = 0; h < hidden; h++)
                tower_nchw[(i * hidden + h) * tokens + t] = tower[(i * tokens + t) * hidden + h] * scale;
    /* the exact path meets the case's tolerance, bf16 compute its stated budget */
    const int exact = precision == G3N_PRECISION_F32;
    g3n_check_compare_f32(c, "tower_output", tower_nchw, tower_count, &tower_golden,
                          exact ? g3n_check_tolerance(c, "tower_output_rel_l2", 1e-4) : fast_budget(precision), -1.0);
    g3n_check_compare_f32(c, "image_embeds", embeds, images * tokens * text_hidden, &embeds_golden,
                          exact ? g3n_check_tolerance(c, "image_embeds_rel_l2", 1e-4) : fast_budget(precision), -1.0);
    rc = G3N_OK;
    goto done;
done_shape:
    g3n_error_set(err, "%s: pixel_values / goldens do not have the expected shapes", c->case_dir);
done:
    free(tower);
    free(tower_nchw);
    free(embeds);
    g3n_vision_encoder_free(encoder);
    g3n_weights_close(weights);
    g3n_tensor_free(&pixels);
    return rc;
}
