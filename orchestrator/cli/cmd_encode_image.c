/* cmd_encode_image.c - `g3n encode-image`: image files -> 256 soft tokens each.
 * Reads like a script: arguments, config, weights, encoder, preprocess all
 * images, one batched encode, report, free in reverse order. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "image_preprocess.h"
#include "matmul.h"
#include "ops.h"
#include "option_groups.h"
#include "safetensors.h"
#include "vision_encoder.h"
#include "weights.h"

/* --pixel-values FILE:TENSOR: [1, 3, side, side] f32 into pixels. */
static int read_pixel_values(const char *spec, int64_t side, float *pixels, g3n_error *err)
{
    char path[1024];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(path))
        return g3n_error_set(err, "--pixel-values wants FILE:TENSOR, got '%s'", spec);
    memcpy(path, spec, (size_t)(colon - spec));
    path[colon - spec] = '\0';
    g3n_safetensors_file *file = NULL;
    g3n_tensor view;
    if (g3n_safetensors_open(&file, path, err) != G3N_OK)
        return G3N_ERR;
    int rc = g3n_safetensors_get(file, colon + 1, &view, err);
    if (rc == G3N_OK && (view.dtype != G3N_DTYPE_F32 || g3n_tensor_numel(&view) != 3 * side * side))
        rc = g3n_error_set(err, "%s: %s is not f32 [1, 3, %lld, %lld]", path, colon + 1, (long long)side,
                           (long long)side);
    if (rc == G3N_OK)
        memcpy(pixels, view.data, sizeof(float) * (size_t)(3 * side * side));
    g3n_safetensors_close(file);
    return rc;
}

/* --save-tower OUT: the tower output of one image, token-major from the encoder, written as the fixtures'
 * tower_output: channels-first [1, hidden, h, w] and times sqrt(hidden), as the reference's
 * get_image_features leaves last_hidden_state (services/vision_encoder/vision_check.c). */
static int write_tower(g3n_vision_encoder *encoder, const float *pixels, int side, const char *path, g3n_error *err)
{
    const g3n_vision_config *vc = g3n_vision_encoder_config(encoder);
    int64_t tokens = vc->soft_tokens, hidden = vc->hidden_size, grid = (int64_t)sqrt((double)tokens);
    float *token_major = malloc(sizeof(float) * (size_t)(tokens * hidden));
    float *channels_first = malloc(sizeof(float) * (size_t)(tokens * hidden));
    int rc = token_major && channels_first ? G3N_OK : g3n_error_set(err, "out of memory for the tower output");
    if (rc == G3N_OK)
        rc = g3n_vision_encoder_tower(encoder, pixels, 1, side, side, token_major, err);
    if (rc == G3N_OK) {
        const float scale = (float)sqrt((double)hidden);
        for (int64_t t = 0; t < tokens; t++)
            for (int64_t c = 0; c < hidden; c++)
                channels_first[c * tokens + t] = token_major[t * hidden + c] * scale;
        int64_t shape[4] = {1, hidden, grid, tokens / grid};
        g3n_safetensors_writer *w = NULL;
        rc = g3n_safetensors_writer_open(&w, path, err);
        if (rc == G3N_OK && (g3n_safetensors_writer_declare(w, "tower_output", G3N_DTYPE_F32, 4, shape, err) != G3N_OK ||
                             g3n_safetensors_writer_write(w, channels_first, sizeof(float) * (size_t)(tokens * hidden),
                                                          err) != G3N_OK)) {
            g3n_safetensors_writer_finish(w, NULL);
            rc = G3N_ERR;
        } else if (rc == G3N_OK)
            rc = g3n_safetensors_writer_finish(w, err);
    }
    if (rc == G3N_OK)
        printf("tower output [1, %lld, %lld, %lld] written to %s\n", (long long)hidden, (long long)grid,
               (long long)(tokens / grid), path);
    free(token_major);
    free(channels_first);
    return rc;
}

typedef struct encode_image_args {
    const char *model_dir, *synth_spec, *pixel_values, *save_tower;
    int threads, batch;
    g3n_precision precision;
    g3n_image_options image;
    g3n_option_list files; /* FILE... (items: argc entries, owned), then --pixel-values' */
} encode_image_args;

