/* test_vision_preprocess.c - image bytes -> pixel_values (services/vision_encoder/image_preprocess.h):
 * every input format, alpha, grey, 1x1, very wide, GIF first frame, the buffer
 * API, a truncated file, a non-image, a pixel limit and a header-only pixel bomb;
 * and the resize against an independent port of Pillow's BILINEAR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "image_preprocess.h"
#include "json_util.h"
#include "test_util.h"

#define W 61
#define H 43

static char temp_dir[1024];

/* A deterministic RGB(A) test picture, w x h x bands u8. */
static uint8_t *make_picture(int w, int h, int bands)
{
    uint8_t *p = malloc((size_t)w * h * bands);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int b = 0; b < bands; b++)
                p[((size_t)y * w + x) * bands + b] =
                    (uint8_t)(b == 3 ? (x * 7 + y * 3) % 256
                                     : x * 150 / (w > 1 ? w - 1 : 1) + y * 20 * (b + 1) / (h > 1 ? h - 1 : 1) + 10 * b);
    return p;
}

static void save_picture(const uint8_t *pixels, int w, int h, int bands, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", temp_dir, name);
    VipsImage *image = vips_image_new_from_memory_copy(pixels, (size_t)w * h * bands, w, h, bands, VIPS_FORMAT_UCHAR);
    assert_non_null(image);
    if (bands >= 3)
        image->Type = VIPS_INTERPRETATION_sRGB;
    else
        image->Type = VIPS_INTERPRETATION_B_W;
    int rc = vips_image_write_to_file(image, path, NULL);
    if (rc != 0)
        fprintf(stderr, "save %s: %s\n", path, vips_error_buffer());
    assert_int_equal(rc, 0);
    g_object_unref(image);
}

static float *preprocess(const char *path, int size, int expect_ok)
{
    g3n_image_options options = g3n_image_default_options();
    options.size = size;
    float *out = malloc(sizeof(float) * 3 * (size_t)size * size);
    g3n_error err = {{0}};
    int rc = g3n_image_preprocess_file(path, &options, out, &err);
    if (expect_ok && rc != G3N_OK)
        fprintf(stderr, "%s\n", err.message);
    assert_int_equal(rc, expect_ok ? G3N_OK : G3N_ERR);
    if (!expect_ok) {
        assert_true(strlen(err.message) > 0);
        free(out);
        return NULL;
    }
    return out;
}

static double mean_abs_difference(const float *a, const float *b, int64_t n, double *max)
{
    double sum = 0.0;
    *max = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        sum += d;
        if (d > *max)
            *max = d;
    }
    return sum / (double)n;
}

static int setup(void **state)
{
    (void)state;
    g3n_error err;
    assert_int_equal(g3n_image_init(&err), G3N_OK);
    g3n_test_temp_dir(temp_dir, sizeof temp_dir);
    return temp_dir[0] ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    g3n_test_remove_tree(temp_dir);
    return 0;
}

static void write_bytes(const char *path, const void *data, size_t size);

