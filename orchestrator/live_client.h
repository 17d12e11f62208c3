/* live_client.h - a live session on a g3n-orchestrator, over its front door
 * (proto LiveRequest / LiveReply; the orchestrator side is live_door.h): what
 * `g3n live --connect` and `g3n run --video --connect` use. Media are ingested
 * here (FFmpeg) and pushed as they come: frames as rgb [H, W, 3] u8 (or image
 * file bytes), audio as 16 kHz mono f32 pieces (gathered here up to
 * batch_samples, and sent before any frame or question so that the session
 * sees media in the order they were given).
 *
 * Threads: one caller at a time (the connection is one ZeroMQ socket).
 * Ownership: the client owns its connection; replies' envelopes are freed
 * before a call returns. */
#ifndef G3N_LIVE_CLIENT_H
#define G3N_LIVE_CLIENT_H

#include <stdint.h>

#include "front_door.h"
#include "status.h"
#include "transport.h"

typedef struct g3n_live_client g3n_live_client;

typedef struct g3n_live_client_options {
    const char *system;      /* may be NULL */
    int64_t max_positions;   /* the session's context (<= 0: the model's) */
    const char *model;       /* MatFormer sub-model the orchestrator's decoders serve (NULL: the full model) */
    int64_t batch_samples;   /* audio gathered before a piece is sent (default 16000: 1 s) */
    int timeout_ms;          /* no message from the orchestrator for this long fails (default 600000) */
    const char *attach;      /* a session id: continue that session (opened by this client key) instead of
                                opening one; system, max_positions and model are then ignored */
    int keep;                /* g3n_live_client_close leaves the session open (it expires when idle) */
} g3n_live_client_options;

g3n_live_client_options g3n_live_client_default_options(void);

/* The state the orchestrator reported last (LiveReply). */
typedef struct g3n_live_client_state {
    int64_t positions, pending, max_positions, audio_samples;
    int frames, audio_segments, questions, rebuilds, dropped_items;
    char decoder[64];
} g3n_live_client_state;

/* Connects and opens a session (or attaches to options->attach). */
int g3n_live_client_open(g3n_live_client **out, const char *endpoint, const g3n_transport_options *transport,
                         const g3n_live_client_options *options, g3n_error *err);
/* Closes the session (best effort) and the connection. Accepts NULL. */
void g3n_live_client_close(g3n_live_client *client);
const char *g3n_live_client_session_id(const g3n_live_client *client);

int g3n_live_client_frame_rgb(g3n_live_client *client, double seconds, const uint8_t *rgb, int width, int height,
                              int stride, g3n_error *err);
int g3n_live_client_image(g3n_live_client *client, double seconds, const void *bytes, size_t size, g3n_error *err);
/* Samples join the open audio segment (sent when batch_samples gathered). */
int g3n_live_client_audio(g3n_live_client *client, const float *samples, int64_t count, g3n_error *err);
/* Sends what is gathered and ends the audio segment. */
int g3n_live_client_end_audio(g3n_live_client *client, g3n_error *err);
/* Asks: sampling may be NULL (greedy), max_new_tokens 0 for the orchestrator's
 * default; on_event gets every TokenEvent (the last with finish and timings). */
int g3n_live_client_ask(g3n_live_client *client, const char *question, const G3n__SamplingParams *sampling,
                        uint32_t max_new_tokens, g3n_chat_event_callback on_event, void *user, g3n_error *err);
/* Sends gathered audio, then asks the orchestrator for the session's state. */
int g3n_live_client_refresh(g3n_live_client *client, g3n_error *err);
g3n_live_client_state g3n_live_client_get_state(const g3n_live_client *client);

#endif
