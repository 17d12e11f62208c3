/* audio_decode.h - any container/codec FFmpeg knows -> mono f32 samples at a
 * chosen rate (16 kHz for the encoder).
 *
 * Decoding goes through libavformat/libavcodec; libswresample converts the
 * sample format and rate (channel layout kept), then channels are averaged to
 * mono (the mean, as librosa/torchaudio downmix; swresample's own downmix
 * would add L and R with gain 0.707 each). Samples are f32 in [-1, 1] for
 * integer sources (int16 x -> x / 32768, the reference's WAV reading).
 *
 * Inputs: a file path (or anything avformat opens: "pipe:0", a URL) or a
 * memory buffer. Unknown format, no audio stream, zero-length input, corrupt
 * data: G3N_ERR with a message naming the input.
 */
#ifndef G3N_AUDIO_DECODE_H
#define G3N_AUDIO_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Source sample rates accepted (others are an error naming the rate). */
#define G3N_AUDIO_MIN_INPUT_RATE 1000
#define G3N_AUDIO_MAX_INPUT_RATE 768000

/* Receives decoded samples as they come (count >= 1, mono, at the requested
 * rate; the buffer is only valid during the call). Returns G3N_OK to go on,
 * G3N_ERR (with err set) to stop decoding with that error. */
typedef int (*g3n_audio_sink)(void *user, const float *samples, int64_t count, g3n_error *err);

/* Streams the audio of `path` into sink in pieces (no whole-file buffer). */
int g3n_audio_decode_file_pieces(const char *path, int sample_rate, g3n_audio_sink sink, void *user,
                                 g3n_error *err);
/* The same from memory; name is used in messages. The buffer is borrowed for the call. */
int g3n_audio_decode_memory_pieces(const void *data, size_t size, const char *name, int sample_rate,
                                   g3n_audio_sink sink, void *user, g3n_error *err);

/* Whole clip: *samples (malloc'd, caller frees) and *count. */
int g3n_audio_decode_file(const char *path, int sample_rate, float **samples, int64_t *count, g3n_error *err);
int g3n_audio_decode_memory(const void *data, size_t size, const char *name, int sample_rate, float **samples,
                            int64_t *count, g3n_error *err);

#endif
