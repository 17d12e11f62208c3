/* session_record.c - what a decoder session holds (session_record.h). */
#include "session_record.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_uint_fast64_t record_counter = 0;

g3n_session_record *g3n_session_record_new(void)
{
    g3n_session_record *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->session_id, sizeof(r->session_id), "conversation-%d-%llu", (int)getpid(),
             (unsigned long long)atomic_fetch_add(&record_counter, 1));
    return r;
}

void g3n_session_record_free(g3n_session_record *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->media_count; i++)
        g3n_wire_free(r->media[i]);
    free(r->media);
    free(r->media_keys);
    free(r->ids);
    free(r);
}

static int reserve_ids(g3n_session_record *r, int64_t count, g3n_error *err)
{
    if (count <= r->capacity)
        return G3N_OK;
    int64_t capacity = r->capacity ? r->capacity : 256;
    while (capacity < count)
        capacity *= 2;
    int32_t *grown = realloc(r->ids, sizeof(int32_t) * (size_t)capacity);
    if (!grown)
        return g3n_error_set(err, "session %s: out of memory for %lld ids", r->session_id, (long long)count);
    r->ids = grown;
    r->capacity = capacity;
    return G3N_OK;
}

int g3n_session_record_append_ids(g3n_session_record *r, const int32_t *ids, int64_t count, g3n_error *err)
{
    if (count <= 0)
        return G3N_OK;
    if (reserve_ids(r, r->count + count, err) != G3N_OK)
        return G3N_ERR;
    memcpy(r->ids + r->count, ids, sizeof(int32_t) * (size_t)count);
    r->count += count;
    return G3N_OK;
}

int g3n_session_record_set_ids(g3n_session_record *r, const int32_t *ids, int64_t count, g3n_error *err)
{
    if (reserve_ids(r, count, err) != G3N_OK)
        return G3N_ERR;
    if (count > 0)
        memmove(r->ids, ids, sizeof(int32_t) * (size_t)count);
    r->count = count;
    return G3N_OK;
}

int g3n_session_record_adopt_media(g3n_session_record *r, G3n__Envelope **media, const uint64_t *keys, int count,
                                   g3n_error *err)
{
    if (count <= 0)
        return G3N_OK;
    if (r->media_count + count > r->media_capacity) {
        int capacity = r->media_capacity ? r->media_capacity : 8;
        while (capacity < r->media_count + count)
            capacity *= 2;
        G3n__Envelope **grown = realloc(r->media, sizeof(*grown) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "session %s: out of memory for its media", r->session_id);
        r->media = grown;
        uint64_t *grown_keys = realloc(r->media_keys, sizeof(*grown_keys) * (size_t)capacity);
        if (!grown_keys)
            return g3n_error_set(err, "session %s: out of memory for its media", r->session_id);
        r->media_keys = grown_keys;
        r->media_capacity = capacity;
    }
    for (int i = 0; i < count; i++) {
        r->media[r->media_count] = media[i];
        r->media_keys[r->media_count] = keys[i];
        r->media_count++;
        media[i] = NULL;
    }
    return G3N_OK;
}

static uint64_t tensor_bytes(const G3n__Tensor *t)
{
    return t ? (uint64_t)t->data.len : 0;
}

uint64_t g3n_session_record_bytes(const g3n_session_record *r)
{
    uint64_t bytes = sizeof(*r) + sizeof(int32_t) * (uint64_t)r->capacity;
    for (int i = 0; i < r->media_count; i++) {
        const G3n__Envelope *m = r->media[i];
        if (m && m->body_case == G3N__ENVELOPE__BODY_ENCODE_IMAGE_REPLY)
            bytes += tensor_bytes(m->encode_image_reply->tokens);
        else if (m && m->body_case == G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY)
            bytes += tensor_bytes(m->encode_audio_reply->tokens) + tensor_bytes(m->encode_audio_reply->padding);
    }
    return bytes;
}

void g3n_session_record_end(g3n_session_record *r, g3n_client *client)
{
    if (!r || !r->decoder[0] || !client)
        return;
    G3n__Envelope env;
    G3n__EndSession q;
    g3n__envelope__init(&env);
    g3n__end_session__init(&q);
    q.session_id = r->session_id;
    env.body_case = G3N__ENVELOPE__BODY_END_SESSION;
    env.end_session = &q;
    g3n_request_options ro = {G3N_ROLE_DECODER, 0, r->decoder};
    g3n_reply reply;
    g3n_error ignored;
    memset(&reply, 0, sizeof(reply));
    g3n_client_call(client, &ro, &env, NULL, NULL, &reply, &ignored);
    g3n_reply_clear(&reply);
    r->decoder[0] = '\0';
}

uint64_t g3n_media_key(const void *bytes, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const uint8_t *p = bytes;
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h ^ ((uint64_t)size * 0x9E3779B97F4A7C15ull);
}
