/* http_stop.h - OpenAI `stop` strings over streamed text.
 *
 * Text goes in piece by piece (as the detokenizer produces it); what comes
 * out is the text that can no longer be the start of a stop string, so a
 * stream never shows a stop string or a part of one. When a stop string
 * appears, the text before it is released and the matcher reports the stop.
 * Without stop strings every piece passes straight through.
 *
 * Ownership: the matcher copies the stop strings; the released text points
 * into the matcher and is valid until the next call. */
#ifndef G3N_HTTP_STOP_H
#define G3N_HTTP_STOP_H

#include <stddef.h>

#include "status.h"

#define G3N_STOP_MAX 4

typedef struct g3n_stop_matcher {
    char *stops[G3N_STOP_MAX];
    size_t lengths[G3N_STOP_MAX];
    int count;
    char *pending;      /* held back: may begin a stop string */
    size_t pending_length, pending_capacity;
    char *released;     /* what the last call gave out */
    size_t released_capacity;
    int matched;        /* 1 once a stop string was seen (later text is dropped) */
} g3n_stop_matcher;

/* stops: count (<= G3N_STOP_MAX) non-empty strings. */
int g3n_stop_init(g3n_stop_matcher *matcher, const char *const *stops, int count, g3n_error *err);
void g3n_stop_free(g3n_stop_matcher *matcher); /* accepts a zeroed struct */

/* Adds text; *out / *out_length receive what may be shown now. Returns 1 when
 * a stop string was matched (generation should stop), else 0; G3N_ERR on
 * out of memory. */
int g3n_stop_push(g3n_stop_matcher *matcher, const char *text, size_t length, const char **out, size_t *out_length,
                  g3n_error *err);
/* End of the stream: releases what is still held back (nothing after a match). */
void g3n_stop_flush(g3n_stop_matcher *matcher, const char **out, size_t *out_length);

#endif
