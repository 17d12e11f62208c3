/* http_server.h - the OpenAI-compatible HTTP API in front of the pipeline
 * (issue 9), on Debian's libmicrohttpd:
 *
 *   POST /v1/chat/completions       stream true (server-sent events, one chunk
 *                                   per detokenized piece, `data: [DONE]`) or false
 *   POST /v1/audio/transcriptions   multipart upload -> the model's transcription
 *   GET  /v1/models, /v1/models/ID  the one model served
 *   GET  /health                    live workers per role (503 while a needed role has none)
 *   GET  /metrics                   Prometheus text (http_metrics.h)
 *   GET  /, /app.js, ...            the web page (http_static.h)
 *
 * Serving: each chat runs on its own thread with its own g3n_client and its
 * own decoder session (KV cache); at most max_sessions run at once, up to
 * `queue` more wait, further requests get 429 with Retry-After. A client that
 * disconnects (mid-stream or while waiting) cancels its generation: the
 * decoder session ends and its cache is freed. Errors are OpenAI error objects
 * (http_request.h); bodies are bounded by max_body_bytes; nothing a client
 * sends reaches an assert or an unchecked size.
 *
 * Threads: libmicrohttpd runs a thread per connection; the handlers block on
 * the chat's thread, which is fine there.
 * Ownership: the server borrows the broker, config and tokenizer (keep them
 * until g3n_http_server_stop). */
#ifndef G3N_HTTP_SERVER_H
#define G3N_HTTP_SERVER_H

#include <stdint.h>

#include "config.h"
#include "generate.h"
#include "status.h"
#include "tokenizer.h"
#include "transport.h"

typedef struct g3n_http_server g3n_http_server;

typedef struct g3n_http_options {
    const char *host;            /* address to bind (default 127.0.0.1) */
    int port;                    /* 0: any free port (g3n_http_server_port tells which) */
    const char *allow_dir;       /* local image/audio paths allowed only under this folder; NULL: none */
    int max_sessions;            /* generations at once (default 4) */
    int queue;                   /* requests waiting beyond those (default 16); more get 429 */
    int64_t max_body_bytes;      /* request body limit (default 64 MiB); more gets 413 */
    int64_t max_media_bytes;     /* one decoded image or clip (default 32 MiB) */
    int64_t max_context;         /* prompt + completion tokens (default and cap: max_position_embeddings) */
    int64_t max_tokens;          /* completion tokens: default and cap (default 1024) */
    const char *model_name;      /* the id /v1/models lists and requests may name (default "gemma-3n") */
    const char *const *submodels;/* MatFormer sub-models the decoders serve (their names, common/model_io/submodel.h):
                                    each is listed as the model id "<model_name>:<name>"; a request naming
                                    that id (or the bare name) runs on it. Copied */
    int submodel_count;          /* at most G3N_HTTP_MAX_SUBMODELS */
    int max_connections;         /* open connections (default 256) */
    int retry_after_seconds;     /* Retry-After on 429/503 (default 1) */
    g3n_sampling_params sampling;/* used where a request gives no temperature (default greedy) */
    int quiet;                   /* 1: no log line per request */
    struct g3n_http_live *live;  /* /v1/live/... (http_live.h; borrowed, stop the server first);
                                    NULL: those answer 501 */
    /* Security (issue 17): API keys and per-key limits (http_auth.h; borrowed;
     * NULL: the API is open, with a warning when host is not a loopback
     * address), and HTTPS with a certificate chain and its key (PEM text,
     * copied; NULL: plain HTTP). */
    struct g3n_http_auth *auth;
    const char *tls_cert_pem, *tls_key_pem;
    int request_seconds;         /* a request's headers must arrive within this (default 30), and its body
                                    within this plus one second per G3N_HTTP_MIN_BODY_RATE bytes: slow or
                                    stalled senders are cut off (each byte used to reset an idle timeout) */
    int max_connections_per_address; /* open connections from one client address (default 3/4 of
                                    max_connections: one client cannot take them all) */
    struct g3n_prefix_cache *prefix_cache; /* decoder sessions kept for prefix reuse (prefix_cache.h; borrowed,
                                    stop the server first); NULL: every chat prefills its whole prompt */
} g3n_http_options;

#define G3N_HTTP_MAX_SUBMODELS 16

/* The slowest body accepted, bytes per second (after request_seconds). */
#define G3N_HTTP_MIN_BODY_RATE (16 << 10)

g3n_http_options g3n_http_default_options(void);

int g3n_http_server_start(g3n_http_server **out, g3n_broker *broker, const g3n_model_config *config,
                          const g3n_tokenizer *tokenizer, const g3n_http_options *options, g3n_error *err);
/* The port it listens on. */
int g3n_http_server_port(const g3n_http_server *server);
/* Cancels running chats, stops listening, waits for every thread. Accepts NULL. */
void g3n_http_server_stop(g3n_http_server *server);

/* For tests and /health: generations running, waiting, and chat threads alive. */
void g3n_http_server_counts(g3n_http_server *server, int *active, int *queued, int *jobs);

/* A body over --max-body-mb by at most this much is read (and dropped) before
 * the 413, so that clients that send before they read get the answer. */
#define G3N_HTTP_DRAIN_BYTES ((int64_t)64 << 20)

#endif
