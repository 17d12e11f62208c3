/* session_record.h - the orchestrator's record of one decoder session: what
 * its KV cache holds, so that the session can be continued where it lives or,
 * when that decoder is lost (or dropped the session), rebuilt on another
 * decoder by prefilling the same positions again.
 *
 *   ids     the token ids of every position the cache holds, in order
 *           (prompt placeholders included; a generated token is held once it
 *           was fed back);
 *   media   the encoders' replies (EncodeImageReply / EncodeAudioReply
 *           envelopes) of the images and clips whose placeholders are in ids,
 *           in order, with a key per item (g3n_media_key of its file bytes)
 *           that the prefix cache matches requests by.
 *
 * Ownership: a record owns its ids, media envelopes and keys; one thread
 * uses it at a time (the prefix cache hands it out and takes it back whole).
 */
#ifndef G3N_SESSION_RECORD_H
#define G3N_SESSION_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "transport.h"

#define G3N_SESSION_ID_BYTES 128

typedef struct g3n_session_record {
    char session_id[G3N_SESSION_ID_BYTES];
    char decoder[64];          /* the worker holding its KV cache; "" when none holds it yet */
    char model[64];            /* the MatFormer sub-model the session runs ("": the full model); a decoder
                                  session stays bound to it, so only a request for the same model continues it */
    int32_t *ids;              /* [count] positions the cache holds */
    int64_t count, capacity;
    G3n__Envelope **media;     /* [media_count] owned encoder replies */
    uint64_t *media_keys;      /* [media_count] */
    int media_count, media_capacity;
    int64_t max_positions;     /* the context the decoder session was opened with (0: unknown) */
    uint64_t last_used;        /* the prefix cache's LRU clock */
} g3n_session_record;

/* A fresh record named "session-PID-N" (unique in this process). NULL when out of memory. */
g3n_session_record *g3n_session_record_new(void);
void g3n_session_record_free(g3n_session_record *record); /* accepts NULL */

/* Appends held positions (after the decoder acknowledged them). */
int g3n_session_record_append_ids(g3n_session_record *record, const int32_t *ids, int64_t count, g3n_error *err);
/* Replaces the held positions (a rebuild re-prefilled them all). */
int g3n_session_record_set_ids(g3n_session_record *record, const int32_t *ids, int64_t count, g3n_error *err);
/* Moves `count` envelopes (and their keys) into the record; the caller's pointers are set to NULL. */
int g3n_session_record_adopt_media(g3n_session_record *record, G3n__Envelope **media, const uint64_t *keys,
                                   int count, g3n_error *err);
/* Bytes the record keeps (ids and the media envelopes' tensors, about). */
uint64_t g3n_session_record_bytes(const g3n_session_record *record);

/* Ends the session on its decoder (EndSession pinned there; errors ignored: a
 * lost decoder took the session with it) and forgets the decoder. */
void g3n_session_record_end(g3n_session_record *record, g3n_client *client);

/* A key for an image or clip: FNV-1a 64 of its bytes, mixed with the size. */
uint64_t g3n_media_key(const void *bytes, size_t size);

#endif
