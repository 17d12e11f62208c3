/* prefix_cache.c - decoder sessions kept for prefix reuse (prefix_cache.h). */
#include "prefix_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct g3n_prefix_cache {
    g3n_prefix_cache_options options;
    pthread_mutex_t lock;
    g3n_session_record **entries;
    int count;
    uint64_t clock;
    g3n_prefix_cache_stats stats;
};

g3n_prefix_cache_options g3n_prefix_cache_default_options(void)
{
    g3n_prefix_cache_options o;
    o.max_entries = 8;
    o.max_positions = 65536;
    o.max_bytes = (int64_t)1 << 30;
    o.session_positions = 8192;
    return o;
}

int g3n_prefix_cache_create(g3n_prefix_cache **out, const g3n_prefix_cache_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_prefix_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return g3n_error_set(err, "prefix cache: out of memory");
    g3n_prefix_cache_options d = g3n_prefix_cache_default_options();
    c->options = options ? *options : d;
    if (c->options.max_entries <= 0)
        c->options.max_entries = d.max_entries;
    if (c->options.max_positions <= 0)
        c->options.max_positions = d.max_positions;
    if (c->options.max_bytes <= 0)
        c->options.max_bytes = d.max_bytes;
    if (c->options.session_positions <= 0)
        c->options.session_positions = d.session_positions;
    c->entries = calloc((size_t)c->options.max_entries + 1, sizeof(*c->entries));
    if (!c->entries) {
        free(c);
        return g3n_error_set(err, "prefix cache: out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return G3N_OK;
}

void g3n_prefix_cache_free(g3n_prefix_cache *c, g3n_client *client)
{
    if (!c)
        return;
    for (int i = 0; i < c->count; i++) {
        g3n_session_record_end(c->entries[i], client);
        g3n_session_record_free(c->entries[i]);
    }
    free(c->entries);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const g3n_prefix_cache_options *g3n_prefix_cache_options_get(const g3n_prefix_cache *c)
{
    return &c->options;
}

static void remove_at(g3n_prefix_cache *c, int index)
{
    memmove(c->entries + index, c->entries + index + 1, sizeof(*c->entries) * (size_t)(c->count - index - 1));
    c->count--;
}

g3n_session_record *g3n_prefix_cache_take(g3n_prefix_cache *c, const char *model, const int32_t *ids,
                                          int64_t count, const uint64_t *keys, int key_count)
{
    if (!c)
        return NULL;
    if (!model)
        model = "";
    pthread_mutex_lock(&c->lock);
    int best = -1;
    for (int i = 0; i < c->count; i++) {
        const g3n_session_record *r = c->entries[i];
        if (r->count <= 0 || r->count >= count || r->media_count > key_count || !r->decoder[0])
            continue;
        if (best >= 0 && r->count <= c->entries[best]->count)
            continue;
        if (strcmp(r->model, model) != 0) /* a session runs the model it was opened with */
            continue;
        if (memcmp(r->ids, ids, sizeof(int32_t) * (size_t)r->count) != 0)
            continue;
        if (r->media_count && memcmp(r->media_keys, keys, sizeof(uint64_t) * (size_t)r->media_count) != 0)
            continue;
        best = i;
    }
    g3n_session_record *taken = NULL;
    if (best >= 0) {
        taken = c->entries[best];
        remove_at(c, best);
        c->stats.positions -= taken->count;
    }
    c->stats.entries = c->count;
    pthread_mutex_unlock(&c->lock);
    return taken;
}

/* Entries over the bounds (c->lock held), least recently used first, moved to out[]; returns how many. */
static int collect_evictions(g3n_prefix_cache *c, g3n_session_record **out)
{
    int n = 0;
    for (;;) {
        int64_t positions = 0;
        uint64_t bytes = 0;
        int oldest = -1;
        for (int i = 0; i < c->count; i++) {
            positions += c->entries[i]->count;
            bytes += g3n_session_record_bytes(c->entries[i]);
            if (oldest < 0 || c->entries[i]->last_used < c->entries[oldest]->last_used)
                oldest = i;
        }
        c->stats.positions = positions;
        if (oldest < 0 || (c->count <= c->options.max_entries && positions <= c->options.max_positions &&
                           bytes <= (uint64_t)c->options.max_bytes))
            break;
        out[n++] = c->entries[oldest];
        remove_at(c, oldest);
        c->stats.evictions++;
    }
    c->stats.entries = c->count;
    return n;
}

void g3n_prefix_cache_put(g3n_prefix_cache *c, g3n_client *client, g3n_session_record *record)
{
    if (!record)
        return;
    if (!c || !record->decoder[0] || record->count <= 0) {
        g3n_session_record_end(record, client);
        g3n_session_record_free(record);
        return;
    }
    pthread_mutex_lock(&c->lock);
    record->last_used = ++c->clock;
    c->entries[c->count++] = record; /* room for one over max_entries */
    g3n_session_record **evicted = malloc(sizeof(*evicted) * (size_t)c->count);
    int n = 0;
    if (evicted) {
        n = collect_evictions(c, evicted);
    } else { /* out of memory: give the new record up rather than grow past the bounds */
        c->count--;
        evicted = &record;
        n = 1;
    }
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < n; i++) {
        g3n_session_record_end(evicted[i], client);
        g3n_session_record_free(evicted[i]);
    }
    if (evicted != &record)
        free(evicted);
}

int g3n_prefix_cache_evict_one(g3n_prefix_cache *c, g3n_client *client)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    int oldest = -1;
    for (int i = 0; i < c->count; i++)
        if (oldest < 0 || c->entries[i]->last_used < c->entries[oldest]->last_used)
            oldest = i;
    g3n_session_record *victim = NULL;
    if (oldest >= 0) {
        victim = c->entries[oldest];
        remove_at(c, oldest);
        c->stats.evictions++;
        c->stats.positions -= victim->count;
        c->stats.entries = c->count;
    }
    pthread_mutex_unlock(&c->lock);
    if (!victim)
        return 0;
    g3n_session_record_end(victim, client);
    g3n_session_record_free(victim);
    return 1;
}

void g3n_prefix_cache_get_stats(g3n_prefix_cache *c, g3n_prefix_cache_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    *stats = c->stats;
    pthread_mutex_unlock(&c->lock);
}

void g3n_prefix_cache_count(g3n_prefix_cache *c, int hit, int64_t reused_tokens, int rebuilds)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    if (hit)
        c->stats.hits++;
    else
        c->stats.misses++;
    c->stats.reused_tokens += (uint64_t)(reused_tokens > 0 ? reused_tokens : 0);
    c->stats.rebuilds += (uint64_t)(rebuilds > 0 ? rebuilds : 0);
    pthread_mutex_unlock(&c->lock);
}

