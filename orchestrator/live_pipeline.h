/* live_pipeline.h - a live session through the roles (issue 16, item 2): a
 * conversation that keeps receiving media (video frames, audio pieces) and
 * appends their soft tokens to a decoder session as they arrive, so that a
 * question asked at any moment only prefills the question. Over any broker:
 * the same code serves g3n serve / g3n live / g3n video (roles as threads over
 * inproc://) and g3n-orchestrator (daemons over tcp://).
 *
 *   frame  -> the vision-encoder pool (EncodeImageRequest: the image file's
 *             bytes, or a decoded frame as rgb [H, W, 3] u8; preprocessed
 *             there and only there) -> tower tokens
 *   audio  -> the audio-encoder pool as a stream (EncodeAudioRequest with
 *             stream_id: start, pieces, flush; pinned to one worker, which
 *             keeps the streaming encoder state; its tokens equal the offline
 *             encoding of the whole clip)
 *   then the conversation is rendered with the chat template (media_prompt.h's
 *   layout), the positions that can no longer change are embedded by the
 *   embedder (ids + the media's tower tokens) and appended to the session's
 *   decoder session (PrefillRequest.append with expect_position), in batches
 *   of at least min_prefill positions.
 *
 * The session's decoder state is a g3n_session_record (session_record.h): the
 * ids the cache holds and the encoders' replies of its media, so that when the
 * decoder holding it is lost the session is rebuilt on another decoder by
 * prefilling the record again (reported in stats.rebuilds and by the progress
 * callback); with no decoder left, calls fail with an error naming the session.
 *
 * Layout and context policy are those of the in-process live session it
 * replaces (services/media/live_session.h, removed): media join the open user
 * turn in arrival order, a question closes it, the answer's tokens join the
 * cache, "<end_of_turn>\n" and a new user turn follow; when the context fills,
 * the oldest media are dropped and the rest prefilled again (a fresh decoder
 * session from the kept record).
 *
 * Threads: one caller at a time per session (callers serialise with a lock);
 * every call takes the calling thread's g3n_client (transport.h: one client per
 * thread). Ownership: borrows config and tokenizer for the session's life.
 */
#ifndef G3N_LIVE_PIPELINE_H
#define G3N_LIVE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pipeline.h"
#include "status.h"
#include "tokenizer.h"
#include "transport.h"

typedef struct g3n_live_pipeline_params {
    int64_t max_positions;       /* context of the decoder session (<= 0: max_position_embeddings) */
    int64_t reserve_positions;   /* kept free for a question and its answer (< 0: 512, or a quarter of
                                    max_positions when that is less) */
    int64_t min_prefill;         /* media positions gathered before an append (default 16) */
    int64_t audio_batch_samples; /* audio gathered before a stream piece is sent (default 16000 = 1 s) */
    int max_append_media;        /* media per append at most (default and cap 32: the embedder takes 64 per
                                    request; a compaction prefills the kept conversation in such appends) */
    const char *system;          /* system prompt (copied); NULL: none */
    const char *model;           /* MatFormer sub-model (copied); NULL or "": the full model */
    const char *preprocessor_config; /* preprocessor_config.json of the audio features (where the audio
                                    segments are cut, as the audio encoders are configured); NULL: defaults */
    g3n_progress_callback progress; /* one line per stage (encoded, appended, rebuilt); may be NULL */
    void *progress_user;
} g3n_live_pipeline_params;

g3n_live_pipeline_params g3n_live_pipeline_default_params(const g3n_model_config *config);

typedef struct g3n_live_pipeline_stats {
    int64_t positions;           /* positions the decoder session holds */
    int64_t pending;             /* rendered positions not yet appended */
    int64_t max_positions;
    int frames, audio_segments;
    int64_t audio_samples;
    int questions;
    int dropped_items, compactions;
    int rebuilds;                /* times the session was rebuilt on another decoder */
    int64_t prefilled_tokens;    /* all appends, re-prefills included */
    int appends;                 /* append requests (a prefill each) */
    int reappended_media;        /* media appended again after a compaction */
    int64_t question_positions;  /* positions the last question appended */
    double question_seconds;     /* and how long that took */
    double vision_seconds, audio_seconds, prefill_seconds;
    char decoder[64];            /* the worker holding the session */
} g3n_live_pipeline_stats;

typedef struct g3n_live_pipeline g3n_live_pipeline;

int g3n_live_pipeline_create(g3n_live_pipeline **out, const g3n_model_config *config,
                             const g3n_tokenizer *tokenizer, const g3n_live_pipeline_params *params,
                             g3n_error *err);
/* Ends the decoder session and the audio stream (client may be NULL when the
 * broker is gone: then only memory is freed). Accepts NULL. */
void g3n_live_pipeline_free(g3n_live_pipeline *live, g3n_client *client);

/* An image file's bytes (JPEG, PNG, ...) as the next frame; seconds: its timestamp. */
int g3n_live_pipeline_add_image(g3n_live_pipeline *live, g3n_client *client, double seconds, const void *bytes,
                                size_t size, g3n_error *err);
/* A decoded frame: height rows of `stride` bytes, packed R,G,B. */
int g3n_live_pipeline_add_frame_rgb(g3n_live_pipeline *live, g3n_client *client, double seconds,
                                    const uint8_t *rgb, int width, int height, int stride, g3n_error *err);
/* Audio samples, 16 kHz mono f32, any piece size. */
int g3n_live_pipeline_add_audio(g3n_live_pipeline *live, g3n_client *client, const float *samples, int64_t count,
                                g3n_error *err);
/* Ends the open audio segment (stream flushed) and appends whatever waits. */
int g3n_live_pipeline_end_audio(g3n_live_pipeline *live, g3n_client *client, g3n_error *err);

/* Asks and answers: closes the user turn with the question and the generation
 * prompt, appends it, generates (params: sampling, max_new_tokens, eos ids,
 * on_token with logits when want_logits); the answer's tokens join the cache,
 * then "<end_of_turn>\n" and a new user turn opens. on_text gets the answer's
 * text as it streams (may be NULL). */
int g3n_live_pipeline_ask(g3n_live_pipeline *live, g3n_client *client, const char *question,
                          const g3n_pipeline_generate_params *params, g3n_text_callback on_text, void *text_user,
                          g3n_pipeline_stats *answer_stats, g3n_error *err);

/* The ids the decoder session holds (borrowed until the next call). */
const int32_t *g3n_live_pipeline_ids(const g3n_live_pipeline *live, int64_t *count);
g3n_live_pipeline_stats g3n_live_pipeline_get_stats(const g3n_live_pipeline *live);
/* The decoder session's id (the session record's; for tests and metrics). */
const char *g3n_live_pipeline_session_id(const g3n_live_pipeline *live);

#endif
