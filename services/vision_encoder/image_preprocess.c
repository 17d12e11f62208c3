/* image_preprocess.c - image bytes -> pixel_values with libvips (see image_preprocess.h). */
#include "image_preprocess.h"
#include "image_preprocess_rgb.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

/* Loaders that turn arbitrary non-image bytes into an "image" (text, raw
 * matrices) or reach outside the file (pdf, svg): never wanted here. */
static const char *const blocked_loaders[] = {
    "VipsForeignLoadCsv",  "VipsForeignLoadMatrix",    "VipsForeignLoadRaw", "VipsForeignLoadVips",
    "VipsForeignLoadFits", "VipsForeignLoadOpenslide", "VipsForeignLoadPdf", "VipsForeignLoadSvg",
    "VipsForeignLoadAnalyze",
};

/* Untrusted bytes reach only these loaders (an MP4 sent as an image reached
 * ImageMagick's TGA reader through magickload): every other loader is blocked,
 * libvips' "untrusted" operations included, and open_image checks the loader
 * it found by name too. PPM and BMP have no safe loader in libvips (ppmload is
 * marked untrusted, BMP goes through ImageMagick): refused. */
static const char *const allowed_loaders[] = {
    "VipsForeignLoadJpeg", "VipsForeignLoadPng", "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif", "VipsForeignLoadTiff", "VipsForeignLoadHeif",
};
static const char *const allowed_nicknames[] = {"jpegload", "pngload", "webpload", "gifload", "tiffload", "heifload"};

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_ready;

static void vips_start(void)
{
    if (VIPS_INIT("g3n") != 0)
        return;
    vips_cache_set_max(0); /* files may change between calls; nothing to reuse */
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE); /* every loader ... */
    for (size_t i = 0; i < sizeof allowed_loaders / sizeof allowed_loaders[0]; i++)
        vips_operation_block_set(allowed_loaders[i], FALSE); /* ... but these */
    for (size_t i = 0; i < sizeof blocked_loaders / sizeof blocked_loaders[0]; i++)
        vips_operation_block_set(blocked_loaders[i], TRUE);
    vips_ready = 1;
}

/* The loader libvips found ("VipsForeignLoadPngFile", or a nickname such as
 * "pngload_buffer"): allowed when it is one of allowed_loaders' File / Buffer
 * / Source classes (or their nicknames). */
static int loader_allowed(const char *loader)
{
    static const char *const suffixes[] = {"", "File", "Buffer", "Source"};
    for (size_t i = 0; i < sizeof allowed_loaders / sizeof allowed_loaders[0]; i++) {
        size_t n = strlen(allowed_loaders[i]);
        if (strncmp(loader, allowed_loaders[i], n) == 0)
            for (size_t k = 0; k < sizeof suffixes / sizeof suffixes[0]; k++)
                if (strcmp(loader + n, suffixes[k]) == 0)
                    return 1;
    }
    for (size_t i = 0; i < sizeof allowed_nicknames / sizeof allowed_nicknames[0]; i++) {
        size_t n = strlen(allowed_nicknames[i]);
        if (strncmp(loader, allowed_nicknames[i], n) == 0 &&
            (loader[n] == '\0' || strcmp(loader + n, "_buffer") == 0 || strcmp(loader + n, "_source") == 0))
            return 1;
    }
    return 0;
}

static int refuse_loader(g3n_error *err, const char *what, const char *loader)
{
    return g3n_error_set(err, "%s: not an image format g3n accepts (libvips would use %s); send JPEG, PNG, WebP, GIF, "
                              "TIFF or HEIF/AVIF",
                         what, loader);
}

g3n_image_options g3n_image_default_options(void)
{
    g3n_image_options options = {768, 178956970};
    return options;
}

int g3n_image_init(g3n_error *err)
{
    pthread_once(&vips_once, vips_start);
    if (!vips_ready)
        return g3n_error_set(err, "libvips failed to initialise: %s", vips_error_buffer());
    return G3N_OK;
}

/* Takes libvips' error text into err (without its trailing newline) and clears it. */
static int vips_failure(g3n_error *err, const char *what, const char *action)
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
    return g3n_error_set(err, "%s: %s: %s", what, action, n ? message : "libvips error");
}

