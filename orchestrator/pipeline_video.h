/* pipeline_video.h - a video file or stream answered through the roles
 * (issue 10's `g3n run --video`), over any broker:
 *
 *   FFmpeg ingest (services/media/video_ingest.h: frames sampled at fps,
 *   capped, RGB; the audio track at 16 kHz mono; in timestamp order)
 *   -> each frame as RGB [H, W, 3] to the vision-encoder pool
 *      (EncodeImageRequest.rgb, video_frame), preprocessed there as a still
 *      image (the one place images are preprocessed)
 *   -> the audio after a frame, up to the next frame (cut at the model's
 *      audio placeholders: 30 s), as one segment: its 16 kHz samples to the
 *      audio-encoder pool (EncodeAudioRequest.samples)
 *   -> media_prompt.h's layout (one user turn: the segments in timestamp
 *      order, then the prompt) -> the embedder merges ids and soft tokens ->
 *      prefill and decode on a decoder (g3n_pipeline_generate).
 *
 * Each segment is sent to its encoder the moment it is complete, so the
 * encoders work while the video is still being decoded; the prompt is
 * prefilled once everything is encoded (one prefill: for asking while it
 * plays see live_pipeline.h and `g3n live`).
 *
 * Bounds: at most G3N_VIDEO_MAX_SEGMENTS segments in one prompt (the
 * embedder's limit); more is an error naming --max-frames / --fps.
 * Threads: uses the caller's g3n_client (one per thread). */
#ifndef G3N_PIPELINE_VIDEO_H
#define G3N_PIPELINE_VIDEO_H

#include "config.h"
#include "pipeline.h"
#include "status.h"
#include "tokenizer.h"
#include "video_ingest.h"

#define G3N_VIDEO_MAX_SEGMENTS 64

typedef struct g3n_video_chat_input {
    const char *system;              /* may be NULL */
    const char *prompt;              /* the question after the media */
    const char *url;                 /* file, "-", pipe:N, tcp://, http://, ... */
    g3n_video_options video;         /* fps, max_frames, want_video, want_audio */
    const char *preprocessor_config; /* preprocessor_config.json for the audio features; NULL: defaults */
} g3n_video_chat_input;

typedef struct g3n_video_chat_stats {
    int frames, audio_segments;
    int64_t audio_samples;
    double ingest_seconds;           /* from the call until every segment was encoded */
    g3n_pipeline_stats pipeline;     /* prompt tokens, prefill, decode */
} g3n_video_chat_stats;

/* Ingests the video, encodes its segments on the encoder pools, answers the
 * prompt; on_text gets the answer as it streams; params->progress gets one
 * line per frame and audio segment (sent, encoded) and per stage. */
int g3n_pipeline_video_chat(g3n_client *client, const g3n_model_config *config, const g3n_tokenizer *tokenizer,
                            const g3n_video_chat_input *input, const g3n_pipeline_generate_params *params,
                            g3n_text_callback on_text, void *text_user, g3n_video_chat_stats *stats,
                            g3n_error *err);

#endif
