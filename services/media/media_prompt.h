/* media_prompt.h - the prompt layout of video and live media.
 *
 * Timeline: frames and audio arrive in timestamp order (video_ingest.h
 * guarantees it; a live caller does it by construction). The prompt holds
 * them in that order: a frame is an image segment; the audio after it, up to
 * the next frame, is one audio segment ("frame, then the audio covering the
 * following interval"). An audio segment is also cut when it reaches
 * max_segment_samples: the most samples whose encoding fits the model's
 * audio_soft_tokens_per_image placeholders (188 in the released models =
 * 30 s, the reference's max_samples), so no audio is dropped.
 *
 * Rendering: one user turn of the Gemma 3n chat template
 * (chat_template.h) whose items are the segments in order, then the question
 * text: each image as "\n\n" boi + N x image_token + eoi "\n\n", each audio
 * segment as "\n\n" boa + N x audio_token + eoa "\n\n" (N the config's
 * placeholder counts; an audio segment's unused placeholders get the pad
 * embedding, as for any clip shorter than 30 s).
 */
#ifndef G3N_MEDIA_PROMPT_H
#define G3N_MEDIA_PROMPT_H

#include <stdint.h>

#include "audio_config.h"
#include "chat_template.h"
#include "status.h"
#include "tokenizer.h"

typedef struct g3n_media_segment {
    g3n_chat_item_type type; /* G3N_CHAT_IMAGE or G3N_CHAT_AUDIO */
    double seconds;          /* image: the frame's timestamp; audio: its first sample's time */
    int frame_index;         /* image: index among the frames (0, 1, ...); audio: -1 */
    int64_t first_sample;    /* audio: index of its first sample in the stream */
    int64_t samples;         /* audio: samples so far */
    int closed;              /* audio: no more samples will join it */
} g3n_media_segment;

/* Segment log (owned array). */
typedef struct g3n_media_timeline {
    int sample_rate;
    int64_t max_segment_samples;
    int64_t total_samples;
    int frames;
    g3n_media_segment *segments;
    int count, capacity;
} g3n_media_timeline;

/* The largest number of samples (a multiple of pad_to_multiple_of, at most
 * max_samples) whose offline encoding gives at most `slots` tokens. */
int64_t g3n_media_audio_segment_samples(const g3n_audio_feature_config *features, const g3n_audio_config *audio,
                                        int64_t slots);

void g3n_media_timeline_init(g3n_media_timeline *timeline, int sample_rate, int64_t max_segment_samples);
void g3n_media_timeline_free(g3n_media_timeline *timeline); /* accepts a zeroed struct */
/* A frame: closes the open audio segment and appends an image segment. */
int g3n_media_timeline_frame(g3n_media_timeline *timeline, double seconds, g3n_error *err);
/* Up to `count` new samples: opens an audio segment if none is open and
 * returns how many of them join it (the caller loops over the rest); a
 * segment that reaches max_segment_samples is closed. */
int64_t g3n_media_timeline_audio(g3n_media_timeline *timeline, int64_t count, g3n_error *err);
/* Closes the open audio segment, if any. */
void g3n_media_timeline_close_audio(g3n_media_timeline *timeline);
/* The open audio segment (NULL if none). */
g3n_media_segment *g3n_media_timeline_open_audio(g3n_media_timeline *timeline);

/* One user turn: types[0..count) (G3N_CHAT_IMAGE / G3N_CHAT_AUDIO) then the
 * question (may be NULL or empty: no text item). with_bos: 1 for the first
 * turn of a conversation (<bos> and the system prompt, which may be NULL);
 * 0 for later turns (no <bos>, system ignored). add_generation_prompt ends the
 * turn with "<start_of_turn>model\n". out: free with g3n_chat_prompt_free. */
int g3n_media_prompt_render(const g3n_tokenizer *tokenizer, const g3n_chat_special_ids *special,
                            const char *system, const g3n_chat_item_type *types, int count, const char *question,
                            int with_bos, int add_generation_prompt, g3n_chat_prompt *out, g3n_error *err);

#endif
