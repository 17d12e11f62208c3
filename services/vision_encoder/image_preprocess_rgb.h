/* image_preprocess_rgb.h - decoded RGB pixels (a video frame) -> pixel_values
 * (implemented in image_preprocess.c, beside the encoded-image path it shares),
 * through the same libvips path as image_preprocess.h uses for encoded images:
 * 8-bit RGB -> resize to size x size (Pillow BILINEAR: libvips reduce when
 * shrinking an axis, an affine with half-pixel centres and copied edges when
 * enlarging it, horizontal pass first) -> x * float32(1/255) -> [3, size, size]
 * f32 NCHW. A frame decoded from an image file gives exactly what
 * g3n_image_preprocess_file gives for that file (tested).
 *
 * The frame is borrowed for the call; pixel_values is caller-owned.
 */
#ifndef G3N_IMAGE_PREPROCESS_RGB_H
#define G3N_IMAGE_PREPROCESS_RGB_H

#include <stdint.h>

#include "image_preprocess.h"
#include "status.h"

/* rgb: height rows of `stride` bytes (>= width * 3), packed R,G,B u8 per pixel.
 * Frames of more than options->max_pixels pixels are refused. */
int g3n_image_preprocess_rgb(const uint8_t *rgb, int width, int height, int stride, const g3n_image_options *options,
                             float *pixel_values, g3n_error *err);

#endif