/* Every format decodes; the lossless ones give exactly the PNG's pixel_values. */
static void test_formats(void **state)
{
    (void)state;
    uint8_t *picture = make_picture(W, H, 3);
    char path[1200];
    save_picture(picture, W, H, 3, "picture.png", path, sizeof path);
    float *reference = preprocess(path, 96, 1);
    const char *lossless[] = {"picture.tif", "picture.webp[lossless]"};
    for (size_t i = 0; i < sizeof lossless / sizeof lossless[0]; i++) {
        save_picture(picture, W, H, 3, lossless[i], path, sizeof path);
        char *bracket = strchr(path, '[');
        if (bracket)
            *bracket = '\0';
        float *out = preprocess(path, 96, 1);
        double max;
        double mean = mean_abs_difference(out, reference, 3 * 96 * 96, &max);
        if (max != 0.0)
            fprintf(stderr, "%s: mean %g max %g\n", lossless[i], mean, max);
        assert_true(max == 0.0);
        free(out);
    }
    /* 16-bit RGB (PNG and TIFF): converted to 8 bits, v*257 -> v */
    uint16_t *deep = malloc(sizeof(uint16_t) * W * H * 3);
    for (int i = 0; i < W * H * 3; i++)
        deep[i] = (uint16_t)(picture[i] * 257);
    const char *deep_files[] = {"deep.png", "deep.tif"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", temp_dir, deep_files[i]);
        VipsImage *image = vips_image_new_from_memory_copy(deep, sizeof(uint16_t) * W * H * 3, W, H, 3,
                                                           VIPS_FORMAT_USHORT);
        image->Type = VIPS_INTERPRETATION_RGB16;
        assert_int_equal(vips_image_write_to_file(image, path, NULL), 0);
        g_object_unref(image);
        float *out = preprocess(path, 96, 1);
        double max;
        mean_abs_difference(out, reference, 3 * 96 * 96, &max);
        assert_true(max == 0.0);
        free(out);
    }
    free(deep);
    const char *lossy[] = {"picture.jpg", "picture.webp", "picture.gif"};
    for (size_t i = 0; i < sizeof lossy / sizeof lossy[0]; i++) {
        save_picture(picture, W, H, 3, lossy[i], path, sizeof path);
        float *out = preprocess(path, 96, 1);
        double max;
        double mean = mean_abs_difference(out, reference, 3 * 96 * 96, &max);
        if (mean > 0.03)
            fprintf(stderr, "%s: mean %g max %g\n", lossy[i], mean, max);
        assert_true(mean < 0.03);
        free(out);
    }
    /* BMP (ImageMagick) and PPM (a loader libvips marks untrusted) have no safe loader: refused, named */
    const char *refused[] = {"picture.bmp", "picture.ppm"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (i == 0) { /* written here: libvips' BMP saver is ImageMagick's, blocked in this process */
            const uint32_t row = (uint32_t)((W * 3 + 3) & ~3), data = row * H, file = 54 + data;
            uint8_t *bmp = calloc(1, file);
            const uint32_t fields[] = {file, 0, 54, 40, W, H};
            bmp[0] = 'B', bmp[1] = 'M';
            memcpy(bmp + 2, &fields[0], 4);
            memcpy(bmp + 10, &fields[2], 4);
            memcpy(bmp + 14, &fields[3], 4);
            memcpy(bmp + 18, &fields[4], 4);
            memcpy(bmp + 22, &fields[5], 4);
            bmp[26] = 1, bmp[28] = 24;
            memcpy(bmp + 34, &data, 4);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < 3; c++)
                        bmp[54 + (size_t)(H - 1 - y) * row + (size_t)x * 3 + (size_t)c] =
                            picture[((size_t)y * W + (size_t)x) * 3 + (size_t)(2 - c)];
            snprintf(path, sizeof path, "%s/%s", temp_dir, refused[i]);
            write_bytes(path, bmp, file);
            free(bmp);
        } else {
            save_picture(picture, W, H, 3, refused[i], path, sizeof path);
        }
        float *out = malloc(sizeof(float) * 3 * 96 * 96);
        g3n_image_options options = g3n_image_default_options();
        options.size = 96;
        g3n_error err = {{0}};
        assert_int_equal(g3n_image_preprocess_file(path, &options, out, &err), G3N_ERR);
        if (!strstr(err.message, "not an image format g3n accepts") && !strstr(err.message, "not an image libvips"))
            fail_msg("%s: %s", refused[i], err.message);
        free(out);
    }
    free(reference);
    free(picture);
}

/* The EXIF orientation is applied as the reference's load_image does
 * (ImageOps.exif_transpose): a picture stored sideways with orientation 6
 * ("rotate 90 clockwise to display") gives the upright picture's pixel_values
 * (exactly for lossless TIFF; within JPEG's loss for JPEG). The golden case is
 * image-preprocess's image-rotated.jpg. */
