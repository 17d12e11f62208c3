/* live_session.h - a conversation that keeps receiving media (video frames,
 * audio pieces) and prefills their soft tokens into the decoder's KV cache as
 * they arrive, so that a question asked at any moment only prefills the
 * question (and the end of the audio segment it interrupts).
 *
 * Flow per piece of media (all in this process, as orchestrator/
 * multimodal_check.c does it for one prompt):
 *   frame  -> image preprocessing (libvips, the still-image path) -> vision
 *             tower -> embed_vision -> 256 soft tokens
 *   audio  -> audio_stream.h (log-mel, streaming conformer, embed_audio):
 *             tokens leave as soon as they are final
 *   then the conversation is re-rendered with the chat template
 *   (media_prompt.h), and every position that can no longer change (up to
 *   the last begin/end-of-media token or soft token whose content is known)
 *   is embedded and forwarded through the text session, in batches of at
 *   least min_prefill positions (a frame is one batch). Text after the last
 *   media token waits, because the tokenizer may merge it with what follows
 *   ("\n\n" + "\n\n" is one token).
 *
 * Layout: media go into the open user turn in arrival order (media_prompt.h:
 * a frame closes the audio segment before it; a segment is also closed when
 * its tokens fill the model's audio placeholders). A question closes the open
 * audio segment, ends the user turn with the question text and the generation
 * prompt; the answer's tokens join the cache as they are generated, then
 * "<end_of_turn>\n" and a new user turn opens for the media that follow.
 * A question therefore sees everything streamed so far, and the cache holds
 * exactly the ids of the rendered conversation (g3n_live_ids), so fed in any
 * pieces it equals the same conversation prefilled at once.
 *
 * Context policy when the context fills: DROP THE OLDEST MEDIA AND
 * RE-PREFILL. A live stream has no end, so "stop" would make the session
 * useless after a few minutes (E2B: 32k positions = about 60 frames with their
 * audio); the newest media are what a question is most likely about. When a
 * new item (or a question with its answer reserve) would not fit in
 * max_positions - reserve_positions, the oldest media items (and whole old
 * question/answer turns once their media are gone) are dropped until the
 * conversation needs at most half of that, the cache is reset and the kept
 * conversation is prefilled again: the cost (one prefill of half a context)
 * comes once per half context of new media, not per item. Memory is bounded:
 * the KV cache is sized once (max_positions), and the session keeps the
 * embedded soft tokens of the media still in the conversation (at most
 * max_positions rows of hidden_size floats) for the re-prefill.
 *
 * Ownership and threads: the session borrows the model (g3n_live_model) and
 * the tokenizer; one caller at a time (a CLI that reads questions while media
 * stream in serialises the calls with a mutex).
 */
#ifndef G3N_LIVE_SESSION_H
#define G3N_LIVE_SESSION_H

#include <stdint.h>

#include "audio_config.h"
#include "audio_encoder.h"
#include "audio_features.h"
#include "chat_template.h"
#include "config.h"
#include "embedder.h"
#include "generate.h"
#include "image_preprocess.h"
#include "media_prompt.h"
#include "status.h"
#include "text_model.h"
#include "tokenizer.h"
#include "vision_encoder.h"
#include "weights.h"

/* Everything a live session runs, loaded once (shareable read-only parts). */
typedef struct g3n_live_model {
    const g3n_model_config *config; /* borrowed */
    g3n_weights *weights;           /* borrowed */
    g3n_vision_encoder *vision;     /* owned; NULL when not loaded */
    int has_audio;
    g3n_audio_config audio_config;
    g3n_audio_feature_config feature_config;
    g3n_audio_features *features;   /* owned */
    g3n_audio_encoder audio;
    g3n_embedder embedder;
    g3n_text_model text;
    g3n_chat_special_ids special;
} g3n_live_model;

/* want_vision / want_audio: load those towers (1) or not (0: such media are
 * then refused). preprocessor_config: a preprocessor_config.json for the
 * audio features, or NULL for the defaults. */
int g3n_live_model_load(g3n_live_model *model, const g3n_model_config *config, g3n_weights *weights,
                        int want_vision, int want_audio, const char *preprocessor_config, g3n_error *err);
void g3n_live_model_free(g3n_live_model *model); /* accepts a zeroed struct */

