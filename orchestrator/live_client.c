/* live_client.c - a live session over the front door (live_client.h). */
#include "live_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

struct g3n_live_client {
    g3n_front_door_connection *connection;
    g3n_live_client_options options;
    char session_id[64];
    float *audio;           /* gathered samples, batch_samples of room */
    int64_t audio_count;
    g3n_live_client_state state;
};

g3n_live_client_options g3n_live_client_default_options(void)
{
    g3n_live_client_options o;
    memset(&o, 0, sizeof(o));
    o.batch_samples = 16000;
    o.timeout_ms = 600000;
    return o;
}

const char *g3n_live_client_session_id(const g3n_live_client *client)
{
    return client->session_id;
}

g3n_live_client_state g3n_live_client_get_state(const g3n_live_client *client)
{
    return client->state;
}

/* One request; a LiveReply updates the state. */
static int exchange(g3n_live_client *c, G3n__LiveRequest *q, g3n_chat_event_callback on_event, void *user,
                    g3n_error *err)
{
    G3n__Envelope env, *reply = NULL;
    g3n__envelope__init(&env);
    env.body_case = G3N__ENVELOPE__BODY_LIVE;
    env.live = q;
    if (q->op != G3N__LIVE_OP__LIVE_OPEN)
        q->session_id = c->session_id;
    if (g3n_front_door_exchange(c->connection, &env, c->options.timeout_ms, on_event, user, &reply, err) != G3N_OK)
        return G3N_ERR;
    int rc = G3N_OK;
    if (reply->body_case == G3N__ENVELOPE__BODY_LIVE_REPLY) {
        const G3n__LiveReply *r = reply->live_reply;
        if (q->op == G3N__LIVE_OP__LIVE_OPEN)
            snprintf(c->session_id, sizeof(c->session_id), "%s", r->session_id ? r->session_id : "");
        c->state.positions = r->positions;
        c->state.pending = r->pending;
        c->state.max_positions = r->max_positions;
        c->state.audio_samples = r->audio_samples;
        c->state.frames = r->frames;
        c->state.audio_segments = r->audio_segments;
        c->state.questions = r->questions;
        c->state.rebuilds = r->rebuilds;
        c->state.dropped_items = r->dropped_items;
        snprintf(c->state.decoder, sizeof(c->state.decoder), "%s", r->decoder ? r->decoder : "");
    } else if (reply->body_case != G3N__ENVELOPE__BODY_TOKEN) {
        rc = g3n_error_set(err, "live client: the orchestrator answered with %s", g3n_wire_body_name(reply->body_case));
    }
    g3n_wire_free(reply);
    return rc;
}

static int send_audio(g3n_live_client *c, int end, g3n_error *err)
{
    if (c->audio_count == 0 && !end)
        return G3N_OK;
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_AUDIO;
    g3n_wire_tensor samples;
    int64_t shape[1] = {c->audio_count};
    if (c->audio_count > 0) {
        g3n_wire_tensor_borrow(&samples, G3N_DTYPE_F32, 1, shape, c->audio);
        q.samples = &samples.message;
    }
    q.end_audio = end;
    int rc = exchange(c, &q, NULL, NULL, err);
    c->audio_count = 0;
    return rc;
}

int g3n_live_client_open(g3n_live_client **out, const char *endpoint, const g3n_transport_options *transport,
                         const g3n_live_client_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_live_client *c = calloc(1, sizeof(*c));
    if (!c)
        return g3n_error_set(err, "live client: out of memory");
    c->options = options ? *options : g3n_live_client_default_options();
    if (c->options.batch_samples <= 0)
        c->options.batch_samples = 16000;
    if (c->options.batch_samples > 30 * 16000)
        c->options.batch_samples = 30 * 16000;
    if (c->options.timeout_ms == 0)
        c->options.timeout_ms = 600000;
    c->audio = malloc(sizeof(float) * (size_t)c->options.batch_samples);
    if (!c->audio) {
        free(c);
        return g3n_error_set(err, "live client: out of memory");
    }
    if (g3n_front_door_connect(&c->connection, endpoint, transport, err) != G3N_OK) {
        g3n_live_client_close(c);
        return G3N_ERR;
    }
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    if (c->options.attach) { /* the session must be there, and this key's */
        snprintf(c->session_id, sizeof(c->session_id), "%s", c->options.attach);
        if (g3n_live_client_refresh(c, err) != G3N_OK) {
            c->session_id[0] = '\0';
            g3n_live_client_close(c);
            return G3N_ERR;
        }
        *out = c;
        return G3N_OK;
    }
    q.op = G3N__LIVE_OP__LIVE_OPEN;
    q.system = (char *)(c->options.system ? c->options.system : "");
    q.model = (char *)(c->options.model ? c->options.model : "");
    q.max_positions = c->options.max_positions > 0 ? c->options.max_positions : 0;
    if (exchange(c, &q, NULL, NULL, err) != G3N_OK) {
        g3n_live_client_close(c);
        return G3N_ERR;
    }
    if (!c->session_id[0]) {
        g3n_live_client_close(c);
        return g3n_error_set(err, "live client: the orchestrator at %s opened no session", endpoint);
    }
    *out = c;
    return G3N_OK;
}