static void test_exif_orientation(void **state)
{
    (void)state;
    uint8_t *picture = make_picture(W, H, 3);
    char path[1200];
    save_picture(picture, W, H, 3, "upright.tif", path, sizeof path);
    float *upright = preprocess(path, 96, 1);
    save_picture(picture, W, H, 3, "upright.jpg", path, sizeof path);
    float *upright_jpeg = preprocess(path, 96, 1);
    VipsImage *image = vips_image_new_from_memory_copy(picture, (size_t)W * H * 3, W, H, 3, VIPS_FORMAT_UCHAR);
    image->Type = VIPS_INTERPRETATION_sRGB;
    VipsImage *stored = NULL;
    assert_int_equal(vips_rot(image, &stored, VIPS_ANGLE_D270, NULL), 0); /* 90 counter-clockwise */
    assert_int_equal(stored->Xsize, H);
    vips_image_set_int(stored, "orientation", 6);
    const char *names[2] = {"sideways.tif", "sideways.jpg"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", temp_dir, names[i]);
        assert_int_equal(vips_image_write_to_file(stored, path, NULL), 0);
        float *out = preprocess(path, 96, 1);
        double max;
        double mean = mean_abs_difference(out, i == 0 ? upright : upright_jpeg, 3 * 96 * 96, &max);
        if (i == 0 ? max != 0.0 : mean > 0.03)
            fail_msg("%s: mean %g max %g from the upright picture", names[i], mean, max);
        free(out);
    }
    g_object_unref(stored);
    g_object_unref(image);
    free(upright);
    free(upright_jpeg);
    free(picture);
}

/* Untrusted bytes reach only the allowed loaders: an MP4 sent as an image went
 * to ImageMagick (magickload, its TGA reader); now refused before any loader
 * runs, the same for a buffer and a file. */
static void test_only_allowed_loaders(void **state)
{
    (void)state;
    uint8_t mp4[256];
    memset(mp4, 0, sizeof mp4);
    const uint8_t box[] = {0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'm', 'p', '4', '2', 0, 0, 0, 0,
                           'i', 's', 'o', 'm', 'm', 'p', '4', '2', 0, 0, 0, 8, 'm', 'd', 'a', 't'};
    memcpy(mp4, box, sizeof box);
    for (size_t i = sizeof box; i < sizeof mp4; i++)
        mp4[i] = (uint8_t)(i * 7);
    /* a TGA header (no magic number: ImageMagick guesses) */
    uint8_t tga[18 + 4 * 4 * 3];
    memset(tga, 0x40, sizeof tga);
    memset(tga, 0, 18);
    tga[2] = 2;
    tga[12] = 4;
    tga[14] = 4;
    tga[16] = 24;
    const struct {
        const uint8_t *data;
        size_t size;
        const char *name;
    } cases[] = {{mp4, sizeof mp4, "video.mp4"}, {tga, sizeof tga, "picture.tga"}};
    float *out = malloc(sizeof(float) * 3 * 64 * 64);
    g3n_image_options options = g3n_image_default_options();
    options.size = 64;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g3n_error err = {{0}};
        assert_int_equal(g3n_image_preprocess_buffer(cases[i].data, cases[i].size, &options, out, &err), G3N_ERR);
        if (strstr(err.message, "magick") || (!strstr(err.message, "not an image format g3n accepts") &&
                                               !strstr(err.message, "not an image libvips can read")))
            fail_msg("%s (buffer): %s", cases[i].name, err.message);
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", temp_dir, cases[i].name);
        write_bytes(path, cases[i].data, cases[i].size);
        assert_int_equal(g3n_image_preprocess_file(path, &options, out, &err), G3N_ERR);
        if (strstr(err.message, "magick") || (!strstr(err.message, "not an image format g3n accepts") &&
                                               !strstr(err.message, "not an image libvips can read")))
            fail_msg("%s (file): %s", cases[i].name, err.message);
    }
    free(out);
}

