/* fuzz_image.c - image bytes through the preprocessing
 * (services/vision_encoder/image_preprocess.c): libvips' loaders as g3n allows
 * them, the pixel-count limit, the conversion to sRGB and the resize. The
 * output side is 48 (not 768) and the pixel limit 2^20 so that an input runs
 * in milliseconds; the code paths are the same. Every output value must be a
 * finite number in [0, 1]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "image_preprocess.h"

#define SIDE 48

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_error err;
    if (g3n_image_init(&err) != G3N_OK) {
        fprintf(stderr, "fuzz_image: %s\n", err.message);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float pixels[3 * SIDE * SIDE];
    g3n_image_options options = g3n_image_default_options();
    options.size = SIDE;
    options.max_pixels = 1 << 20;
    g3n_error err;
    if (g3n_image_preprocess_buffer(data, size, &options, pixels, &err) == G3N_OK) {
        for (int i = 0; i < 3 * SIDE * SIDE; i++)
            if (!(pixels[i] >= 0.0f && pixels[i] <= 1.0f))
                abort();
    }
    return 0;
}