int g3n_prefix_cache_append_metrics(g3n_prefix_cache *c, char **text, size_t *size)
{
    g3n_prefix_cache_stats st;
    g3n_prefix_cache_get_stats(c, &st);
    char block[1600];
    int n = snprintf(block, sizeof(block),
                     "# HELP g3n_prefix_cache_hits_total Chats that continued a kept decoder session.\n"
                     "# TYPE g3n_prefix_cache_hits_total counter\n"
                     "g3n_prefix_cache_hits_total %llu\n"
                     "# HELP g3n_prefix_cache_misses_total Chats that prefilled their whole prompt.\n"
                     "# TYPE g3n_prefix_cache_misses_total counter\n"
                     "g3n_prefix_cache_misses_total %llu\n"
                     "# HELP g3n_prefix_cache_reused_tokens_total Prompt positions not prefilled again.\n"
                     "# TYPE g3n_prefix_cache_reused_tokens_total counter\n"
                     "g3n_prefix_cache_reused_tokens_total %llu\n"
                     "# HELP g3n_prefix_cache_evictions_total Kept sessions ended to stay within the bounds.\n"
                     "# TYPE g3n_prefix_cache_evictions_total counter\n"
                     "g3n_prefix_cache_evictions_total %llu\n"
                     "# HELP g3n_prefix_cache_sessions Decoder sessions kept now.\n"
                     "# TYPE g3n_prefix_cache_sessions gauge\n"
                     "g3n_prefix_cache_sessions %d\n"
                     "# HELP g3n_session_rebuilds_total Sessions prefilled again on another decoder (theirs lost).\n"
                     "# TYPE g3n_session_rebuilds_total counter\n"
                     "g3n_session_rebuilds_total %llu\n",
                     (unsigned long long)st.hits, (unsigned long long)st.misses,
                     (unsigned long long)st.reused_tokens, (unsigned long long)st.evictions, st.entries,
                     (unsigned long long)st.rebuilds);
    if (n < 0 || (size_t)n >= sizeof(block))
        return G3N_ERR;
    char *grown = realloc(*text, *size + (size_t)n + 1);
    if (!grown)
        return G3N_ERR;
    memcpy(grown + *size, block, (size_t)n + 1);
    *text = grown;
    *size += (size_t)n;
    return G3N_OK;
}
