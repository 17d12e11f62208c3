/* http_stop.c - stop strings over streamed text (http_stop.h). */
#include "http_stop.h"

#include <stdlib.h>
#include <string.h>

int g3n_stop_init(g3n_stop_matcher *m, const char *const *stops, int count, g3n_error *err)
{
    memset(m, 0, sizeof(*m));
    if (count > G3N_STOP_MAX)
        return g3n_error_set(err, "at most %d stop strings (got %d)", G3N_STOP_MAX, count);
    for (int i = 0; i < count; i++) {
        size_t n = strlen(stops[i]);
        if (n == 0)
            continue;
        m->stops[m->count] = malloc(n + 1);
        if (!m->stops[m->count]) {
            g3n_stop_free(m);
            return g3n_error_set(err, "out of memory for stop strings");
        }
        memcpy(m->stops[m->count], stops[i], n + 1);
        m->lengths[m->count] = n;
        m->count++;
    }
    return G3N_OK;
}

void g3n_stop_free(g3n_stop_matcher *m)
{
    for (int i = 0; i < m->count; i++)
        free(m->stops[i]);
    free(m->pending);
    free(m->released);
    memset(m, 0, sizeof(*m));
}

static int reserve(char **buffer, size_t *capacity, size_t need, g3n_error *err)
{
    if (need <= *capacity)
        return G3N_OK;
    size_t c = *capacity ? *capacity : 64;
    while (c < need)
        c *= 2;
    char *b = realloc(*buffer, c);
    if (!b)
        return g3n_error_set(err, "out of memory in the stop-string matcher");
    *buffer = b;
    *capacity = c;
    return G3N_OK;
}

/* Moves pending[0..n) to released and drops it from pending. */
static int release(g3n_stop_matcher *m, size_t n, size_t drop, const char **out, size_t *out_length, g3n_error *err)
{
    if (reserve(&m->released, &m->released_capacity, n + 1, err) != G3N_OK)
        return G3N_ERR;
    memcpy(m->released, m->pending, n);
    m->released[n] = '\0';
    *out = m->released;
    *out_length = n;
    size_t consumed = n + drop > m->pending_length ? m->pending_length : n + drop;
    memmove(m->pending, m->pending + consumed, m->pending_length - consumed);
    m->pending_length -= consumed;
    return G3N_OK;
}

int g3n_stop_push(g3n_stop_matcher *m, const char *text, size_t length, const char **out, size_t *out_length,
                  g3n_error *err)
{
    *out = "";
    *out_length = 0;
    if (m->matched)
        return 1;
    if (m->count == 0) {
        *out = text;
        *out_length = length;
        return 0;
    }
    if (reserve(&m->pending, &m->pending_capacity, m->pending_length + length + 1, err) != G3N_OK)
        return G3N_ERR;
    memcpy(m->pending + m->pending_length, text, length);
    m->pending_length += length;
    /* the earliest complete stop string */
    size_t best = (size_t)-1;
    for (int s = 0; s < m->count; s++) {
        size_t n = m->lengths[s];
        for (size_t i = 0; i + n <= m->pending_length && i < best; i++)
            if (memcmp(m->pending + i, m->stops[s], n) == 0) {
                best = i;
                break;
            }
    }
    if (best != (size_t)-1) {
        m->matched = 1;
        if (release(m, best, m->pending_length - best, out, out_length, err) != G3N_OK)
            return G3N_ERR;
        return 1;
    }
    /* hold back the longest tail that is a proper prefix of a stop string */
    size_t hold = 0;
    for (int s = 0; s < m->count; s++) {
        size_t limit = m->lengths[s] - 1 < m->pending_length ? m->lengths[s] - 1 : m->pending_length;
        for (size_t k = limit; k > hold; k--)
            if (memcmp(m->pending + m->pending_length - k, m->stops[s], k) == 0) {
                hold = k;
                break;
            }
    }
    if (release(m, m->pending_length - hold, 0, out, out_length, err) != G3N_OK)
        return G3N_ERR;
    return 0;
}

void g3n_stop_flush(g3n_stop_matcher *m, const char **out, size_t *out_length)
{
    *out = "";
    *out_length = 0;
    if (m->matched || m->pending_length == 0)
        return;
    /* pending already fits in released's worst case? grow released is an allocation: hand out pending itself */
    *out = m->pending;
    *out_length = m->pending_length;
    m->pending_length = 0;
}