void g3n_live_client_close(g3n_live_client *c)
{
    if (!c)
        return;
    if (c->connection && c->session_id[0] && !c->options.keep) {
        G3n__LiveRequest q;
        g3n__live_request__init(&q);
        q.op = G3N__LIVE_OP__LIVE_CLOSE;
        g3n_error ignored;
        int timeout = c->options.timeout_ms;
        c->options.timeout_ms = 10000; /* best effort: the session expires anyway */
        exchange(c, &q, NULL, NULL, &ignored);
        c->options.timeout_ms = timeout;
    }
    g3n_front_door_disconnect(c->connection);
    free(c->audio);
    free(c);
}

int g3n_live_client_frame_rgb(g3n_live_client *c, double seconds, const uint8_t *rgb, int width, int height,
                              int stride, g3n_error *err)
{
    if (width < 1 || height < 1 || stride < width * 3)
        return g3n_error_set(err, "live client: a frame of %d x %d pixels, stride %d", width, height, stride);
    if (send_audio(c, 0, err) != G3N_OK)
        return G3N_ERR;
    uint8_t *packed = NULL;
    const uint8_t *data = rgb;
    if (stride != width * 3) { /* the wire's rgb is packed rows */
        packed = malloc((size_t)width * 3 * (size_t)height);
        if (!packed)
            return g3n_error_set(err, "live client: out of memory");
        for (int y = 0; y < height; y++)
            memcpy(packed + (size_t)y * width * 3, rgb + (size_t)y * stride, (size_t)width * 3);
        data = packed;
    }
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_FRAME;
    q.seconds = seconds;
    g3n_wire_tensor tensor;
    int64_t shape[3] = {height, width, 3};
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_U8, 3, shape, data);
    q.rgb = &tensor.message;
    int rc = exchange(c, &q, NULL, NULL, err);
    free(packed);
    return rc;
}

int g3n_live_client_image(g3n_live_client *c, double seconds, const void *bytes, size_t size, g3n_error *err)
{
    if (send_audio(c, 0, err) != G3N_OK)
        return G3N_ERR;
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_FRAME;
    q.seconds = seconds;
    q.image.data = (uint8_t *)bytes;
    q.image.len = size;
    return exchange(c, &q, NULL, NULL, err);
}

int g3n_live_client_audio(g3n_live_client *c, const float *samples, int64_t count, g3n_error *err)
{
    while (count > 0) {
        int64_t take = c->options.batch_samples - c->audio_count;
        if (take > count)
            take = count;
        memcpy(c->audio + c->audio_count, samples, sizeof(float) * (size_t)take);
        c->audio_count += take;
        samples += take;
        count -= take;
        if (c->audio_count == c->options.batch_samples && send_audio(c, 0, err) != G3N_OK)
            return G3N_ERR;
    }
    return G3N_OK;
}

int g3n_live_client_end_audio(g3n_live_client *c, g3n_error *err)
{
    return send_audio(c, 1, err);
}

int g3n_live_client_ask(g3n_live_client *c, const char *question, const G3n__SamplingParams *sampling,
                        uint32_t max_new_tokens, g3n_chat_event_callback on_event, void *user, g3n_error *err)
{
    if (send_audio(c, 0, err) != G3N_OK)
        return G3N_ERR;
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_ASK;
    q.question = (char *)question;
    q.sampling = (G3n__SamplingParams *)sampling;
    q.max_new_tokens = max_new_tokens;
    return exchange(c, &q, on_event, user, err);
}

int g3n_live_client_refresh(g3n_live_client *c, g3n_error *err)
{
    if (send_audio(c, 0, err) != G3N_OK)
        return G3N_ERR;
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_STATE;
    return exchange(c, &q, NULL, NULL, err);
}
