/* audio_stream_table.h - the audio-encoder role's streams (issue 16, item
 * 2): EncodeAudioRequest{stream_id, samples, flush} pushes 16 kHz mono
 * samples in pieces of any size to the streaming encoder state of that
 * stream (audio_stream.h), kept on this worker between requests; each reply
 * carries the tower tokens the piece released (those that can no longer
 * change), and a flush ends the clip with the rest. Fed in any pieces, the
 * tokens equal the offline encoding of the whole clip (EncodeAudioRequest
 * with samples), segment by segment (a segment per max_samples of audio,
 * 30 s: EncodeAudioReply.segment; each is its own audio item in a prompt).
 *
 * A stream opens with a piece that says `start` (a piece for a stream this
 * worker does not hold, without it, is ERROR_NOT_FOUND: the stream expired or
 * the worker restarted, and the caller must not get half a clip's tokens).
 * Bounds: max_streams streams at once (a new one beyond: ERROR_TOO_LARGE,
 * after freeing those idle for idle_seconds), pieces of at most max_samples
 * samples.
 *
 * Threads: the caller serialises calls (the role's encoder lock): the
 * streams share the encoder's scratch. Ownership: borrows the features
 * extractor and the encoder. */
#ifndef G3N_AUDIO_STREAM_TABLE_H
#define G3N_AUDIO_STREAM_TABLE_H

#include <stdint.h>

#include "audio_encoder.h"
#include "audio_features.h"
#include "status.h"
#include "transport.h"

typedef struct g3n_audio_stream_table g3n_audio_stream_table;

int g3n_audio_stream_table_create(g3n_audio_stream_table **out, const g3n_audio_features *features,
                                  const g3n_audio_encoder *encoder, int64_t hidden_size, int max_streams,
                                  double idle_seconds, int64_t max_samples, int sampling_rate, g3n_error *err);
void g3n_audio_stream_table_free(g3n_audio_stream_table *table); /* accepts NULL */

/* Serves one EncodeAudioRequest with a stream_id (answers on call; errors set the call's code). */
int g3n_audio_stream_table_handle(g3n_audio_stream_table *table, g3n_worker_call *call,
                                  const G3n__EncodeAudioRequest *request, g3n_error *err);

#endif