/* -1 to go on, else the exit code. */
static int parse_args(encode_image_args *a, int argc, char **argv)
{
    a->precision = g3n_tower_precision_default();
    a->image = g3n_image_default_options();
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&a->model_dir, "checkpoint folder (config.json + safetensors)"),
        G3N_STRING("synth", &a->synth_spec, "CONFIG:SEED", "synthetic weights for CONFIG (config.json) with SEED"),
        G3N_OPTION_THREADS(&a->threads),
        G3N_INT64("max-pixels", &a->image.max_pixels, 1, INT64_MAX, "N",
                  "refuse images with more decoded pixels (default 178956970)"),
        G3N_INT("batch", &a->batch, 0, INT_MAX, "N", "images per encoder call (default: all at once)"),
        G3N_OPTION_PRECISION(&a->precision,
                             "f32 (default: exact), bf16 (AVX512-BF16 products, ~2x faster; tower output\n"
                             "within rel-L2 1e-2 of the goldens, tested) or int8 (AVX512-VNNI, faster\n"
                             "still, coarse: within 1e-1); the default follows env G3N_TOWER_PRECISION.\n"
                             "Without AVX-512: bf16 = bf16 weights, f32 FMAs; int8 = AVX-VNNI or AVX2, same results"),
        G3N_STRING("pixel-values", &a->pixel_values, "F:T",
                   "instead of FILE: the preprocessed pixel_values [1, 3, S, S] f32 stored as\n"
                   "tensor T of the safetensors file F (e.g. a fixture's)"),
        G3N_STRING("save-tower", &a->save_tower, "OUT",
                   "with one image: write its tower output (before embed_vision) to the\n"
                   "safetensors file OUT as the vision fixtures' tower_output: [1, hidden,\n"
                   "16, 16] f32 times sqrt(hidden), as the reference leaves it"),
    };
    const g3n_command_spec spec = {
        .name = "g3n encode-image",
        .usage = "g3n encode-image (--model DIR | --synth CONFIG:SEED) [options] FILE...",
        .about = "Decodes each image (JPEG, PNG, WebP, GIF, TIFF, BMP, ... via libvips), resizes it to\n"
                 "768x768, runs the MobileNetV5 vision tower and embed_vision, and prints the soft-token\n"
                 "shape and the seconds per image.\n",
        .positionals = &a->files,
        .help_column = 23,
    };
    a->files.capacity = argc - 1; /* one entry kept for --pixel-values */
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    if (a->pixel_values)
        a->files.items[a->files.count++] = a->pixel_values;
    if ((a->model_dir == NULL) == (a->synth_spec == NULL) || a->files.count == 0)
        return g3n_options_usage_error(&spec, "give exactly one of --model or --synth, and at least one FILE");
    if ((a->save_tower || a->pixel_values) && a->files.count != 1)
        return g3n_options_usage_error(&spec, "--save-tower and --pixel-values take exactly one image");
    if (a->batch <= 0 || a->batch > a->files.count)
        a->batch = a->files.count;
    return -1;
}

/* What encode-image loads, makes and frees. */
typedef struct encode_image_state {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_vision_encoder *encoder;
    float *pixels, *embeds;
    int *index; /* file index of each preprocessed image of a batch */
    int64_t side, tokens, text_hidden;
    double encode_total;
    int failed;
} encode_image_state;

static int load_vision(encode_image_args *a, encode_image_state *st, g3n_error *err)
{
    double start = g3n_now_seconds();
    if (a->model_dir) {
        if (g3n_config_load(&st->config, a->model_dir, err) != G3N_OK ||
            g3n_weights_open_checkpoint(&st->weights, a->model_dir, err) != G3N_OK)
            return G3N_ERR;
    } else {
        char config_path[1024];
        uint64_t seed;
        if (g3n_parse_synth_spec(a->synth_spec, config_path, sizeof config_path, &seed, err) != G3N_OK ||
            g3n_config_load(&st->config, config_path, err) != G3N_OK ||
            g3n_weights_open_synth(&st->weights, seed, G3N_DTYPE_F32, err) != G3N_OK)
            return G3N_ERR;
    }
    if (g3n_vision_encoder_load_precision(&st->encoder, &st->config, st->weights, a->precision, err) != G3N_OK)
        return G3N_ERR;
    const g3n_vision_config *vc = g3n_vision_encoder_config(st->encoder);
    st->side = vc->image_size;
    st->tokens = vc->soft_tokens;
    st->text_hidden = g3n_vision_encoder_text_hidden(st->encoder);
    a->image.size = (int)st->side;
    printf("weights: %s (vision multiplier %g), loaded in %.2f s; %d threads, %s kernels, %s compute\n",
           g3n_weights_describe(st->weights), vc->channel_multiplier, g3n_now_seconds() - start, g3n_get_threads(),
           g3n_isa_name(g3n_isa_active()), g3n_precision_name(a->precision));
    int batch = a->batch;
    st->pixels = malloc(sizeof(float) * (size_t)(3 * st->side * st->side * batch));
    st->embeds = malloc(sizeof(float) * (size_t)(st->tokens * st->text_hidden * batch));
    st->index = malloc(sizeof(int) * (size_t)batch);
    if (!st->pixels || !st->embeds || !st->index)
        return g3n_error_set(err, "out of memory for %d images", batch);
    return G3N_OK;
}