/* Alpha is dropped as PIL's convert("RGB") does: the RGB bands unchanged, not composited. */
static void test_alpha_and_grey(void **state)
{
    (void)state;
#undef H
#define H W /* square: pixel_values of the same size, no resize */
    uint8_t *rgba = make_picture(W, H, 4);
    uint8_t *rgb = malloc((size_t)W * H * 3);
    uint8_t *grey = malloc((size_t)W * H);
    for (int i = 0; i < W * H; i++) {
        memcpy(rgb + i * 3, rgba + i * 4, 3);
        grey[i] = rgba[i * 4];
    }
    char path[1200];
    save_picture(rgba, W, H, 4, "alpha.png", path, sizeof path);
    float *with_alpha = preprocess(path, W, 1); /* same size: no resize, exact u8/255 */
    save_picture(rgb, W, H, 3, "opaque.png", path, sizeof path);
    float *opaque = preprocess(path, W, 1);
    assert_memory_equal(with_alpha, opaque, sizeof(float) * 3 * W * H);
    /* u8 * float32(1/255), NCHW */
    const float rescale = (float)(1.0 / 255.0);
    assert_true(opaque[0 * W * H + 5 * W + 7] == (float)rgb[(5 * W + 7) * 3 + 0] * rescale);
    assert_true(opaque[2 * W * H + 9 * W + 3] == (float)rgb[(9 * W + 3) * 3 + 2] * rescale);
    /* grey -> the same value in R, G and B */
    save_picture(grey, W, H, 1, "grey.png", path, sizeof path);
    float *grey_out = preprocess(path, W, 1);
    for (int i = 0; i < W * H; i++) {
        float g = (float)grey[i] * rescale;
        assert_true(grey_out[i] == g && grey_out[W * H + i] == g && grey_out[2 * W * H + i] == g);
    }
    free(with_alpha);
    free(opaque);
    free(grey_out);
    free(rgba);
    free(rgb);
    free(grey);
#undef H
#define H 43
}

/* A 1x1 image becomes a constant 768x768 image; a very wide one resizes too. */
static void test_tiny_and_wide(void **state)
{
    (void)state;
    uint8_t one[3] = {10, 128, 250};
    char path[1200];
    save_picture(one, 1, 1, 3, "one.png", path, sizeof path);
    float *out = preprocess(path, 768, 1);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 768 * 768; i += 997)
            assert_true(fabsf(out[c * 768 * 768 + i] - one[c] / 255.0f) < 1e-6f);
    free(out);
    int w = 5000, h = 2;
    uint8_t *wide = make_picture(w, h, 3);
    save_picture(wide, w, h, 3, "wide.png", path, sizeof path);
    out = preprocess(path, 768, 1);
    for (int i = 0; i < 3 * 768 * 768; i++)
        assert_true(out[i] >= 0.0f && out[i] <= 1.0f);
    /* red is a left-to-right ramp (plus a per-row offset): each output row increases up to the wrap */
    assert_true(out[10] < out[300]);
    free(out);
    free(wide);
}

/* The resize is Pillow's BILINEAR within 1/255: an independent float port of
 * ImagingResample (triangle filter, support scaled when shrinking, centres at
 * +0.5, taps renormalised at the edges), horizontal pass then vertical, u8 in between. */
