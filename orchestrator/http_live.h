/* http_live.h - the live-session endpoints of the HTTP API (issue 10): a
 * session keeps receiving video frames and audio, prefills their soft tokens
 * into its KV cache as they arrive (services/media/live_session.h), and
 * answers questions at any moment; only the question is prefilled then.
 *
 *   POST   /v1/live/sessions                 {system?, context?} -> the session object
 *   GET    /v1/live/sessions                 the list
 *   GET    /v1/live/sessions/{id}            state: media counts, positions, context use
 *   POST   /v1/live/sessions/{id}/frames     an image body (image/jpeg, image/png, ...), or JSON
 *                                            {image_url: "data:..." | {url}, seconds?}
 *   POST   /v1/live/sessions/{id}/audio      an encoded clip (audio/wav, audio/mpeg, ...; resampled
 *                                            to 16 kHz), raw 16 kHz mono PCM (?format=s16le|f32le or
 *                                            Content-Type audio/pcm), or JSON {input_audio: {data
 *                                            (base64), format}, end?}; ?end=1 ends the segment
 *   POST   /v1/live/sessions/{id}/ask        {question, max_tokens?, stream?, temperature?, top_p?,
 *                                            seed?} -> chat.completion, or SSE chunks as
 *                                            /v1/chat/completions ("data: [DONE]" last)
 *   DELETE /v1/live/sessions/{id}
 *
 * Bounds: at most max_sessions sessions (more: 429), each with a KV cache of
 * `context` positions and the live session's context policy (when media fill
 * it, the oldest are dropped and the rest prefilled again); one frame or
 * audio piece at most max_media_bytes (413); sessions idle for idle_seconds
 * expire (a reaper thread frees them; later requests get 404). Errors are
 * OpenAI error objects. Requests on one session run one at a time (a second
 * waits); sessions share one in-process model, so their computations run one
 * at a time as well (the model's towers keep scratch buffers).
 *
 * The model: loaded from the server's weights on the first session (the live
 * session runs in this process: its KV cache must sit next to the towers'
 * output, so g3n serve has it and g3n-orchestrator --http, whose roles are
 * remote, answers 501).
 *
 * Threads: libmicrohttpd's connection threads call g3n_http_live_handle;
 * streamed answers run on a thread of their own. Ownership: borrows config,
 * weights and tokenizer (keep them until g3n_http_live_free). */
#ifndef G3N_HTTP_LIVE_H
#define G3N_HTTP_LIVE_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "generate.h"
#include "status.h"
#include "tokenizer.h"
#include "weights.h"

typedef struct g3n_http_live g3n_http_live;

typedef struct g3n_http_live_options {
    int max_sessions;            /* sessions at once (default 4) */
    int64_t context;             /* KV cache positions per session: default and cap (default
                                    max_position_embeddings) */
    double idle_seconds;         /* a session untouched this long is freed (default 600) */
    int64_t max_media_bytes;     /* one frame or audio piece (default 16 MiB) */
    int64_t max_tokens;          /* answer length: default and cap (default 256) */
    g3n_sampling_params sampling; /* where a question gives no temperature (default greedy) */
    const char *model_name;      /* in chat.completion objects (copied; default "gemma-3n") */
    const char *preprocessor_config; /* preprocessor_config.json for the audio features (copied); NULL: defaults */
} g3n_http_live_options;

g3n_http_live_options g3n_http_live_default_options(void);

int g3n_http_live_create(g3n_http_live **out, const g3n_model_config *config, g3n_weights *weights,
                         const g3n_tokenizer *tokenizer, const g3n_http_live_options *options, g3n_error *err);
/* Ends every session (waits for running requests). Accepts NULL. */
void g3n_http_live_free(g3n_http_live *live);

/* 1 for a path this module serves (/v1/live/...). */
int g3n_http_live_matches(const char *url);

/* Answers one request (the whole body already read). *status: the HTTP status sent. */
enum MHD_Result g3n_http_live_handle(g3n_http_live *live, struct MHD_Connection *connection, const char *method,
                                     const char *url, const char *body, size_t length, int *status);
/* The same for a request made with an API key (http_auth.h): a session belongs
 * to the key name that created it; GET lists only its owner's sessions and
 * another key gets 404 for it (owner NULL: keys are off, all are shared).
 * Session ids carry 128 random bits (getrandom). */
enum MHD_Result g3n_http_live_handle_owned(g3n_http_live *live, struct MHD_Connection *connection, const char *method,
                                           const char *url, const char *owner, const char *body, size_t length,
                                           int *status);

/* Sessions open now (tests, /health). */
int g3n_http_live_count(g3n_http_live *live);

#endif
