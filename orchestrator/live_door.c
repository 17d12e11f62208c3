/* live_door.c - live sessions behind the front door (live_door.h). */
#include "live_door.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "http_auth.h"
#include "live_pipeline.h"
#include "ops.h"
#include "pipeline.h"
#include "tokenizer.h"
#include "wire.h"

#define LIVE_ID_SIZE 48
#define LIVE_OWNER_SIZE 160
#define LIVE_IDENTITY_SIZE 256

typedef struct live_item {
    uint8_t identity[LIVE_IDENTITY_SIZE];
    size_t identity_size;
    G3n__Envelope *request; /* owned */
    struct live_item *next;
} live_item;

typedef struct live_session {
    g3n_live_door *door;
    char id[LIVE_ID_SIZE];
    char owner[LIVE_OWNER_SIZE];
    live_item *head, *tail; /* waiting requests (door lock) */
    int queued;
    int closing;            /* no new requests: the thread answers what waits with NOT_FOUND and ends */
    int busy;               /* the thread is running a request */
    double last_used;
    pthread_cond_t wake;
    atomic_int cancel;      /* the running answer's client is gone, or the door stops */
    uint8_t current[LIVE_IDENTITY_SIZE]; /* the client of the running request (door lock) */
    size_t current_size;
    /* the session thread's own */
    g3n_live_pipeline *live;
    g3n_client *client;
    void *push;
    char pending[4096];     /* text released since the last token event */
    size_t pending_size;
    uint64_t request_id;
    const live_item *item;
} live_session;

struct g3n_live_door {
    g3n_broker *broker;
    const g3n_model_config *config;
    const g3n_tokenizer *tokenizer;
    g3n_live_door_options options;
    char reply_endpoint[128];
    pthread_mutex_t lock;
    pthread_cond_t idle;
    live_session **sessions; /* max_sessions slots; NULL where free */
    int active;              /* session threads running */
    int stopping;
    int off;                 /* no live sessions here: every request refused */
};

g3n_live_door_options g3n_live_door_default_options(void)
{
    g3n_live_door_options o;
    memset(&o, 0, sizeof(o));
    o.max_sessions = 8;
    o.idle_seconds = 600;
    o.max_queue = 16;
    o.max_new_tokens = 1024;
    o.max_image_bytes = (int64_t)16 << 20;
    o.max_frame_pixels = (int64_t)16 << 20;
    o.max_audio_samples = 30 * 16000;
    o.max_text_bytes = 64 << 10;
    return o;
}

static void free_buffer(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* [identity][envelope] to the door's thread, which owns the ROUTER. */
static void session_send(live_session *s, G3n__Envelope *env)
{
    uint8_t *data;
    size_t size;
    env->request_id = s->request_id;
    if (!s->push || g3n_wire_pack(env, &data, &size, NULL) != G3N_OK)
        return;
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, data, size, free_buffer, NULL) != 0) {
        free(data);
        return;
    }
    zmq_send(s->push, s->item->identity, s->item->identity_size, ZMQ_SNDMORE);
    if (zmq_msg_send(&msg, s->push, 0) < 0)
        zmq_msg_close(&msg);
}

static void session_error(live_session *s, int code, const char *message)
{
    G3n__Envelope env;
    G3n__Error body;
    g3n_wire_error_init(&env, &body, s->request_id, code, message);
    session_send(s, &env);
}

/* A pipeline error: who is at fault, and the session named. */
static void session_failed(live_session *s, const char *what, const g3n_error *err)
{
    char message[sizeof(err->message) + 128];
    if (strstr(err->message, s->id))
        snprintf(message, sizeof(message), "%s", err->message);
    else
        snprintf(message, sizeof(message), "live session %s: %s: %s", s->id, what, err->message);
    session_error(s, g3n_pipeline_error_code(err->message), message);
}

