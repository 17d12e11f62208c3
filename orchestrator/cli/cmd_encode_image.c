/* cmd_encode_image.c - `g3n encode-image`: image files -> 256 soft tokens each.
 * Reads like a script: arguments, config, weights, encoder, preprocess all
 * images, one batched encode, report, free in reverse order. */
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
#include "safetensors.h"
#include "vision_encoder.h"
#include "weights.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: g3n encode-image (--model DIR | --synth CONFIG:SEED) [options] FILE...\n"
            "\n"
            "Decodes each image (JPEG, PNG, WebP, GIF, TIFF, BMP, ... via libvips), resizes it to\n"
            "768x768, runs the MobileNetV5 vision tower and embed_vision, and prints the soft-token\n"
            "shape and the seconds per image.\n"
            "\n"
            "  --model DIR          checkpoint folder (config.json + safetensors)\n"
            "  --synth CONFIG:SEED  synthetic weights for CONFIG (config.json) with SEED\n"
            "  --threads N          OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
            "  --max-pixels N       refuse images with more decoded pixels (default 178956970)\n"
            "  --batch N            images per encoder call (default: all at once)\n"
            "  --precision P        f32 (default: exact), bf16 (AVX512-BF16 products, ~2x faster; tower output\n"
            "                       within rel-L2 1e-2 of the goldens, tested) or int8 (AVX512-VNNI, faster\n"
            "                       still, coarse: within 1e-1); the default follows env G3N_TOWER_PRECISION.\n"
            "                       Without AVX-512: bf16 = bf16 weights, f32 FMAs; int8 = AVX-VNNI or AVX2, same results\n"
            "  --pixel-values F:T   instead of FILE: the preprocessed pixel_values [1, 3, S, S] f32 stored as\n"
            "                       tensor T of the safetensors file F (e.g. a fixture's)\n"
            "  --save-tower OUT     with one image: write its tower output (before embed_vision) to the\n"
            "                       safetensors file OUT as the vision fixtures' tower_output: [1, hidden,\n"
            "                       16, 16] f32 times sqrt(hidden), as the reference leaves it\n"
            "  -h, --help           this help\n");
}

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