static void pillow_axis(const uint8_t *in, int in_w, int in_h, int out_w, int horizontal, uint8_t *out)
{
    int in_size = horizontal ? in_w : in_h;
    double scale = (double)in_size / out_w, filter_scale = scale < 1.0 ? 1.0 : scale, support = filter_scale;
    int lines = horizontal ? in_h : in_w;
    for (int i = 0; i < out_w; i++) {
        double center = (i + 0.5) * scale;
        int first = (int)(center - support + 0.5), last = (int)(center + support + 0.5);
        if (first < 0)
            first = 0;
        if (last > in_size)
            last = in_size;
        double weights[64], total = 0.0;
        for (int j = first; j < last; j++) {
            double t = fabs((j - center + 0.5) / filter_scale);
            weights[j - first] = t < 1.0 ? 1.0 - t : 0.0;
            total += weights[j - first];
        }
        for (int l = 0; l < lines; l++)
            for (int c = 0; c < 3; c++) {
                double acc = 0.0;
                for (int j = first; j < last; j++) {
                    size_t index = horizontal ? ((size_t)l * in_w + j) : ((size_t)j * in_w + l);
                    acc += weights[j - first] / total * in[index * 3 + c];
                }
                long v = lround(acc);
                size_t o = horizontal ? ((size_t)l * out_w + i) : ((size_t)i * in_w + l);
                out[o * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
}

static void check_against_pillow(int w, int h, int size)
{
    uint8_t *picture = make_picture(w, h, 3);
    for (int i = 0; i < w * h * 3; i++) /* some texture */
        picture[i] = (uint8_t)(picture[i] + (((uint32_t)i * 2654435761u) >> 28));
    char path[1200], name[64];
    snprintf(name, sizeof name, "pil_%dx%d.png", w, h);
    save_picture(picture, w, h, 3, name, path, sizeof path);
    float *out = preprocess(path, size, 1);
    uint8_t *mid = malloc((size_t)size * h * 3), *expected = malloc((size_t)size * size * 3);
    if (w != size)
        pillow_axis(picture, w, h, size, 1, mid);
    else
        memcpy(mid, picture, (size_t)w * h * 3);
    if (h != size)
        pillow_axis(mid, size, h, size, 0, expected);
    else
        memcpy(expected, mid, (size_t)size * size * 3);
    double sum = 0.0, max = 0.0;
    int where = 0;
    for (int p = 0; p < size * size; p++)
        for (int c = 0; c < 3; c++) {
            double d = fabs(out[c * size * size + p] - expected[p * 3 + c] / 255.0);
            sum += d;
            if (d > max)
                max = d, where = p;
        }
    fprintf(stderr, "pillow: largest difference at y=%d x=%d\n", where / size, where % size);
    double mean = sum / (3.0 * size * size);
    fprintf(stderr, "pillow %dx%d -> %d: mean_abs %.2e max_abs %.2e\n", w, h, size, mean, max);
    assert_true(mean <= 0.002);
    assert_true(max <= 3.0 / 255.0 + 1e-6);
    free(out);
    free(mid);
    free(expected);
    free(picture);
}

static void test_resize_matches_pillow(void **state)
{
    (void)state;
    check_against_pillow(200, 150, 96); /* shrink both */
    check_against_pillow(40, 30, 96);   /* enlarge both */
    check_against_pillow(150, 60, 96);  /* shrink one axis, enlarge the other */
    check_against_pillow(96, 53, 96);   /* one axis untouched */
}

/* GIF: the first frame only. */
static void test_gif_first_frame(void **state)
{
    (void)state;
    int w = 16, h = 8;
    uint8_t *frames = malloc((size_t)w * h * 2 * 3);
    for (int i = 0; i < w * h * 2; i++) {
        int second = i >= w * h;
        frames[i * 3 + 0] = second ? 0 : 255;
        frames[i * 3 + 1] = 0;
        frames[i * 3 + 2] = second ? 255 : 0;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/animated.gif", temp_dir);
    VipsImage *image = vips_image_new_from_memory_copy(frames, (size_t)w * h * 2 * 3, w, h * 2, 3, VIPS_FORMAT_UCHAR);
    image->Type = VIPS_INTERPRETATION_sRGB;
    vips_image_set_int(image, "page-height", h);
    assert_int_equal(vips_image_write_to_file(image, path, NULL), 0);
    g_object_unref(image);
    float *out = preprocess(path, 32, 1);
    assert_true(out[0] > 0.9f);                 /* red from frame 0 */
    assert_true(out[2 * 32 * 32 + 500] < 0.1f); /* no blue */
    free(out);
    free(frames);
}

/* The buffer API gives what the file API gives. */
static void test_buffer(void **state)
{
    (void)state;
    char path[1200];
    g3n_test_fixture("image-preprocess/image.jpg", path, sizeof path);
    char *data;
    size_t size;
    g3n_error err;
    assert_int_equal(g3n_read_file(path, &data, &size, &err), G3N_OK);
    float *from_file = preprocess(path, 128, 1);
    float *from_buffer = malloc(sizeof(float) * 3 * 128 * 128);
    g3n_image_options options = g3n_image_default_options();
    options.size = 128;
    assert_int_equal(g3n_image_preprocess_buffer(data, size, &options, from_buffer, &err), G3N_OK);
    assert_memory_equal(from_file, from_buffer, sizeof(float) * 3 * 128 * 128);
    /* a truncated buffer fails */
    assert_int_equal(g3n_image_preprocess_buffer(data, size / 2, &options, from_buffer, &err), G3N_ERR);
    assert_int_equal(g3n_image_preprocess_buffer(data, 0, &options, from_buffer, &err), G3N_ERR);
    free(from_file);
    free(from_buffer);
    free(data);
}

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

/* Truncated files and non-images: clear errors. */
static void test_bad_files(void **state)
{
    (void)state;
    char source[1200], path[1200];
    char *data;
    size_t size;
    g3n_error err;
    const char *fixtures[] = {"image-preprocess/image.png", "image-preprocess/image.jpg"};
    for (int i = 0; i < 2; i++) {
        g3n_test_fixture(fixtures[i], source, sizeof source);
        assert_int_equal(g3n_read_file(source, &data, &size, &err), G3N_OK);
        snprintf(path, sizeof path, "%s/truncated%s", temp_dir, strrchr(fixtures[i], '.'));
        write_bytes(path, data, size / 3);
        assert_null(preprocess(path, 64, 0));
        free(data);
    }
    snprintf(path, sizeof path, "%s/notes.txt", temp_dir);
    write_bytes(path, "1,2,3\n4,5,6\n", 12); /* csv: a loader that would accept it is blocked */
    assert_null(preprocess(path, 64, 0));
    snprintf(path, sizeof path, "%s/missing.png", temp_dir);
    assert_null(preprocess(path, 64, 0));
}

static uint32_t crc32_bytes(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (uint32_t)-(int32_t)(crc & 1));
    }
    return crc ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Decompression bombs: refused from the header, before any decoding. */
static void test_pixel_bomb(void **state)
{
    (void)state;
    /* a PNG whose header claims 100000 x 100000 RGB pixels (30 GB decoded), an empty IDAT */
    uint8_t png[8 + 25 + 20 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *ihdr = png + 8;
    put32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put32(ihdr + 8, 100000);
    put32(ihdr + 12, 100000);
    ihdr[16] = 8, ihdr[17] = 2, ihdr[18] = 0, ihdr[19] = 0, ihdr[20] = 0;
    put32(ihdr + 21, crc32_bytes(ihdr + 4, 17));
    uint8_t *idat = png + 33;
    const uint8_t empty_zlib[8] = {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
    put32(idat, 8);
    memcpy(idat + 4, "IDAT", 4);
    memcpy(idat + 8, empty_zlib, 8);
    put32(idat + 16, crc32_bytes(idat + 4, 12));
    uint8_t *iend = png + 53;
    put32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    put32(iend + 8, crc32_bytes(iend + 4, 4));
    char path[1200];
    snprintf(path, sizeof path, "%s/bomb.png", temp_dir);
    write_bytes(path, png, sizeof png);
    g3n_image_options options = g3n_image_default_options();
    float *out = malloc(sizeof(float) * 3 * 768 * 768);
    g3n_error err = {{0}};
    assert_int_equal(g3n_image_preprocess_file(path, &options, out, &err), G3N_ERR);
    fprintf(stderr, "bomb: %s\n", err.message);
    assert_non_null(strstr(err.message, "exceeds the limit"));
    /* the limit is configurable: a small real image over a small limit */
    g3n_test_fixture("image-preprocess/image.jpg", path, sizeof path);
    options.max_pixels = 640 * 480 - 1;
    assert_int_equal(g3n_image_preprocess_file(path, &options, out, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "exceeds the limit"));
    options.max_pixels = 640 * 480;
    assert_int_equal(g3n_image_preprocess_file(path, &options, out, &err), G3N_OK);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),        cmocka_unit_test(test_alpha_and_grey),
        cmocka_unit_test(test_tiny_and_wide),  cmocka_unit_test(test_resize_matches_pillow),
        cmocka_unit_test(test_gif_first_frame), cmocka_unit_test(test_buffer),
        cmocka_unit_test(test_bad_files),      cmocka_unit_test(test_pixel_bomb),
        cmocka_unit_test(test_only_allowed_loaders), cmocka_unit_test(test_exif_orientation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