static void session_reply(live_session *s)
{
    g3n_live_pipeline_stats st = g3n_live_pipeline_get_stats(s->live);
    G3n__Envelope env;
    G3n__LiveReply reply;
    g3n__envelope__init(&env);
    g3n__live_reply__init(&reply);
    reply.session_id = s->id;
    reply.positions = st.positions;
    reply.pending = st.pending;
    reply.max_positions = st.max_positions;
    reply.frames = st.frames;
    reply.audio_segments = st.audio_segments;
    reply.audio_samples = st.audio_samples;
    reply.questions = st.questions;
    reply.rebuilds = st.rebuilds;
    reply.decoder = st.decoder;
    reply.dropped_items = st.dropped_items;
    reply.idle_expires_seconds = s->door->options.idle_seconds;
    env.body_case = G3N__ENVELOPE__BODY_LIVE_REPLY;
    env.live_reply = &reply;
    session_send(s, &env);
}

static int on_text(void *user, const char *text, size_t length)
{
    live_session *s = user;
    if (s->pending_size + length < sizeof(s->pending)) {
        memcpy(s->pending + s->pending_size, text, length);
        s->pending_size += length;
    }
    return 0;
}

static int on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    (void)step;
    (void)logits;
    (void)vocab;
    live_session *s = user;
    G3n__Envelope env;
    G3n__TokenEvent event;
    g3n__envelope__init(&env);
    g3n__token_event__init(&event);
    s->pending[s->pending_size] = '\0';
    event.id = token;
    event.text = s->pending;
    env.body_case = G3N__ENVELOPE__BODY_TOKEN;
    env.token = &event;
    env.partial = 1;
    session_send(s, &env);
    s->pending_size = 0;
    return atomic_load(&s->cancel) ? 1 : 0;
}

static void session_ask(live_session *s, const G3n__LiveRequest *q)
{
    const g3n_live_door *door = s->door;
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(door->config);
    params.max_new_tokens = q->max_new_tokens ? q->max_new_tokens : 256; /* then capped */
    if (params.max_new_tokens > door->options.max_new_tokens)
        params.max_new_tokens = door->options.max_new_tokens;
    if (q->sampling && q->sampling->do_sample && q->sampling->temperature > 0.0f) {
        params.sampling.do_sample = 1;
        params.sampling.temperature = q->sampling->temperature;
        params.sampling.top_k = q->sampling->top_k > 0 ? q->sampling->top_k : 0;
        params.sampling.top_p = q->sampling->top_p > 0.0f && q->sampling->top_p <= 1.0f ? q->sampling->top_p : 1.0f;
        params.sampling.min_p = q->sampling->min_p > 0.0f && q->sampling->min_p < 1.0f ? q->sampling->min_p : 0.0f;
        params.sampling.seed = q->sampling->seed;
    }
    params.on_token = on_token;
    params.user = s;
    s->pending_size = 0;
    g3n_pipeline_stats stats;
    memset(&stats, 0, sizeof(stats));
    g3n_error err = {{0}};
    const double started = g3n_now_seconds();
    if (g3n_live_pipeline_ask(s->live, s->client, q->question, &params, on_text, s, &stats, &err) != G3N_OK) {
        session_failed(s, "ask", &err);
        return;
    }
    g3n_live_pipeline_stats st = g3n_live_pipeline_get_stats(s->live);
    G3n__Envelope env;
    G3n__TokenEvent event;
    G3n__Timings timings;
    g3n__envelope__init(&env);
    g3n__token_event__init(&event);
    g3n__timings__init(&timings);
    s->pending[s->pending_size] = '\0';
    event.id = -1;
    event.text = s->pending; /* what the final flush released */
    event.finish = atomic_load(&s->cancel)  ? G3N__FINISH_REASON__FINISH_CANCELLED
                   : stats.stopped_on_eos ? G3N__FINISH_REASON__FINISH_STOP
                                          : G3N__FINISH_REASON__FINISH_LENGTH;
    timings.encode_seconds = stats.encode_seconds;
    timings.embed_seconds = stats.embed_seconds;
    timings.prefill_seconds = stats.prefill_seconds;
    timings.decode_seconds = stats.decode_seconds;
    timings.prompt_tokens = st.question_positions;
    timings.generated_tokens = stats.generated_tokens;
    timings.reused_tokens = st.positions - st.question_positions - stats.generated_tokens;
    if (timings.reused_tokens < 0)
        timings.reused_tokens = 0;
    timings.rebuilds = (uint32_t)(st.rebuilds > stats.rebuilds ? st.rebuilds : stats.rebuilds);
    timings.first_token_seconds = stats.first_token_seconds > 0 ? stats.first_token_seconds
                                                                : g3n_now_seconds() - started;
    timings.decoder = st.decoder[0] ? st.decoder : stats.decoder;
    event.timings = &timings;
    env.body_case = G3N__ENVELOPE__BODY_TOKEN;
    env.token = &event;
    session_send(s, &env);
}

