/* audio_features.h - log-mel features exactly as Gemma3nAudioFeatureExtractor.
 *
 * Per frame f of a waveform padded with zeros to a multiple of 128 samples:
 * the frame_length + 1 samples starting at hop * f, HTK pre-emphasis and the
 * periodic Hann window in f32 (as the reference's NumPy float32 code), a
 * real FFT of fft_length points in double through libavutil's av_tx,
 * magnitude, the HTK mel filterbank (float64, no area normalisation),
 * ln(max(mel, mel_floor)), optional per-bin mean/stddev, cast to f32.
 *
 * The extractor is immutable after create and may be used from several
 * threads at once only through separate extractors (it owns per-thread FFT
 * contexts and runs frames in parallel itself with OpenMP).
 */
#ifndef G3N_AUDIO_FEATURES_H
#define G3N_AUDIO_FEATURES_H

#include <stdint.h>

#include "audio_config.h"
#include "status.h"

typedef struct g3n_audio_features g3n_audio_features;

/* Copies what it needs from config (config may be freed afterwards). */
int g3n_audio_features_create(g3n_audio_features **out, const g3n_audio_feature_config *config, g3n_error *err);
void g3n_audio_features_free(g3n_audio_features *features); /* accepts NULL */
const g3n_audio_feature_config *g3n_audio_features_config(const g3n_audio_features *features);

/* Samples after the reference's padding: ceil(samples / pad_to_multiple_of) * pad_to_multiple_of. */
int64_t g3n_audio_padded_samples(const g3n_audio_feature_config *config, int64_t samples);
/* Frames in a padded waveform of padded_samples: (padded - frame_length - 1) / hop + 1, 0 when too short. */
int64_t g3n_audio_frame_count(const g3n_audio_feature_config *config, int64_t padded_samples);
/* Samples frame f reads: [hop * f, hop * f + frame_length] (frame_length + 1 samples). */
int64_t g3n_audio_frame_end_sample(const g3n_audio_feature_config *config, int64_t frame);

/* Frames [first, first + count) of `samples` (samples[0] is sample 0 of the
 * clip; the caller guarantees samples up to frame_end_sample(first+count-1)
 * exist, zero-padded as the reference pads) -> out [count][feature_size]. */
void g3n_audio_features_frames(const g3n_audio_features *features, const float *samples, int64_t first,
                               int64_t count, float *out);

/* The reference's batch call (padding "longest", pad_to_multiple_of, truncation
 * at max_samples): clips padded with zeros to the longest (rounded up), then
 * frames. *features [batch][*frames][feature_size] f32 and *mask
 * [batch][*frames] (1 = valid frame) are malloc'd; the caller frees them.
 * Error if a clip is too short to give a frame. */
int g3n_audio_features_batch(const g3n_audio_features *features, const float *const *clips, const int64_t *lengths,
                             int batch, float **out_features, uint8_t **out_mask, int64_t *frames, g3n_error *err);

#endif
