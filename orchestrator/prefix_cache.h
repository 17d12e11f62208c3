/* prefix_cache.h - automatic prefix reuse across requests: decoder sessions
 * left open after a request, each with its record (session_record.h), so
 * that a later request whose prompt extends the tokens a session holds
 * (typically the previous turn of a chat plus its answer) prefills only the
 * new suffix on the decoder that holds it.
 *
 * Matching: an entry matches a prompt when its held ids are a proper prefix
 * of the prompt's ids and the keys of its media equal the prompt's first
 * media keys (the placeholders alone do not tell images apart); the longest
 * match wins. A matched entry is taken out (one request continues a session
 * at a time) and given back, extended, when the request ends.
 *
 * Bounds: entries, positions held by all entries together (the decoders' KV
 * memory) and the records' own bytes (media soft tokens); beyond them the
 * least recently used entries are evicted and their decoder sessions ended.
 * The decoders bound their sessions themselves too (count, memory, idle
 * timeout): a session a decoder dropped is rebuilt (pipeline.h), never
 * silently wrong.
 *
 * Thread-safe (one mutex). Ownership: the cache owns the records it holds;
 * take hands one to the caller, put takes it back. */
#ifndef G3N_PREFIX_CACHE_H
#define G3N_PREFIX_CACHE_H

#include <stdint.h>

#include "session_record.h"
#include "status.h"
#include "transport.h"

typedef struct g3n_prefix_cache g3n_prefix_cache;

typedef struct g3n_prefix_cache_options {
    int max_entries;           /* sessions kept (default 8) */
    int64_t max_positions;     /* positions held by all of them together (default 65536) */
    int64_t max_bytes;         /* the records' memory together (default 1 GiB) */
    int64_t session_positions; /* context a kept session is opened with (default 8192; the decoder caps it) */
} g3n_prefix_cache_options;

g3n_prefix_cache_options g3n_prefix_cache_default_options(void);

int g3n_prefix_cache_create(g3n_prefix_cache **out, const g3n_prefix_cache_options *options, g3n_error *err);
/* Ends every kept session through client (NULL: leaves them to the decoders' idle timeout). Accepts NULL. */
void g3n_prefix_cache_free(g3n_prefix_cache *cache, g3n_client *client);
const g3n_prefix_cache_options *g3n_prefix_cache_options_get(const g3n_prefix_cache *cache);

/* The entry of the same model (its record's model; NULL or "": the full model) holding the longest proper
 * prefix of ids[0..count) whose media keys equal keys[0..) (in order), taken out of the cache; NULL when none. */
g3n_session_record *g3n_prefix_cache_take(g3n_prefix_cache *cache, const char *model, const int32_t *ids,
                                          int64_t count, const uint64_t *keys, int key_count);
/* Keeps record (most recently used); evicts what the bounds no longer allow
 * (ending those sessions through client). A record holding no decoder
 * session is freed instead. */
void g3n_prefix_cache_put(g3n_prefix_cache *cache, g3n_client *client, g3n_session_record *record);
/* Ends the least recently used entry's session (a decoder is out of room): 1 when one was evicted. */
int g3n_prefix_cache_evict_one(g3n_prefix_cache *cache, g3n_client *client);

typedef struct g3n_prefix_cache_stats {
    uint64_t hits, misses;      /* requests that continued a kept session, and that did not */
    uint64_t reused_tokens;     /* prompt positions not prefilled again thanks to hits */
    uint64_t evictions;
    uint64_t rebuilds;          /* kept sessions re-prefilled after their decoder lost them */
    int entries;
    int64_t positions;
} g3n_prefix_cache_stats;
void g3n_prefix_cache_get_stats(g3n_prefix_cache *cache, g3n_prefix_cache_stats *stats);
/* Appends the stats as Prometheus text (g3n_prefix_cache_* and g3n_session_rebuilds_total) to the
 * malloc'd, NUL-terminated *text of *size bytes (grown with realloc). G3N_ERR when out of memory. */
int g3n_prefix_cache_append_metrics(g3n_prefix_cache *cache, char **text, size_t *size);
/* Counts a request's outcome (reused positions, rebuilds) into the stats. */
void g3n_prefix_cache_count(g3n_prefix_cache *cache, int hit, int64_t reused_tokens, int rebuilds);

#endif
