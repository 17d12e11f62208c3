/* front_door.h - the orchestrator daemon's client side: a ROUTER socket where
 * clients (e.g. `g3n run --connect`) send ChatRequest envelopes; each chat runs
 * on its own thread through the pipeline (pipeline.h) and its TokenEvents
 * stream back on the same connection (partial envelopes, then a final one with
 * the finish reason and timings). LiveRequest envelopes drive live sessions
 * (live_door.h: media pushed in pieces, questions at any time). Malformed or
 * other-version messages are answered with an Error and the door keeps
 * serving.
 *
 * Ownership: the door borrows the broker, config and tokenizer (keep them until
 * g3n_front_door_stop). */
#ifndef G3N_FRONT_DOOR_H
#define G3N_FRONT_DOOR_H

#include "config.h"
#include "status.h"
#include "tokenizer.h"
#include "transport.h"

typedef struct g3n_front_door g3n_front_door;

typedef struct g3n_front_door_options {
    const char *endpoint;         /* e.g. tcp://0.0.0.0:5556 */
    int max_chats;                /* chats at once (default 16); more are refused with ERROR_TOO_LARGE */
    uint32_t max_new_tokens;      /* cap on a request's max_new_tokens (default 1024) */
    int64_t max_message_bytes;    /* default G3N_WIRE_DEFAULT_MAX_MESSAGE_BYTES */
    struct g3n_prefix_cache *prefix_cache; /* kept sessions reused across chats (borrowed); NULL: none */
    int max_live_sessions;        /* live sessions at once (live_door.h; 0: 8; < 0: none, refused) */
    double live_idle_seconds;     /* an untouched live session is closed after this (default 600) */
    int64_t live_max_media_bytes; /* one frame's image bytes (default 16 MiB) */
    uint32_t live_max_tokens;     /* a live answer's length cap (default: max_new_tokens) */
    const char *preprocessor_config; /* preprocessor_config.json of the audio features (borrowed); NULL: defaults */
} g3n_front_door_options;

int g3n_front_door_start(g3n_front_door **out, g3n_broker *broker, const g3n_model_config *config,
                         const g3n_tokenizer *tokenizer, const g3n_front_door_options *options, g3n_error *err);
/* Cancels running chats, waits for them, closes the socket. Accepts NULL. */
void g3n_front_door_stop(g3n_front_door *door);

/* Client side: sends a ChatRequest to a front door and calls on_event for every
 * TokenEvent until the final one (or an Error, returned as G3N_ERR). Never
 * waits unbounded: no connection within G3N_FRONT_DOOR_CONNECT_MS (or
 * timeout_ms if less), no message for timeout_ms, a connection lost mid-answer
 * (the orchestrator killed or restarted; ZMTP heartbeats find a silent one
 * within 5 s) or a request over the message limit each fail at once with an
 * error naming the endpoint. */
#define G3N_FRONT_DOOR_CONNECT_MS 5000
typedef int (*g3n_chat_event_callback)(void *user, const G3n__TokenEvent *event);
int g3n_front_door_chat(const char *endpoint, G3n__ChatRequest *request, int timeout_ms,
                        g3n_chat_event_callback on_event, void *user, g3n_error *err);
/* The same with the connection's security (transport->curve: own key pair and
 * the orchestrator's public key; transport->insecure to allow plain tcp://).
 * g3n_front_door_chat is this with insecure = 1 (tests, trusted links). */
int g3n_front_door_chat_secure(const char *endpoint, const g3n_transport_options *transport,
                               G3n__ChatRequest *request, int timeout_ms, g3n_chat_event_callback on_event, void *user,
                               g3n_error *err);

/* A connection kept for several requests (a live session's steps): one thread
 * at a time. g3n_front_door_exchange sends one envelope (its body set; the
 * request_id is assigned), calls on_event for every TokenEvent, and gives the
 * final envelope (a LiveReply, the last TokenEvent) in *final_reply when not
 * NULL (free it with g3n_wire_free); an Error reply is returned as G3N_ERR
 * with "ERROR_CODE: message". The waits are those of g3n_front_door_chat. */
typedef struct g3n_front_door_connection g3n_front_door_connection;
int g3n_front_door_connect(g3n_front_door_connection **out, const char *endpoint,
                           const g3n_transport_options *transport, g3n_error *err);
int g3n_front_door_exchange(g3n_front_door_connection *connection, G3n__Envelope *request, int timeout_ms,
                            g3n_chat_event_callback on_event, void *user, G3n__Envelope **final_reply,
                            g3n_error *err);
void g3n_front_door_disconnect(g3n_front_door_connection *connection); /* accepts NULL */

#endif
