/* fuzz_audio.c - audio bytes through the decoder and resampler
 * (services/audio_encoder/audio_decode.c: FFmpeg's demuxers and decoders as
 * g3n opens them from memory, libswresample to 16 kHz, the mono downmix).
 * Decoded samples must be finite; decoding stops after a minute of audio. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "audio_decode.h"
#include "fuzz_util.h"

typedef struct collected {
    int64_t count;
} collected;

static int sink(void *user, const float *samples, int64_t count, g3n_error *err)
{
    collected *c = user;
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(samples[i]))
            abort();
    c->count += count;
    if (c->count > 16000 * 60)
        return g3n_error_set(err, "more than a minute: enough");
    return G3N_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    collected c = {0};
    g3n_error err;
    (void)g3n_audio_decode_memory_pieces(data, size, "fuzz", 16000, sink, &c, &err);
    return 0;
}
