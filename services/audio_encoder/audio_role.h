/* audio_role.h - the audio-encoder role (common/role/role.h): EncodeAudioRequest
 * (a clip in any format FFmpeg reads, samples, or features) -> the audio
 * tower's tokens [Ta, audio_hidden] + padding [Ta]; with a stream_id, pieces
 * of a stream kept on this worker (audio_stream_table.h). Requests are served
 * one at a time (one encoder, its scratch shared by the streams). */
#ifndef G3N_AUDIO_ROLE_H
#define G3N_AUDIO_ROLE_H

#include "role.h"

extern const g3n_role_ops g3n_audio_role_ops;

#endif