/* Runs one request on the session thread. Returns 1 when the session ends. */
static int session_run(live_session *s, const G3n__LiveRequest *q)
{
    g3n_error err = {{0}};
    switch (q->op) {
    case G3N__LIVE_OP__LIVE_OPEN: {
        g3n_live_pipeline_params params = g3n_live_pipeline_default_params(s->door->config);
        params.system = q->system && q->system[0] ? q->system : NULL;
        params.model = q->model && q->model[0] ? q->model : NULL;
        params.preprocessor_config = s->door->options.preprocessor_config;
        if (q->max_positions > 0)
            params.max_positions = q->max_positions;
        if (g3n_client_open(&s->client, s->door->broker, &err) != G3N_OK ||
            g3n_live_pipeline_create(&s->live, s->door->config, s->door->tokenizer, &params, &err) != G3N_OK) {
            session_failed(s, "open", &err);
            return 1;
        }
        session_reply(s);
        return 0;
    }
    case G3N__LIVE_OP__LIVE_FRAME: {
        int rc;
        if (q->rgb) {
            const int height = (int)q->rgb->shape[0], width = (int)q->rgb->shape[1];
            rc = g3n_live_pipeline_add_frame_rgb(s->live, s->client, q->seconds, q->rgb->data.data, width, height,
                                                 width * 3, &err);
        } else {
            rc = g3n_live_pipeline_add_image(s->live, s->client, q->seconds, q->image.data, q->image.len, &err);
        }
        if (rc != G3N_OK)
            session_failed(s, "frame", &err);
        else
            session_reply(s);
        return 0;
    }
    case G3N__LIVE_OP__LIVE_AUDIO: {
        int rc = G3N_OK;
        if (q->samples && q->samples->shape[0] > 0)
            rc = g3n_live_pipeline_add_audio(s->live, s->client, (const float *)q->samples->data.data,
                                             q->samples->shape[0], &err);
        if (rc == G3N_OK && q->end_audio)
            rc = g3n_live_pipeline_end_audio(s->live, s->client, &err);
        if (rc != G3N_OK)
            session_failed(s, "audio", &err);
        else
            session_reply(s);
        return 0;
    }
    case G3N__LIVE_OP__LIVE_ASK:
        session_ask(s, q);
        return 0;
    case G3N__LIVE_OP__LIVE_STATE:
        session_reply(s);
        return 0;
    case G3N__LIVE_OP__LIVE_CLOSE:
        pthread_mutex_lock(&s->door->lock); /* not found from now on, before the client hears it is closed */
        s->closing = 1;
        pthread_mutex_unlock(&s->door->lock);
        session_reply(s);
        return 1;
    default:
        session_error(s, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "live: unknown op");
        return 0;
    }
}

static void item_free(live_item *item)
{
    if (item) {
        g3n_wire_free(item->request);
        free(item);
    }
}

