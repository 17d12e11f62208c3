/* audio_stream_table.c - audio streams on the audio-encoder role (audio_stream_table.h). */
#include "audio_stream_table.h"

#include <stdlib.h>
#include <string.h>

#include "audio_stream.h"
#include "ops.h"

#define MAX_STREAM_ID 128

typedef struct stream_entry {
    char id[MAX_STREAM_ID + 1];
    g3n_audio_stream *stream;
    double last_used;
    /* what the current request released, per segment in order (the sink appends) */
    float *tokens;
    int64_t count, capacity; /* rows of hidden_size */
    int segment;             /* of the rows gathered */
    int64_t first_token;
    int has_rows;
    g3n_worker_call *call;   /* the request being served (a segment change sends what was gathered) */
    int64_t samples;         /* pushed since the clip began */
    struct g3n_audio_stream_table *table;
    int send_failed;
} stream_entry;

struct g3n_audio_stream_table {
    const g3n_audio_features *features;
    const g3n_audio_encoder *encoder;
    int64_t hidden;
    int max_streams;
    double idle_seconds;
    int64_t max_samples;
    int rate;
    stream_entry *streams;
};

int g3n_audio_stream_table_create(g3n_audio_stream_table **out, const g3n_audio_features *features,
                                  const g3n_audio_encoder *encoder, int64_t hidden_size, int max_streams,
                                  double idle_seconds, int64_t max_samples, int sampling_rate, g3n_error *err)
{
    *out = NULL;
    g3n_audio_stream_table *t = calloc(1, sizeof(*t));
    if (!t || max_streams < 1 || !(t->streams = calloc((size_t)max_streams, sizeof(*t->streams)))) {
        free(t);
        return g3n_error_set(err, "audio streams: out of memory");
    }
    t->features = features;
    t->encoder = encoder;
    t->hidden = hidden_size;
    t->max_streams = max_streams;
    t->idle_seconds = idle_seconds;
    t->max_samples = max_samples;
    t->rate = sampling_rate;
    *out = t;
    return G3N_OK;
}

static void entry_release(stream_entry *e)
{
    g3n_audio_stream_free(e->stream);
    free(e->tokens);
    memset(e, 0, sizeof(*e));
}

void g3n_audio_stream_table_free(g3n_audio_stream_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->max_streams; i++)
        entry_release(&t->streams[i]);
    free(t->streams);
    free(t);
}

/* Sends the rows gathered (one segment) as an EncodeAudioReply; partial unless final. */
static int send_rows(stream_entry *e, int final, double seconds, g3n_error *err)
{
    G3n__Envelope env;
    G3n__EncodeAudioReply reply;
    g3n__envelope__init(&env);
    g3n__encode_audio_reply__init(&reply);
    g3n_wire_tensor tokens;
    int64_t shape[2] = {e->count, e->table->hidden};
    static const float none[1] = {0.0f};
    g3n_wire_tensor_borrow(&tokens, G3N_DTYPE_F32, 2, shape, e->count ? e->tokens : none);
    reply.tokens = &tokens.message;
    reply.final = final;
    reply.seconds = seconds;
    reply.audio_seconds = (double)e->samples / e->table->rate;
    reply.segment = e->segment;
    reply.first_token = e->first_token;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY;
    env.encode_audio_reply = &reply;
    int rc = g3n_worker_call_send(e->call, &env, !final, err);
    e->count = 0;
    e->has_rows = 0;
    return rc;
}