int g3n_command_encode_image(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model_dir = NULL, *synth_spec = NULL, *pixel_values = NULL, *save_tower = NULL;
    int threads = 0, batch = 0;
    g3n_precision precision = g3n_tower_precision_default();
    g3n_image_options options = g3n_image_default_options();
    const char **files = calloc((size_t)argc, sizeof *files);
    int file_count = 0;
    if (!files)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--model") == 0 && has_value)
            model_dir = argv[++i];
        else if (strcmp(a, "--synth") == 0 && has_value)
            synth_spec = argv[++i];
        else if (strcmp(a, "--threads") == 0 && has_value)
            threads = atoi(argv[++i]);
        else if (strcmp(a, "--max-pixels") == 0 && has_value)
            options.max_pixels = strtoll(argv[++i], NULL, 10);
        else if (strcmp(a, "--batch") == 0 && has_value)
            batch = atoi(argv[++i]);
        else if (strcmp(a, "--pixel-values") == 0 && has_value)
            pixel_values = files[file_count++] = argv[++i];
        else if (strcmp(a, "--save-tower") == 0 && has_value)
            save_tower = argv[++i];
        else if (strcmp(a, "--precision") == 0 && has_value) {
            g3n_error perr = {{0}};
            if (g3n_precision_parse(argv[++i], &precision, &perr) != G3N_OK) {
                fprintf(stderr, "g3n encode-image: error: --precision: %s\n", perr.message);
                free(files);
                return 2;
            }
        }
        else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "g3n encode-image: error: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            free(files);
            return 2;
        } else
            files[file_count++] = a;
    }
    if ((model_dir == NULL) == (synth_spec == NULL) || file_count == 0 || options.max_pixels < 1) {
        fprintf(stderr, "g3n encode-image: error: give exactly one of --model or --synth, and at least one FILE\n");
        usage(stderr);
        free(files);
        return 2;
    }
    if ((save_tower || pixel_values) && file_count != 1) {
        fprintf(stderr, "g3n encode-image: error: --save-tower and --pixel-values take exactly one image\n");
        free(files);
        return 2;
    }
    if (threads > 0)
        g3n_set_threads(threads);
    if (batch <= 0 || batch > file_count)
        batch = file_count;

    g3n_error err = {{0}};
    g3n_model_config config = {0};
    g3n_weights *weights = NULL;
    g3n_vision_encoder *encoder = NULL;
    float *pixels = NULL, *embeds = NULL;
    int *index = NULL; /* file index of each preprocessed image of a batch */
    int status = 1;
    double start = g3n_now_seconds();
    if (model_dir) {
        if (g3n_config_load(&config, model_dir, &err) != G3N_OK ||
            g3n_weights_open_checkpoint(&weights, model_dir, &err) != G3N_OK)
            goto done;
    } else {
        char config_path[1024];
        uint64_t seed;
        if (g3n_parse_synth_spec(synth_spec, config_path, sizeof config_path, &seed, &err) != G3N_OK ||
            g3n_config_load(&config, config_path, &err) != G3N_OK ||
            g3n_weights_open_synth(&weights, seed, G3N_DTYPE_F32, &err) != G3N_OK)
            goto done;
    }
    if (g3n_vision_encoder_load_precision(&encoder, &config, weights, precision, &err) != G3N_OK)
        goto done;
    const g3n_vision_config *vc = g3n_vision_encoder_config(encoder);
    int64_t side = vc->image_size, tokens = vc->soft_tokens, text_hidden = g3n_vision_encoder_text_hidden(encoder);
    options.size = (int)side;
    printf("weights: %s (vision multiplier %g), loaded in %.2f s; %d threads, %s kernels, %s compute\n",
           g3n_weights_describe(weights), vc->channel_multiplier, g3n_now_seconds() - start, g3n_get_threads(),
           g3n_isa_name(g3n_isa_active()), g3n_precision_name(precision));
    int64_t image_floats = 3 * side * side;
    pixels = malloc(sizeof(float) * (size_t)(image_floats * batch));
    embeds = malloc(sizeof(float) * (size_t)(tokens * text_hidden * batch));
    index = malloc(sizeof(int) * (size_t)batch);
    if (!pixels || !embeds || !index) {
        g3n_error_set(&err, "out of memory for %d images", batch);
        goto done;
    }
    double encode_total = 0.0;
    int failed = 0;
    for (int first = 0; first < file_count; first += batch) {
        int count = file_count - first < batch ? file_count - first : batch;
        int ok_count = 0;
        for (int i = 0; i < count; i++) {
            double t0 = g3n_now_seconds();
            g3n_error image_err = {{0}};
            if (pixel_values) {
                if (read_pixel_values(pixel_values, side, pixels, &err) != G3N_OK)
                    goto done;
            } else if (g3n_image_preprocess_file(files[first + i], &options, pixels + ok_count * image_floats,
                                                 &image_err) != G3N_OK) {
                fprintf(stderr, "g3n encode-image: error: %s\n", image_err.message);
                failed++;
                continue;
            }
            printf("%s: preprocessed in %.3f s\n", files[first + i], g3n_now_seconds() - t0);
            index[ok_count++] = first + i;
        }
        if (ok_count == 0)
            continue;
        double t0 = g3n_now_seconds();
        if (save_tower && write_tower(encoder, pixels, (int)side, save_tower, &err) != G3N_OK)
            goto done;
        if (g3n_vision_encoder_encode(encoder, pixels, ok_count, (int)side, (int)side, NULL, embeds, &err) != G3N_OK)
            goto done;
        double seconds = g3n_now_seconds() - t0;
        encode_total += seconds;
        for (int i = 0; i < ok_count; i++) {
            const float *e = embeds + (int64_t)i * tokens * text_hidden;
            double sum_sq = 0.0;
            for (int64_t j = 0; j < tokens * text_hidden; j++)
                sum_sq += (double)e[j] * e[j];
            printf("%s: soft tokens [%lld, %lld] rms %.4f, %.2f s per image\n", files[index[i]], (long long)tokens,
                   (long long)text_hidden, sqrt(sum_sq / (double)(tokens * text_hidden)), seconds / ok_count);
        }
    }
    int encoded = file_count - failed;
    if (encoded > 0)
        printf("encoded %d image(s): %.2f s per image (tower + embed_vision)\n", encoded, encode_total / encoded);
    status = failed ? 1 : 0;
done:
    if (status != 0 && err.message[0])
        fprintf(stderr, "g3n encode-image: error: %s\n", err.message);
    free(index);
    free(embeds);
    free(pixels);
    g3n_vision_encoder_free(encoder);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    free(files);
    return status;
}