/* Opens the header (lazy: nothing decoded yet); file when path, else buffer. */
static int open_image(const char *path, const void *data, size_t size, VipsImage **image, g3n_error *err)
{
    if (g3n_image_init(err) != G3N_OK)
        return G3N_ERR;
    const char *what = path ? path : "buffer";
    if (path) {
        const char *loader = vips_foreign_find_load(path);
        if (!loader)
            return vips_failure(err, what, "not an image libvips can read");
        if (!loader_allowed(loader))
            return refuse_loader(err, what, loader);
        *image = vips_image_new_from_file(path, "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    } else {
        if (!data || size == 0)
            return g3n_error_set(err, "buffer: empty");
        const char *loader = vips_foreign_find_load_buffer(data, size);
        if (!loader)
            return vips_failure(err, what, "not an image libvips can read");
        if (!loader_allowed(loader))
            return refuse_loader(err, what, loader);
        *image = vips_image_new_from_buffer(data, size, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    }
    if (!*image)
        return vips_failure(err, what, "cannot read image");
    /* the EXIF orientation applied, as the reference's load_image does
     * (PIL.ImageOps.exif_transpose): a photo taken sideways reaches the tower upright */
    VipsImage *upright = NULL;
    if (vips_autorot(*image, &upright, NULL) != 0) {
        g_object_unref(*image);
        *image = NULL;
        return vips_failure(err, what, "cannot apply the EXIF orientation");
    }
    g_object_unref(*image);
    *image = upright;
    return G3N_OK;
}

/* PIL convert("RGB"): 8-bit sRGB, grey replicated, alpha (and extra bands) dropped. */
static int to_rgb8(VipsImage *in, VipsImage **out, const char *what, g3n_error *err)
{
    VipsImage *srgb = NULL, *rgb = NULL;
    if (vips_colourspace(in, &srgb, VIPS_INTERPRETATION_sRGB, NULL) != 0)
        return vips_failure(err, what, "cannot convert to sRGB");
    int rc;
    if (srgb->Bands >= 3) {
        rc = vips_extract_band(srgb, &rgb, 0, "n", 3, NULL);
    } else { /* a 1/2-band image the colourspace left alone: replicate the first band */
        VipsImage *grey = NULL;
        rc = vips_extract_band(srgb, &grey, 0, NULL);
        if (rc == 0) {
            VipsImage *bands[3] = {grey, grey, grey};
            rc = vips_bandjoin(bands, &rgb, 3, NULL);
            g_object_unref(grey);
        }
    }
    g_object_unref(srgb);
    if (rc != 0)
        return vips_failure(err, what, "cannot take the RGB bands");
    if (rgb->BandFmt != VIPS_FORMAT_UCHAR) {
        VipsImage *u8 = NULL;
        rc = vips_cast_uchar(rgb, &u8, NULL);
        g_object_unref(rgb);
        if (rc != 0)
            return vips_failure(err, what, "cannot convert to 8 bits");
        rgb = u8;
    }
    *out = rgb;
    return G3N_OK;
}

/* One axis of Pillow's BILINEAR resize: shrink with libvips' reduce (a triangle
 * widened by the scale, centres aligned), enlarge with an affine whose input
 * and output centres sit at +0.5 and whose edges extend by copying. */
static int resize_axis(VipsImage *in, VipsImage **out, int horizontal, int size, const char *what, g3n_error *err)
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
        /* output x' = scale * (x + idx) + odx; x' + 0.5 = scale * (x + 0.5) */
        double idx = horizontal ? 0.5 : 0.0, idy = horizontal ? 0.0 : 0.5;
        double odx = horizontal ? -0.5 : 0.0, ody = horizontal ? 0.0 : -0.5;
        rc = vips_affine(in, out, horizontal ? scale : 1.0, 0.0, 0.0, horizontal ? 1.0 : scale, "interpolate",
                         bilinear, "oarea", area, "idx", idx, "idy", idy, "odx", odx, "ody", ody, "extend",
                         VIPS_EXTEND_COPY, NULL);
        vips_area_unref(VIPS_AREA(area));
        g_object_unref(bilinear);
    }
    if (rc != 0)
        return vips_failure(err, what, "cannot resize");
    return G3N_OK;
}

/* Decoded, checked, RGB u8 image (still lazy). */
static int load_rgb(const char *path, const void *data, size_t size, const g3n_image_options *options,
                    VipsImage **rgb, g3n_error *err)
{
    const char *what = path ? path : "buffer";
    VipsImage *image = NULL;
    if (open_image(path, data, size, &image, err) != G3N_OK)
        return G3N_ERR;
    int64_t pixels = (int64_t)image->Xsize * image->Ysize;
    if (image->Xsize < 1 || image->Ysize < 1 || pixels > options->max_pixels) {
        g3n_error_set(err, "%s: image of %dx%d = %lld pixels exceeds the limit of %lld pixels", what, image->Xsize,
                      image->Ysize, (long long)pixels, (long long)options->max_pixels);
        g_object_unref(image);
        return G3N_ERR;
    }
    int rc = to_rgb8(image, rgb, what, err);
    g_object_unref(image);
    return rc;
}

