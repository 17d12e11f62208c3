/* http_live.h - the live-session endpoints of the HTTP API (issue 10): a
 * session keeps receiving video frames and audio, appends their soft tokens
 * to its decoder session as they arrive (live_pipeline.h), and
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
 * waits). A session whose decoder is lost is rebuilt on another one
 * ("rebuilds" in its state); with none left, 503 naming the session.
 *
 * The roles: the broker's workers (threads over inproc:// in g3n serve,
 * daemons over tcp:// in g3n-orchestrator --http): frames to the vision
 * encoders (decoded and preprocessed there), audio as a stream to one audio
 * encoder, the embedder, a decoder session per live session.
 *
 * Threads: libmicrohttpd's connection threads call g3n_http_live_handle, each
 * with its own client of the broker; streamed answers run on a thread of
 * their own (with its own client). Ownership: borrows broker, config and
 * tokenizer (keep them until g3n_http_live_free). */
#ifndef G3N_HTTP_LIVE_H
#define G3N_HTTP_LIVE_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "generate.h"
#include "status.h"
#include "tokenizer.h"
#include "transport.h"

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

int g3n_http_live_create(g3n_http_live **out, g3n_broker *broker, const g3n_model_config *config,
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