static void *session_main(void *arg)
{
    live_session *s = arg;
    g3n_live_door *door = s->door;
    s->push = zmq_socket(g3n_broker_context(door->broker), ZMQ_PUSH);
    if (s->push) {
        int linger = -1;
        zmq_setsockopt(s->push, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_connect(s->push, door->reply_endpoint);
    }
    int ended = 0;
    for (;;) {
        pthread_mutex_lock(&door->lock);
        while (!s->head && !s->closing && !ended)
            pthread_cond_wait(&s->wake, &door->lock);
        live_item *item = s->head;
        if (!item) { /* closing (or ended) and nothing waits */
            pthread_mutex_unlock(&door->lock);
            break;
        }
        s->head = item->next;
        if (!s->head)
            s->tail = NULL;
        s->queued--;
        s->busy = 1;
        if (item->identity_size > 0) /* no identity without CurveZMQ */
            memcpy(s->current, item->identity, item->identity_size);
        s->current_size = item->identity_size;
        const int skip = ended || s->closing;
        if (!door->stopping) /* an answer cancelled for a client gone does not cancel the next request */
            atomic_store(&s->cancel, 0);
        pthread_mutex_unlock(&door->lock);
        s->item = item;
        s->request_id = item->request->request_id;
        if (skip) {
            char message[160];
            snprintf(message, sizeof(message), "live session %s was closed before this request ran", s->id);
            session_error(s, G3N__ERROR_CODE__ERROR_NOT_FOUND, message);
        } else if (session_run(s, item->request->live)) {
            ended = 1;
        }
        s->item = NULL;
        item_free(item);
        pthread_mutex_lock(&door->lock);
        s->busy = 0;
        s->current_size = 0;
        s->last_used = g3n_now_seconds();
        if (ended)
            s->closing = 1;
        pthread_mutex_unlock(&door->lock);
    }
    /* out of the table first: nobody reaches it any more */
    pthread_mutex_lock(&door->lock);
    for (int i = 0; i < door->options.max_sessions; i++)
        if (door->sessions[i] == s)
            door->sessions[i] = NULL;
    pthread_mutex_unlock(&door->lock);
    g3n_live_pipeline_free(s->live, s->client); /* ends its decoder session and audio stream */
    g3n_client_close(s->client);
    if (s->push)
        zmq_close(s->push);
    pthread_cond_destroy(&s->wake);
    free(s);
    pthread_mutex_lock(&door->lock);
    door->active--;
    pthread_cond_broadcast(&door->idle);
    pthread_mutex_unlock(&door->lock);
    return NULL;
}

int g3n_live_door_create(g3n_live_door **out, g3n_broker *broker, const g3n_model_config *config,
                         const g3n_tokenizer *tokenizer, const char *reply_endpoint,
                         const g3n_live_door_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_live_door *door = calloc(1, sizeof(*door));
    g3n_live_door_options d = g3n_live_door_default_options();
    if (!door)
        return g3n_error_set(err, "live sessions: out of memory");
    door->broker = broker;
    door->config = config;
    door->tokenizer = tokenizer;
    door->options = options ? *options : d;
    door->off = door->options.max_sessions < 0;
    if (door->options.max_sessions <= 0)
        door->options.max_sessions = d.max_sessions;
    if (!(door->options.idle_seconds > 0))
        door->options.idle_seconds = d.idle_seconds;
    if (door->options.max_queue <= 0)
        door->options.max_queue = d.max_queue;
    if (door->options.max_new_tokens == 0)
        door->options.max_new_tokens = d.max_new_tokens;
    if (door->options.max_image_bytes <= 0)
        door->options.max_image_bytes = d.max_image_bytes;
    if (door->options.max_frame_pixels <= 0)
        door->options.max_frame_pixels = d.max_frame_pixels;
    if (door->options.max_audio_samples <= 0)
        door->options.max_audio_samples = d.max_audio_samples;
    if (door->options.max_text_bytes == 0)
        door->options.max_text_bytes = d.max_text_bytes;
    snprintf(door->reply_endpoint, sizeof(door->reply_endpoint), "%s", reply_endpoint);
    door->sessions = calloc((size_t)door->options.max_sessions, sizeof(*door->sessions));
    if (!door->sessions) {
        free(door);
        return g3n_error_set(err, "live sessions: out of memory");
    }
    pthread_mutex_init(&door->lock, NULL);
    pthread_cond_init(&door->idle, NULL);
    *out = door;
    return G3N_OK;
}

/* The session with this id that owner may use (lock held), or NULL. */
static live_session *find(g3n_live_door *door, const char *id, const char *owner)
{
    for (int i = 0; i < door->options.max_sessions; i++) {
        live_session *s = door->sessions[i];
        if (s && !s->closing && strcmp(s->id, id) == 0 && strcmp(s->owner, owner) == 0)
            return s;
    }
    return NULL;
}

static int text_ok(const char *text, size_t max, const char *name, char *message, size_t message_size)
{
    size_t n = text ? strlen(text) : 0;
    if (n > max) {
        snprintf(message, message_size, "live: %s is %zu bytes, over the %zu a live request may have", name, n, max);
        return G3N__ERROR_CODE__ERROR_TOO_LARGE;
    }
    if (n && !g3n_utf8_valid(text, n)) {
        snprintf(message, message_size, "live: %s is not valid UTF-8", name);
        return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
    }
    return 0;
}

/* Every field the op uses, before it is queued. */
static int check_request(const g3n_live_door *door, const G3n__LiveRequest *q, char *message, size_t message_size)
{
    const g3n_live_door_options *o = &door->options;
    int code;
    switch (q->op) {
    case G3N__LIVE_OP__LIVE_OPEN:
        if ((code = text_ok(q->system, o->max_text_bytes, "system", message, message_size)) != 0)
            return code;
        if (q->model && strlen(q->model) > 63) {
            snprintf(message, message_size, "live: model names a sub-model of at most 63 characters");
            return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        }
        if (q->model && q->model[0] && (code = text_ok(q->model, 63, "model", message, message_size)) != 0)
            return code;
        if (q->max_positions < 0 || q->max_positions > door->config->text.max_position_embeddings) {
            snprintf(message, message_size, "live: max_positions %lld is out of range (0 for the model's %lld)",
                     (long long)q->max_positions, (long long)door->config->text.max_position_embeddings);
            return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        }
        return 0;
    case G3N__LIVE_OP__LIVE_FRAME: {
        if (!isfinite(q->seconds) || q->seconds < 0 || q->seconds > 1e9) {
            snprintf(message, message_size, "live: frame seconds must be a finite time >= 0");
            return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        }
        if ((q->image.len > 0) == (q->rgb != NULL)) {
            snprintf(message, message_size, "live: a frame is exactly one of image (file bytes) or rgb [H, W, 3] u8");
            return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        }
        if (q->image.len > 0 && (int64_t)q->image.len > o->max_image_bytes) {
            snprintf(message, message_size, "live: the frame's image is %zu bytes, over the %lld a frame may have",
                     q->image.len, (long long)o->max_image_bytes);
            return G3N__ERROR_CODE__ERROR_TOO_LARGE;
        }
        if (q->rgb) {
            const int64_t any[3] = {-1, -1, 3};
            g3n_tensor view;
            g3n_error err;
            if (g3n_wire_tensor_view(q->rgb, "live.rgb", G3N_DTYPE_U8, 3, any, o->max_frame_pixels * 3, &view, &err) !=
                G3N_OK) {
                snprintf(message, message_size, "live: %s", err.message);
                return strstr(err.message, "elements") ? G3N__ERROR_CODE__ERROR_TOO_LARGE
                                                        : G3N__ERROR_CODE__ERROR_BAD_REQUEST;
            }
            if (q->rgb->shape[0] < 1 || q->rgb->shape[1] < 1 || q->rgb->shape[0] > 65535 ||
                q->rgb->shape[1] > 65535) {
                snprintf(message, message_size, "live: an rgb frame of %lld x %lld pixels (each side 1 to 65535)",
                         (long long)q->rgb->shape[1], (long long)q->rgb->shape[0]);
                return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
            }
        }
        return 0;
    }
    case G3N__LIVE_OP__LIVE_AUDIO:
        if (q->samples) {
            const int64_t any[1] = {-1};
            g3n_tensor view;
            g3n_error err;
            if (g3n_wire_tensor_view(q->samples, "live.samples", G3N_DTYPE_F32, 1, any, o->max_audio_samples, &view, &err) !=
                G3N_OK) {
                snprintf(message, message_size, "live: %s (at most %lld samples, %.0f s at 16 kHz, a piece)",
                         err.message, (long long)o->max_audio_samples, o->max_audio_samples / 16000.0);
                return strstr(err.message, "elements") ? G3N__ERROR_CODE__ERROR_TOO_LARGE
                                                        : G3N__ERROR_CODE__ERROR_BAD_REQUEST;
            }
            const float *x = (const float *)q->samples->data.data;
            for (int64_t i = 0; i < q->samples->shape[0]; i++)
                if (!isfinite(x[i])) {
                    snprintf(message, message_size, "live: audio sample %lld is not a finite number", (long long)i);
                    return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
                }
        }
        return 0;
    case G3N__LIVE_OP__LIVE_ASK:
        if (!q->question || !q->question[0]) {
            snprintf(message, message_size, "live: ask needs a question");
            return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        }
        return text_ok(q->question, o->max_text_bytes, "question", message, message_size);
    case G3N__LIVE_OP__LIVE_CLOSE:
    case G3N__LIVE_OP__LIVE_STATE:
        return 0;
    default:
        snprintf(message, message_size, "live: unknown op %d (open, frame, audio, ask, close, state)", (int)q->op);
        return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
    }
}

/* Closes the idle sessions (lock held). */
static void expire_locked(g3n_live_door *door)
{
    const double now = g3n_now_seconds();
    for (int i = 0; i < door->options.max_sessions; i++) {
        live_session *s = door->sessions[i];
        if (s && !s->closing && !s->busy && !s->head && now - s->last_used > door->options.idle_seconds) {
            s->closing = 1;
            pthread_cond_signal(&s->wake);
        }
    }
}

static live_item *item_new(const void *identity, size_t identity_size, G3n__Envelope *request)
{
    live_item *item = calloc(1, sizeof(*item));
    if (!item)
        return NULL;
    if (identity_size > 0)
        memcpy(item->identity, identity, identity_size);
    item->identity_size = identity_size;
    item->request = request;
    return item;
}

int g3n_live_door_submit(g3n_live_door *door, const void *identity, size_t identity_size, const char *owner,
                         G3n__Envelope *request, char *message, size_t message_size)
{
    const G3n__LiveRequest *q = request->live;
    int code = 0;
    if (!owner)
        owner = "";
    if (!q || identity_size > LIVE_IDENTITY_SIZE || strlen(owner) >= LIVE_OWNER_SIZE) {
        snprintf(message, message_size, "live: a request without its body");
        g3n_wire_free(request);
        return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
    }
    if (door->off) {
        snprintf(message, message_size, "live: this orchestrator serves no live sessions (--live-sessions 0)");
        g3n_wire_free(request);
        return G3N__ERROR_CODE__ERROR_UNSUPPORTED;
    }
    if ((code = check_request(door, q, message, message_size)) != 0) {
        g3n_wire_free(request);
        return code;
    }
    pthread_mutex_lock(&door->lock);
    if (door->stopping) {
        pthread_mutex_unlock(&door->lock);
        snprintf(message, message_size, "live: the orchestrator is stopping");
        g3n_wire_free(request);
        return G3N__ERROR_CODE__ERROR_CANCELLED;
    }
    if (q->op == G3N__LIVE_OP__LIVE_OPEN) {
        expire_locked(door);
        int slot = -1;
        for (int i = 0; i < door->options.max_sessions && slot < 0; i++)
            if (!door->sessions[i])
                slot = i;
        if (slot < 0) {
            pthread_mutex_unlock(&door->lock);
            snprintf(message, message_size,
                     "live: the orchestrator holds its limit of %d live sessions; close one, or wait until an idle "
                     "one expires (%.0f s)",
                     door->options.max_sessions, door->options.idle_seconds);
            g3n_wire_free(request);
            return G3N__ERROR_CODE__ERROR_TOO_LARGE;
        }
        live_session *s = calloc(1, sizeof(*s));
        live_item *item = s ? item_new(identity, identity_size, request) : NULL;
        if (!item || g3n_http_random_id(s->id, sizeof(s->id), "live-") != G3N_OK) {
            pthread_mutex_unlock(&door->lock);
            free(s);
            free(item);
            snprintf(message, message_size, "live: cannot make a session (out of memory, or no random bytes)");
            g3n_wire_free(request);
            return G3N__ERROR_CODE__ERROR_INTERNAL;
        }
        s->door = door;
        snprintf(s->owner, sizeof(s->owner), "%s", owner);
        s->head = s->tail = item;
        s->queued = 1;
        s->last_used = g3n_now_seconds();
        atomic_init(&s->cancel, 0);
        pthread_cond_init(&s->wake, NULL);
        pthread_t thread;
        if (pthread_create(&thread, NULL, session_main, s) != 0) {
            pthread_mutex_unlock(&door->lock);
            pthread_cond_destroy(&s->wake);
            free(s);
            item_free(item);
            snprintf(message, message_size, "live: cannot start a session thread");
            return G3N__ERROR_CODE__ERROR_INTERNAL;
        }
        pthread_detach(thread);
        door->sessions[slot] = s;
        door->active++;
        pthread_mutex_unlock(&door->lock);
        return 0;
    }
    live_session *s = q->session_id ? find(door, q->session_id, owner) : NULL;
    if (!s) {
        pthread_mutex_unlock(&door->lock);
        snprintf(message, message_size,
                 "live: no live session '%.64s' (it was closed, expired after %.0f s idle, or never existed)",
                 q->session_id ? q->session_id : "", door->options.idle_seconds);
        g3n_wire_free(request);
        return G3N__ERROR_CODE__ERROR_NOT_FOUND;
    }
    if (s->queued >= door->options.max_queue) {
        pthread_mutex_unlock(&door->lock);
        snprintf(message, message_size, "live session %s has %d requests waiting; wait for their answers", s->id,
                 s->queued);
        g3n_wire_free(request);
        return G3N__ERROR_CODE__ERROR_TOO_LARGE;
    }
    live_item *item = item_new(identity, identity_size, request);
    if (!item) {
        pthread_mutex_unlock(&door->lock);
        snprintf(message, message_size, "live: out of memory");
        g3n_wire_free(request);
        return G3N__ERROR_CODE__ERROR_INTERNAL;
    }
    if (s->tail)
        s->tail->next = item;
    else
        s->head = item;
    s->tail = item;
    s->queued++;
    s->last_used = g3n_now_seconds();
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&door->lock);
    return 0;
}