/* Preprocesses count files from first into st->pixels: how many succeeded
 * (their file indexes in st->index), or -1 on an error that stops the run. */
static int preprocess_batch(const encode_image_args *a, encode_image_state *st, int first, int count, g3n_error *err)
{
    int64_t image_floats = 3 * st->side * st->side;
    int ok_count = 0;
    for (int i = 0; i < count; i++) {
        double t0 = g3n_now_seconds();
        g3n_error image_err = {{0}};
        if (a->pixel_values) {
            if (read_pixel_values(a->pixel_values, st->side, st->pixels, err) != G3N_OK)
                return -1;
        } else if (g3n_image_preprocess_file(a->files.items[first + i], &a->image, st->pixels + ok_count * image_floats,
                                             &image_err) != G3N_OK) {
            fprintf(stderr, "g3n encode-image: error: %s\n", image_err.message);
            st->failed++;
            continue;
        }
        printf("%s: preprocessed in %.3f s\n", a->files.items[first + i], g3n_now_seconds() - t0);
        st->index[ok_count++] = first + i;
    }
    return ok_count;
}

/* One batch: preprocess, encode, print each image's line. */
static int encode_batch(const encode_image_args *a, encode_image_state *st, int first, int count, g3n_error *err)
{
    int ok_count = preprocess_batch(a, st, first, count, err);
    if (ok_count <= 0)
        return ok_count < 0 ? G3N_ERR : G3N_OK;
    double t0 = g3n_now_seconds();
    int side = (int)st->side;
    if (a->save_tower && write_tower(st->encoder, st->pixels, side, a->save_tower, err) != G3N_OK)
        return G3N_ERR;
    if (g3n_vision_encoder_encode(st->encoder, st->pixels, ok_count, side, side, NULL, st->embeds, err) != G3N_OK)
        return G3N_ERR;
    double seconds = g3n_now_seconds() - t0;
    st->encode_total += seconds;
    int64_t floats = st->tokens * st->text_hidden;
    for (int i = 0; i < ok_count; i++) {
        const float *e = st->embeds + (int64_t)i * floats;
        double sum_sq = 0.0;
        for (int64_t j = 0; j < floats; j++)
            sum_sq += (double)e[j] * e[j];
        printf("%s: soft tokens [%lld, %lld] rms %.4f, %.2f s per image\n", a->files.items[st->index[i]],
               (long long)st->tokens, (long long)st->text_hidden, sqrt(sum_sq / (double)floats), seconds / ok_count);
    }
    return G3N_OK;
}

static int run_encode_image(encode_image_args *a, encode_image_state *st, g3n_error *err)
{
    if (load_vision(a, st, err) != G3N_OK)
        return G3N_ERR;
    int file_count = a->files.count;
    for (int first = 0; first < file_count; first += a->batch) {
        int count = file_count - first < a->batch ? file_count - first : a->batch;
        if (encode_batch(a, st, first, count, err) != G3N_OK)
            return G3N_ERR;
    }
    int encoded = file_count - st->failed;
    if (encoded > 0)
        printf("encoded %d image(s): %.2f s per image (tower + embed_vision)\n", encoded, st->encode_total / encoded);
    return G3N_OK;
}

int g3n_command_encode_image(int argc, char **argv)
{
    encode_image_args args;
    memset(&args, 0, sizeof(args));
    args.files.items = calloc((size_t)argc, sizeof(char *));
    if (!args.files.items)
        return 1;
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0) {
        free(args.files.items);
        return rc;
    }
    if (args.threads > 0)
        g3n_set_threads(args.threads);
    encode_image_state st;
    memset(&st, 0, sizeof(st));
    g3n_error err = {{0}};
    int status = run_encode_image(&args, &st, &err) == G3N_OK && st.failed == 0 ? 0 : 1;
    if (status != 0 && err.message[0])
        fprintf(stderr, "g3n encode-image: error: %s\n", err.message);
    free(st.index);
    free(st.embeds);
    free(st.pixels);
    g3n_vision_encoder_free(st.encoder);
    g3n_weights_close(st.weights);
    g3n_config_free(&st.config);
    free(args.files.items);
    return status;
}
