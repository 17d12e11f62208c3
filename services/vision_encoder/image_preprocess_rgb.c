/* image_preprocess_rgb.c - RGB frames -> pixel_values with libvips (see image_preprocess_rgb.h).
 * The resize mirrors image_preprocess.c's (Pillow BILINEAR) step by step. */
#include "image_preprocess_rgb.h"

#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

static int vips_failure(g3n_error *err, const char *action)
{
    char message[512];
    snprintf(message, sizeof message, "%s", vips_error_buffer());
    vips_error_clear();
    size_t n = strlen(message);
    while (n && (message[n - 1] == '\n' || message[n - 1] == ' '))
        message[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (message[i] == '\n')
            message[i] = ' ';
    return g3n_error_set(err, "frame: %s: %s", action, n ? message : "libvips error");
}

/* One axis of Pillow's BILINEAR resize (as image_preprocess.c). */
static int resize_axis(VipsImage *in, VipsImage **out, int horizontal, int size, g3n_error *err)
{
    int from = horizontal ? in->Xsize : in->Ysize;
    int rc;
    if (from == size) {
        g_object_ref(in);
        *out = in;
        return G3N_OK;
    }
    if (from > size) {
        double shrink = (double)from / size;
        rc = horizontal ? vips_reduceh(in, out, shrink, "kernel", VIPS_KERNEL_LINEAR, NULL)
                        : vips_reducev(in, out, shrink, "kernel", VIPS_KERNEL_LINEAR, NULL);
    } else {
        double scale = (double)size / from;
        VipsInterpolate *bilinear = vips_interpolate_new("bilinear");
        VipsArrayInt *area =
            vips_array_int_newv(4, 0, 0, horizontal ? size : in->Xsize, horizontal ? in->Ysize : size);
        double idx = horizontal ? 0.5 : 0.0, idy = horizontal ? 0.0 : 0.5;
        double odx = horizontal ? -0.5 : 0.0, ody = horizontal ? 0.0 : -0.5;
        rc = vips_affine(in, out, horizontal ? scale : 1.0, 0.0, 0.0, horizontal ? 1.0 : scale, "interpolate",
                         bilinear, "oarea", area, "idx", idx, "idy", idy, "odx", odx, "ody", ody, "extend",
                         VIPS_EXTEND_COPY, NULL);
        vips_area_unref(VIPS_AREA(area));
        g_object_unref(bilinear);
    }
    if (rc != 0)
        return vips_failure(err, "cannot resize");
    return G3N_OK;
}

int g3n_image_preprocess_rgb(const uint8_t *rgb, int width, int height, int stride, const g3n_image_options *options,
                             float *pixel_values, g3n_error *err)
{
    g3n_image_options defaults = g3n_image_default_options();
    if (!options)
        options = &defaults;
    if (!rgb || width < 1 || height < 1 || stride < width * 3)
        return g3n_error_set(err, "frame: bad geometry %dx%d (stride %d bytes)", width, height, stride);
    if ((int64_t)width * height > options->max_pixels)
        return g3n_error_set(err, "frame: %dx%d = %lld pixels exceeds the limit of %lld pixels", width, height,
                             (long long)width * height, (long long)options->max_pixels);
    if (options->size < 1)
        return g3n_error_set(err, "frame: output size %d", options->size);
    if (g3n_image_init(err) != G3N_OK)
        return G3N_ERR;
    /* a packed copy: libvips wants rows of exactly width * 3 bytes */
    const size_t row = (size_t)width * 3;
    uint8_t *packed = malloc(row * (size_t)height);
    if (!packed)
        return g3n_error_set(err, "frame: out of memory");
    for (int y = 0; y < height; y++)
        memcpy(packed + row * (size_t)y, rgb + (size_t)stride * (size_t)y, row);
    VipsImage *image = vips_image_new_from_memory(packed, row * (size_t)height, width, height, 3, VIPS_FORMAT_UCHAR);
    if (!image) {
        free(packed);
        return vips_failure(err, "cannot wrap the pixels");
    }
    image->Type = VIPS_INTERPRETATION_sRGB;
    VipsImage *wide = NULL, *resized = NULL;
    int rc = resize_axis(image, &wide, 1, options->size, err);
    if (rc == G3N_OK)
        rc = resize_axis(wide, &resized, 0, options->size, err);
    void *memory = NULL;
    size_t bytes = 0;
    if (rc == G3N_OK && (resized->Xsize != options->size || resized->Ysize != options->size))
        rc = g3n_error_set(err, "frame: resized to %dx%d, expected %dx%d", resized->Xsize, resized->Ysize,
                           options->size, options->size);
    if (rc == G3N_OK) {
        memory = vips_image_write_to_memory(resized, &bytes);
        if (!memory)
            rc = vips_failure(err, "cannot resize");
        else if (bytes != (size_t)options->size * (size_t)options->size * 3)
            rc = g3n_error_set(err, "frame: resized to %zu bytes, expected %dx%dx3", bytes, options->size,
                               options->size);
    }
    if (rc == G3N_OK) {
        const uint8_t *pixels = memory;
        const float rescale = (float)(1.0 / 255.0);
        const int64_t plane = (int64_t)options->size * options->size;
        for (int64_t p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                pixel_values[c * plane + p] = (float)pixels[p * 3 + c] * rescale;
    }
    g_free(memory);
    if (resized)
        g_object_unref(resized);
    if (wide)
        g_object_unref(wide);
    g_object_unref(image);
    free(packed);
    return rc;
}