typedef struct g3n_live_params {
    int64_t max_positions;     /* KV cache positions (default: max_position_embeddings) */
    int64_t reserve_positions; /* kept free for a question and its answer; < 0 (the default): 512, or a
                                  quarter of max_positions when that is less (a context of 1024 made
                                  the fixed 512 fail every session) */
    int64_t chunk_tokens;      /* prefill rows per forward (default 64) */
    int64_t min_prefill;       /* media positions gathered before a prefill (default 16; a question or
                                  the end of the audio prefills whatever waits). Batches use the
                                  matmuls better: E2B on 2 shared cores prefilled 0.29 s/position one
                                  at a time, 0.13 s/position in batches of 32; a question then also
                                  prefills up to min_prefill - 1 waiting positions */
    int64_t audio_batch_samples; /* audio gathered before it goes through the encoder (default 16000 =
                                  1 s): each push reads all the conformer's weights once, so pushing
                                  every 64 ms piece as it came made 60 s of audio take 405 s on E2B
                                  (2 shared cores), 73 s in 1 s batches; frames and questions push
                                  what waits first */
    const char *system;        /* system prompt (copied); NULL: none */
    g3n_image_options image;   /* frame preprocessing (default: image default options) */
} g3n_live_params;

g3n_live_params g3n_live_default_params(const g3n_live_model *model);

typedef struct g3n_live_stats {
    int64_t positions;         /* positions in the KV cache */
    int64_t pending;           /* rendered positions not yet prefilled (waiting text) */
    int frames, audio_segments;
    int64_t audio_samples;
    int questions;
    int dropped_items, compactions;
    int64_t prefilled_tokens;  /* all forwards, re-prefills included */
    int64_t question_positions; /* positions the last question prefilled */
    double question_seconds;   /* and how long that took */
    double vision_seconds, audio_seconds, prefill_seconds;
    uint64_t kv_cache_bytes, media_bytes;
} g3n_live_stats;

typedef struct g3n_live_session g3n_live_session;

int g3n_live_session_create(g3n_live_session **out, g3n_live_model *model, const g3n_tokenizer *tokenizer,
                            const g3n_live_params *params, g3n_error *err);
void g3n_live_session_free(g3n_live_session *session); /* accepts NULL */

/* A video frame: rgb rows of `stride` bytes (packed R,G,B). seconds: its
 * timestamp (for the timeline). */
int g3n_live_add_frame_rgb(g3n_live_session *session, double seconds, const uint8_t *rgb, int width, int height,
                           int stride, g3n_error *err);
/* A frame already preprocessed: pixel_values [3, S, S] (S = image size). */
int g3n_live_add_frame_pixels(g3n_live_session *session, double seconds, const float *pixel_values, g3n_error *err);
/* A frame already through the vision tower (e.g. from a vision encoder
 * daemon): tower_tokens [vision_soft_tokens_per_image, vision hidden]. */
int g3n_live_add_frame_tokens(g3n_live_session *session, double seconds, const float *tower_tokens, g3n_error *err);
/* Audio samples, 16 kHz mono f32, any piece size. */
int g3n_live_add_audio(g3n_live_session *session, const float *samples, int64_t count, g3n_error *err);
/* Ends the open audio segment (e.g. the stream ended or paused) and prefills
 * whatever waits. */
int g3n_live_end_audio(g3n_live_session *session, g3n_error *err);

/* Asks: closes the user turn with the question and the generation prompt and
 * prefills it. logits (may be NULL): [vocab] of the last position. */
int g3n_live_question(g3n_live_session *session, const char *question, float *logits, g3n_error *err);
/* Generates the answer to the question just asked (params: sampling, limits,
 * eos ids, callback); the tokens join the cache, then "<end_of_turn>\n", and a
 * new user turn opens. out_tokens may be NULL. */
int g3n_live_answer(g3n_live_session *session, const g3n_generate_params *params, int32_t *out_tokens,
                    int64_t *num_out, g3n_generate_stats *stats, g3n_error *err);

/* The ids in the KV cache (borrowed until the next call). */
const int32_t *g3n_live_ids(const g3n_live_session *session, int64_t *count);
/* Segments seen so far, in prompt order (dropped ones included). */
const g3n_media_timeline *g3n_live_timeline(const g3n_live_session *session);
g3n_live_stats g3n_live_session_stats(const g3n_live_session *session);
/* The model-side text session (for tests and tools). */
g3n_text_session *g3n_live_text_session(g3n_live_session *session);

#endif