static int sink(void *user, int segment, int64_t first_token, const float *tokens, int64_t count, int64_t width,
                g3n_error *err)
{
    stream_entry *e = user;
    if (width != e->table->hidden)
        return g3n_error_set(err, "audio stream: tokens of width %lld, not %lld", (long long)width,
                             (long long)e->table->hidden);
    if (e->has_rows && segment != e->segment && send_rows(e, 0, 0.0, err) != G3N_OK) /* a new segment */
        return G3N_ERR;
    if (!e->has_rows) {
        e->segment = segment;
        e->first_token = first_token;
        e->has_rows = 1;
    }
    if (e->count + count > e->capacity) {
        int64_t capacity = e->capacity ? e->capacity : 64;
        while (capacity < e->count + count)
            capacity *= 2;
        float *grown = realloc(e->tokens, sizeof(float) * (size_t)(capacity * width));
        if (!grown)
            return g3n_error_set(err, "audio stream: out of memory");
        e->tokens = grown;
        e->capacity = capacity;
    }
    memcpy(e->tokens + e->count * width, tokens, sizeof(float) * (size_t)(count * width));
    e->count += count;
    return G3N_OK;
}

int g3n_audio_stream_table_handle(g3n_audio_stream_table *t, g3n_worker_call *call,
                                  const G3n__EncodeAudioRequest *q, g3n_error *err)
{
    const double t0 = g3n_now_seconds();
    if (strlen(q->stream_id) > MAX_STREAM_ID) {
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
        return g3n_error_set(err, "encode_audio.stream_id: longer than %d bytes", MAX_STREAM_ID);
    }
    if (q->audio.len > 0 || q->features) {
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
        return g3n_error_set(err, "encode_audio: a stream takes samples (16 kHz mono f32), not audio bytes or "
                                  "features");
    }
    if (!q->samples && !q->flush) {
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
        return g3n_error_set(err, "encode_audio: a stream piece needs samples or flush");
    }
    g3n_tensor view;
    memset(&view, 0, sizeof(view));
    if (q->samples && g3n_wire_tensor_view(q->samples, "encode_audio.samples", G3N_DTYPE_F32, 1, NULL, t->max_samples,
                                           &view, err) != G3N_OK) {
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
        return G3N_ERR;
    }
    const double now = g3n_now_seconds();
    stream_entry *e = NULL, *free_slot = NULL;
    for (int i = 0; i < t->max_streams; i++) {
        stream_entry *c = &t->streams[i];
        if (c->stream && now - c->last_used > t->idle_seconds && strcmp(c->id, q->stream_id) != 0)
            entry_release(c); /* expired */
        if (c->stream && strcmp(c->id, q->stream_id) == 0)
            e = c;
        else if (!c->stream && !free_slot)
            free_slot = c;
    }
    if (e && q->start) /* a new clip under the same id */
        entry_release(e), free_slot = e, e = NULL;
    if (!e && !q->start) {
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_NOT_FOUND);
        return g3n_error_set(err, "no audio stream '%s' on this worker (never started, idle for over %.0f s, or the "
                                  "worker restarted): start it again with start = true",
                             q->stream_id, t->idle_seconds);
    }
    if (!e) {
        if (!free_slot) {
            g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_TOO_LARGE);
            return g3n_error_set(err, "audio encoder holds %d streams (its limit)", t->max_streams);
        }
        e = free_slot;
        snprintf(e->id, sizeof(e->id), "%s", q->stream_id);
        e->table = t;
        if (g3n_audio_stream_create(&e->stream, t->features, t->encoder, NULL, sink, e, err) != G3N_OK) {
            entry_release(e);
            return G3N_ERR;
        }
    }
    e->last_used = now;
    e->call = call;
    e->count = 0;
    e->has_rows = 0;
    int rc = G3N_OK;
    if (view.shape[0] > 0) {
        rc = g3n_audio_stream_push(e->stream, view.data, view.shape[0], err);
        e->samples += view.shape[0];
    }
    if (rc == G3N_OK && q->flush)
        rc = g3n_audio_stream_flush(e->stream, err);
    if (rc == G3N_OK)
        rc = send_rows(e, 1, g3n_now_seconds() - t0, err);
    e->call = NULL;
    if (rc != G3N_OK || q->flush) { /* a failed stream is not continued half-way; a flushed one is done */
        entry_release(e);
        if (rc != G3N_OK)
            g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    }
    return rc;
}
