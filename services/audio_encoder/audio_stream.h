/* audio_stream.h - audio samples in pieces of any size -> soft tokens, as soon
 * as they can no longer change.
 *
 * Pipeline: 16 kHz mono f32 samples -> log-mel frames (a frame is computed once
 * every sample it reads is in; token k of the released config needs the
 * first 2560k + 1472 samples) -> the streaming conformer
 * (audio_encoder.h) -> embed_audio (soft path) -> the sink. flush() ends the
 * clip: the waveform is zero-padded to a multiple of 128 samples as the
 * reference pads it, the last frames and tokens come out, and the output
 * equals the offline encoding of the whole clip.
 *
 * Clip length: the reference cuts audio at 30 s (max_samples). We do not drop
 * audio: every max_samples samples end one segment (its tokens complete) and
 * the next samples start a new one, encoded from a fresh state, each becoming
 * its own audio segment in the prompt. A last segment shorter than one frame
 * (frame_length + 1 samples) is zero-padded to one frame; a whole clip that
 * short is an error, as in the reference.
 *
 * Ownership: the stream borrows the extractor, the encoder and the embedder
 * (keep them alive); it owns its buffers, sized once at create (no
 * allocation per piece).
 */
#ifndef G3N_AUDIO_STREAM_H
#define G3N_AUDIO_STREAM_H

#include <stdint.h>

#include "audio_encoder.h"
#include "audio_features.h"
#include "multimodal_embedder.h"
#include "status.h"

/* Receives tokens of segment `segment` (0, 1, ...): count rows of `width`
 * floats (the text width after embed_audio, or the encoder width when the
 * stream has no embedder), first_token = index of the first row within the
 * segment. Borrowed for the call. */
typedef int (*g3n_audio_soft_sink)(void *user, int segment, int64_t first_token, const float *tokens, int64_t count,
                                   int64_t width, g3n_error *err);

typedef struct g3n_audio_stream g3n_audio_stream;

/* embedder may be NULL: the sink then gets encoder outputs [hidden_size]. */
int g3n_audio_stream_create(g3n_audio_stream **out, const g3n_audio_features *features,
                            const g3n_audio_encoder *encoder, const g3n_multimodal_embedder *embedder,
                            g3n_audio_soft_sink sink, void *user, g3n_error *err);
void g3n_audio_stream_free(g3n_audio_stream *stream); /* accepts NULL */
/* Appends samples (16 kHz mono f32). */
int g3n_audio_stream_push(g3n_audio_stream *stream, const float *samples, int64_t count, g3n_error *err);
/* Ends the clip; the stream is then ready for a new clip (segments count from 0 again). */
int g3n_audio_stream_flush(g3n_audio_stream *stream, g3n_error *err);
/* Segments finished and tokens emitted in the current clip. */
int g3n_audio_stream_segments(const g3n_audio_stream *stream);
int64_t g3n_audio_stream_tokens(const g3n_audio_stream *stream);

/* Whole clip in one call (the same machinery): *tokens (malloc'd, caller
 * frees) [*count][width], segment_starts (malloc'd, may be NULL) the first
 * token of each of *segments segments. */
int g3n_audio_encode_clip(const g3n_audio_features *features, const g3n_audio_encoder *encoder,
                          const g3n_multimodal_embedder *embedder, const float *samples, int64_t sample_count,
                          float **tokens, int64_t *count, int64_t **segment_starts, int *segments, g3n_error *err);

#endif
