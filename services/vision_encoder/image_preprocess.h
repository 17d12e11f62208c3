/* image_preprocess.h - image bytes -> pixel_values, as Gemma 3n's image
 * processor makes them (transformers' Gemma3nImageProcessor), with libvips:
 *   decode (JPEG, PNG, WebP, GIF first frame, TIFF, HEIF/AVIF only) -> the
 *   EXIF orientation applied (as transformers' load_image: exif_transpose)
 *   -> 8-bit sRGB (grey replicated, alpha dropped as
 *   PIL's convert("RGB") does) -> resize to size x size (Pillow BILINEAR:
 *   libvips reduce when shrinking an axis, an affine with half-pixel centres
 *   and copied edges when enlarging it; untouched when already that size)
 *   -> x * float32(1/255), no mean/std -> [3, size, size] f32 NCHW, RGB.
 *
 * Safety: the header is read first and an image of more than max_pixels
 * decoded pixels is refused before decoding (decompression bombs); truncated
 * or corrupt data fail (libvips fail_on = truncated); every libvips loader but
 * those six is blocked (ImageMagick, PDF, SVG, raw, csv, ... and all that
 * libvips marks untrusted), and the loader found is checked by name too.
 * Errors name the file (or "buffer") and the reason.
 *
 * libvips is initialised once per process (thread-safe) by the first call.
 */
#ifndef G3N_IMAGE_PREPROCESS_H
#define G3N_IMAGE_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct g3n_image_options {
    int size;           /* output side in pixels (768 for Gemma 3n) */
    int64_t max_pixels; /* largest decoded width*height accepted */
} g3n_image_options;

/* size 768, max_pixels 178956970 (Pillow's DecompressionBombError limit). */
g3n_image_options g3n_image_default_options(void);

/* Initialises libvips (once; later calls are free). */
int g3n_image_init(g3n_error *err);

/* pixel_values: caller-owned [3, size, size] floats. */
int g3n_image_preprocess_file(const char *path, const g3n_image_options *options, float *pixel_values,
                              g3n_error *err);
int g3n_image_preprocess_buffer(const void *data, size_t size, const g3n_image_options *options,
                                float *pixel_values, g3n_error *err);

/* Decodes only (no resize): *rgb is a malloc'd width*height*3 u8 buffer
 * (caller frees with free()). For tests and tools. */
int g3n_image_decode_file(const char *path, const g3n_image_options *options, uint8_t **rgb, int *width, int *height,
                          g3n_error *err);

#endif