/* Runs the pipeline (decoding happens here) into a malloc'd u8 buffer. */
static int render(VipsImage *image, uint8_t **pixels, const char *what, g3n_error *err)
{
    size_t bytes = 0;
    void *memory = vips_image_write_to_memory(image, &bytes);
    if (!memory)
        return vips_failure(err, what, "cannot decode image");
    if (bytes != (size_t)image->Xsize * (size_t)image->Ysize * 3) {
        g_free(memory);
        return g3n_error_set(err, "%s: decoded %zu bytes, expected %dx%dx3", what, bytes, image->Xsize, image->Ysize);
    }
    *pixels = malloc(bytes);
    if (!*pixels) {
        g_free(memory);
        return g3n_error_set(err, "%s: out of memory", what);
    }
    memcpy(*pixels, memory, bytes);
    g_free(memory);
    return G3N_OK;
}

/* The part every input shares: RGB u8 image -> size x size (Pillow BILINEAR,
 * horizontal pass first) -> x * float32(1/255) -> [3, size, size] NCHW. */
static int resize_to_pixel_values(VipsImage *rgb, const g3n_image_options *options, float *pixel_values,
                                  const char *what, g3n_error *err)
{
    VipsImage *wide = NULL, *resized = NULL;
    int rc = resize_axis(rgb, &wide, 1, options->size, what, err);
    if (rc == G3N_OK)
        rc = resize_axis(wide, &resized, 0, options->size, what, err);
    uint8_t *pixels = NULL;
    if (rc == G3N_OK && (resized->Xsize != options->size || resized->Ysize != options->size))
        rc = g3n_error_set(err, "%s: resized to %dx%d, expected %dx%d", what, resized->Xsize, resized->Ysize,
                           options->size, options->size);
    if (rc == G3N_OK)
        rc = render(resized, &pixels, what, err);
    if (resized)
        g_object_unref(resized);
    if (wide)
        g_object_unref(wide);
    if (rc != G3N_OK)
        return G3N_ERR;
    const float rescale = (float)(1.0 / 255.0);
    int64_t plane = (int64_t)options->size * options->size;
    for (int64_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++)
            pixel_values[c * plane + p] = (float)pixels[p * 3 + c] * rescale;
    free(pixels);
    return G3N_OK;
}

static int preprocess(const char *path, const void *data, size_t size, const g3n_image_options *options,
                      float *pixel_values, g3n_error *err)
{
    const char *what = path ? path : "buffer";
    g3n_image_options defaults = g3n_image_default_options();
    if (!options)
        options = &defaults;
    if (options->size < 1)
        return g3n_error_set(err, "%s: output size %d", what, options->size);
    VipsImage *rgb = NULL;
    if (load_rgb(path, data, size, options, &rgb, err) != G3N_OK)
        return G3N_ERR;
    int rc = resize_to_pixel_values(rgb, options, pixel_values, what, err);
    g_object_unref(rgb);
    return rc;
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
        return vips_failure(err, "frame", "cannot wrap the pixels");
    }
    image->Type = VIPS_INTERPRETATION_sRGB;
    int rc = resize_to_pixel_values(image, options, pixel_values, "frame", err);
    g_object_unref(image);
    free(packed);
    return rc;
}

int g3n_image_preprocess_file(const char *path, const g3n_image_options *options, float *pixel_values,
                              g3n_error *err)
{
    return preprocess(path, NULL, 0, options, pixel_values, err);
}

int g3n_image_preprocess_buffer(const void *data, size_t size, const g3n_image_options *options,
                                float *pixel_values, g3n_error *err)
{
    return preprocess(NULL, data, size, options, pixel_values, err);
}

int g3n_image_decode_file(const char *path, const g3n_image_options *options, uint8_t **rgb, int *width, int *height,
                          g3n_error *err)
{
    g3n_image_options defaults = g3n_image_default_options();
    if (!options)
        options = &defaults;
    VipsImage *image = NULL;
    if (load_rgb(path, NULL, 0, options, &image, err) != G3N_OK)
        return G3N_ERR;
    *width = image->Xsize;
    *height = image->Ysize;
    int rc = render(image, rgb, path, err);
    g_object_unref(image);
    return rc;
}
