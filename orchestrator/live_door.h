/* live_door.h - live sessions behind the orchestrator's front door
 * (front_door.h; proto LiveRequest / LiveReply): each session is a
 * g3n_live_pipeline (live_pipeline.h) driven by a thread of its own, which
 * takes the session's requests in the order they came (frames, audio pieces,
 * questions, close) from a bounded queue and answers each on the client's
 * connection: a LiveReply, or for a question the TokenEvents of its answer.
 *
 * Sessions belong to their owner (the client's CurveZMQ User-Id, "" without
 * keys): another owner gets ERROR_NOT_FOUND, as for an unknown id. Ids are
 * "live-" + 32 hex characters of getrandom (128 bits). Bounds: max_sessions at
 * once (ERROR_TOO_LARGE), max_queue requests waiting per session, a session
 * untouched for idle_seconds is closed (g3n_live_door_expire), and every field
 * of a request is checked before use (sizes, shapes, finite samples, text
 * lengths): a bad one is ERROR_BAD_REQUEST / ERROR_TOO_LARGE naming it.
 *
 * Threads: submit, expire, cancel_client and close_all are called by the
 * front door's thread (the owner of its ROUTER); replies travel over PUSH
 * sockets to reply_endpoint as [identity][envelope]. Ownership: borrows the
 * broker, config and tokenizer until g3n_live_door_free. */
#ifndef G3N_LIVE_DOOR_H
#define G3N_LIVE_DOOR_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"
#include "tokenizer.h"
#include "transport.h"

typedef struct g3n_live_door g3n_live_door;

typedef struct g3n_live_door_options {
    int max_sessions;           /* sessions at once (default 8; < 0: none, every request refused) */
    double idle_seconds;        /* untouched this long: closed (default 600) */
    int max_queue;              /* requests waiting per session (default 16) */
    uint32_t max_new_tokens;    /* cap on an answer (default 1024) */
    int64_t max_image_bytes;    /* one frame's file bytes (default 16 MiB) */
    int64_t max_frame_pixels;   /* one rgb frame's width x height (default 16 Mpixel) */
    int64_t max_audio_samples;  /* one audio piece (default 30 s at 16 kHz) */
    size_t max_text_bytes;      /* a question or system prompt (default 64 KiB) */
    const char *preprocessor_config; /* the audio features' preprocessor_config.json (borrowed); NULL: defaults */
} g3n_live_door_options;

g3n_live_door_options g3n_live_door_default_options(void);

int g3n_live_door_create(g3n_live_door **out, g3n_broker *broker, const g3n_model_config *config,
                         const g3n_tokenizer *tokenizer, const char *reply_endpoint,
                         const g3n_live_door_options *options, g3n_error *err);

/* Takes a LiveRequest envelope (owned from then on, whatever happens). Returns
 * 0 when queued (its answer comes over reply_endpoint), else the proto
 * ErrorCode to answer at once with message. */
int g3n_live_door_submit(g3n_live_door *door, const void *identity, size_t identity_size, const char *owner,
                         G3n__Envelope *request, char *message, size_t message_size);
/* Closes the sessions idle longer than idle_seconds. */
void g3n_live_door_expire(g3n_live_door *door);
/* The client with this identity is gone: its running answer stops. */
void g3n_live_door_cancel_client(g3n_live_door *door, const void *identity, size_t identity_size);
/* Stops every session (running answers are cancelled); their threads end soon after. */
void g3n_live_door_close_all(g3n_live_door *door);
/* Session threads still running. */
int g3n_live_door_active(g3n_live_door *door);
/* Waits for the session threads (after close_all) and frees. Accepts NULL. */
void g3n_live_door_free(g3n_live_door *door);

#endif