void g3n_live_door_expire(g3n_live_door *door)
{
    if (!door)
        return;
    pthread_mutex_lock(&door->lock);
    expire_locked(door);
    pthread_mutex_unlock(&door->lock);
}

void g3n_live_door_cancel_client(g3n_live_door *door, const void *identity, size_t identity_size)
{
    if (!door)
        return;
    pthread_mutex_lock(&door->lock);
    for (int i = 0; i < door->options.max_sessions; i++) {
        live_session *s = door->sessions[i];
        if (s && s->busy && s->current_size == identity_size &&
            (identity_size == 0 || memcmp(s->current, identity, identity_size) == 0))
            atomic_store(&s->cancel, 1);
    }
    pthread_mutex_unlock(&door->lock);
}

void g3n_live_door_close_all(g3n_live_door *door)
{
    if (!door)
        return;
    pthread_mutex_lock(&door->lock);
    door->stopping = 1;
    for (int i = 0; i < door->options.max_sessions; i++) {
        live_session *s = door->sessions[i];
        if (s) {
            s->closing = 1;
            atomic_store(&s->cancel, 1);
            pthread_cond_signal(&s->wake);
        }
    }
    pthread_mutex_unlock(&door->lock);
}

int g3n_live_door_active(g3n_live_door *door)
{
    if (!door)
        return 0;
    pthread_mutex_lock(&door->lock);
    int n = door->active;
    pthread_mutex_unlock(&door->lock);
    return n;
}

void g3n_live_door_free(g3n_live_door *door)
{
    if (!door)
        return;
    g3n_live_door_close_all(door);
    pthread_mutex_lock(&door->lock);
    while (door->active > 0)
        pthread_cond_wait(&door->idle, &door->lock);
    pthread_mutex_unlock(&door->lock);
    pthread_mutex_destroy(&door->lock);
    pthread_cond_destroy(&door->idle);
    free(door->sessions);
    free(door);
}
