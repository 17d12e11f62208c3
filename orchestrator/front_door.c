/* front_door.c - chats in, token events out (front_door.h). */
#include "front_door.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ops.h"
#include "conversation.h"
#include "live_door.h"
#include "pipeline.h"

struct g3n_front_door {
    g3n_broker *broker;
    const g3n_model_config *config;
    const g3n_tokenizer *tokenizer;
    g3n_front_door_options options;
    void *context; /* the broker's */
    void *router;
    void *pull;
    char pull_endpoint[96];
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    atomic_int active;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    struct chat_job *jobs; /* running chats (lock), so a client gone can cancel its own */
    g3n_live_door *live;   /* live sessions (live_door.h) */
    double last_expiry;
};

typedef struct chat_job {
    g3n_front_door *door;
    uint8_t identity[256];
    size_t identity_len;
    G3n__Envelope *request;
    void *push;
    char pending[4096];
    size_t pending_len;
    atomic_int cancelled; /* its client is gone: stop generating (the decoder is freed at once) */
    struct chat_job *next;
} chat_job;

static void free_buffer(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* [identity][envelope] to the door's thread, which owns the ROUTER. */
static void job_send(chat_job *job, G3n__Envelope *env)
{
    uint8_t *data;
    size_t size;
    env->request_id = job->request->request_id;
    if (g3n_wire_pack(env, &data, &size, NULL) != G3N_OK)
        return;
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, data, size, free_buffer, NULL) != 0) {
        free(data);
        return;
    }
    zmq_send(job->push, job->identity, job->identity_len, ZMQ_SNDMORE);
    if (zmq_msg_send(&msg, job->push, 0) < 0)
        zmq_msg_close(&msg);
}

static void job_error(chat_job *job, int code, const char *message)
{
    G3n__Envelope env;
    G3n__Error body;
    g3n_wire_error_init(&env, &body, job->request->request_id, code, message);
    job_send(job, &env);
}

static int on_text(void *user, const char *text, size_t length)
{
    chat_job *job = user;
    if (job->pending_len + length < sizeof(job->pending)) {
        memcpy(job->pending + job->pending_len, text, length);
        job->pending_len += length;
    }
    return 0;
}

static int on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    (void)step;
    (void)logits;
    (void)vocab;
    chat_job *job = user;
    G3n__Envelope env;
    G3n__TokenEvent event;
    g3n__envelope__init(&env);
    g3n__token_event__init(&event);
    job->pending[job->pending_len] = '\0';
    event.id = token;
    event.text = job->pending;
    env.body_case = G3N__ENVELOPE__BODY_TOKEN;
    env.token = &event;
    env.partial = 1;
    job_send(job, &env);
    job->pending_len = 0;
    return atomic_load(&job->door->stop) || atomic_load(&job->cancelled) ? 1 : 0;
}

static void *chat_main(void *arg)
{
    chat_job *job = arg;
    g3n_front_door *door = job->door;
    job->push = zmq_socket(door->context, ZMQ_PUSH);
    int linger = -1;
    zmq_setsockopt(job->push, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_connect(job->push, door->pull_endpoint);
    const G3n__ChatRequest *q = job->request->chat;
    g3n_client *client = NULL;
    g3n_error err = {{0}};
    g3n_pipeline_windows media; /* images and 30 s audio windows */
    g3n_chat_prompt prompt;
    int ok = 1;
    if (g3n_conversation_render(q, door->config, door->tokenizer, 64, &prompt, &media, &err) != G3N_OK) {
        job_error(job, strstr(err.message, "at most") ? G3N__ERROR_CODE__ERROR_TOO_LARGE
                                                      : G3N__ERROR_CODE__ERROR_BAD_REQUEST,
                  err.message);
        ok = 0;
    }
    if (ok && g3n_client_open(&client, door->broker, &err) != G3N_OK) {
        job_error(job, G3N__ERROR_CODE__ERROR_INTERNAL, err.message);
        ok = 0;
    }
    if (ok) {
        g3n_pipeline_generate_params params = g3n_pipeline_default_params(door->config);
        params.max_new_tokens = q->max_new_tokens ? q->max_new_tokens : 256;
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
        params.user = job;
        g3n_conversation_options co = {q->no_prefix_cache ? NULL : door->options.prefix_cache, NULL, NULL,
                                       door->config};
        g3n_pipeline_stats stats;
        if (g3n_pipeline_conversation(client, &co, door->tokenizer, prompt.ids.ids, prompt.ids.count, media.files,
                                      media.count, &params, on_text, job, &stats, &err) != G3N_OK) {
            job_error(job, g3n_pipeline_error_code(err.message), err.message); /* the client's media: BAD_REQUEST */
        } else {
            G3n__Envelope env;
            G3n__TokenEvent event;
            G3n__Timings timings;
            g3n__envelope__init(&env);
            g3n__token_event__init(&event);
            g3n__timings__init(&timings);
            job->pending[job->pending_len] = '\0';
            event.id = -1;
            event.text = job->pending; /* what the final flush released */
            event.finish = atomic_load(&door->stop) ? G3N__FINISH_REASON__FINISH_CANCELLED
                           : stats.stopped_on_eos  ? G3N__FINISH_REASON__FINISH_STOP
                                                   : G3N__FINISH_REASON__FINISH_LENGTH;
            timings.encode_seconds = stats.encode_seconds;
            timings.embed_seconds = stats.embed_seconds;
            timings.prefill_seconds = stats.prefill_seconds;
            timings.decode_seconds = stats.decode_seconds;
            timings.prompt_tokens = stats.prompt_tokens;
            timings.generated_tokens = stats.generated_tokens;
            timings.reused_tokens = stats.reused_tokens;
            timings.rebuilds = (uint32_t)stats.rebuilds;
            timings.first_token_seconds = stats.first_token_seconds;
            timings.decoder = stats.decoder;
            event.timings = &timings;
            env.body_case = G3N__ENVELOPE__BODY_TOKEN;
            env.token = &event;
            job_send(job, &env);
        }
    }
    g3n_client_close(client);
    g3n_chat_prompt_free(&prompt);
    g3n_pipeline_windows_free(&media);
    zmq_close(job->push);
    g3n_wire_free(job->request);
    pthread_mutex_lock(&door->lock);
    for (chat_job **at = &door->jobs; *at; at = &(*at)->next)
        if (*at == job) {
            *at = job->next;
            break;
        }
    free(job);
    atomic_fetch_sub(&door->active, 1);
    pthread_cond_broadcast(&door->idle);
    pthread_mutex_unlock(&door->lock);
    return NULL;
}

static void reply_error(g3n_front_door *door, const zmq_msg_t *identity, uint64_t request_id, int code,
                        const char *message)
{
    G3n__Envelope env;
    G3n__Error body;
    g3n_wire_error_init(&env, &body, request_id, code, message);
    uint8_t *data;
    size_t size;
    if (g3n_wire_pack(&env, &data, &size, NULL) != G3N_OK)
        return;
    zmq_send(door->router, zmq_msg_data((zmq_msg_t *)identity), zmq_msg_size(identity), ZMQ_SNDMORE);
    zmq_send(door->router, data, size, 0);
    free(data);
}

static void door_on_request(g3n_front_door *door)
{
    zmq_msg_t identity, payload;
    zmq_msg_init(&identity);
    zmq_msg_init(&payload);
    if (zmq_msg_recv(&identity, door->router, 0) < 0 || zmq_msg_recv(&payload, door->router, 0) < 0)
        goto done;
    int more = 0;
    size_t more_size = sizeof(more);
    while (zmq_getsockopt(door->router, ZMQ_RCVMORE, &more, &more_size) == 0 && more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, door->router, 0);
        zmq_msg_close(&extra);
    }
    char user_id[160] = ""; /* the client's key (CurveZMQ): its live sessions are its own */
    if (g3n_broker_zap(door->broker) &&
        !g3n_zap_check_message(g3n_broker_zap(door->broker), &payload, G3N_CURVE_CLIENT_ROLE, user_id, sizeof(user_id))) {
        fprintf(stderr, "g3n-orchestrator: a client message from %s was refused: its key is no longer listed\n",
                user_id);
        goto done; /* an unlisted key gets no answer */
    }
    G3n__Envelope *env = NULL;
    int code;
    g3n_error err;
    if (g3n_wire_unpack(zmq_msg_data(&payload), zmq_msg_size(&payload), door->options.max_message_bytes, &env, &code,
                        &err) != G3N_OK) {
        fprintf(stderr, "g3n-orchestrator: a client message was rejected: %s\n", err.message);
        reply_error(door, &identity, env ? env->request_id : 0, code, err.message);
        g3n_wire_free(env);
        goto done;
    }
    if (env->body_case == G3N__ENVELOPE__BODY_LIVE && zmq_msg_size(&identity) <= 255) {
        char message[512];
        const uint64_t request_id = env->request_id;
        int live_code = g3n_live_door_submit(door->live, zmq_msg_data(&identity), zmq_msg_size(&identity), user_id,
                                             env, message, sizeof(message)); /* takes env */
        if (live_code != 0)
            reply_error(door, &identity, request_id, live_code, message);
        goto done;
    }
    if (env->body_case != G3N__ENVELOPE__BODY_CHAT) {
        reply_error(door, &identity, env->request_id, G3N__ERROR_CODE__ERROR_UNSUPPORTED,
                    "the orchestrator's front door serves chat and live requests");
        g3n_wire_free(env);
        goto done;
    }
    if (atomic_load(&door->active) >= door->options.max_chats || zmq_msg_size(&identity) > 255) {
        reply_error(door, &identity, env->request_id, G3N__ERROR_CODE__ERROR_TOO_LARGE,
                    "the orchestrator is serving its limit of chats; try again");
        g3n_wire_free(env);
        goto done;
    }
    chat_job *job = calloc(1, sizeof(*job));
    if (!job) {
        g3n_wire_free(env);
        goto done;
    }
    job->door = door;
    memcpy(job->identity, zmq_msg_data(&identity), zmq_msg_size(&identity));
    job->identity_len = zmq_msg_size(&identity);
    job->request = env;
    atomic_init(&job->cancelled, 0);
    atomic_fetch_add(&door->active, 1);
    pthread_mutex_lock(&door->lock);
    job->next = door->jobs;
    door->jobs = job;
    pthread_mutex_unlock(&door->lock);
    pthread_t thread;
    if (pthread_create(&thread, NULL, chat_main, job) != 0) {
        pthread_mutex_lock(&door->lock);
        door->jobs = job->next;
        pthread_mutex_unlock(&door->lock);
        atomic_fetch_sub(&door->active, 1);
        reply_error(door, &identity, env->request_id, G3N__ERROR_CODE__ERROR_INTERNAL, "cannot start a chat thread");
        g3n_wire_free(env);
        free(job);
        goto done;
    }
    pthread_detach(thread);
done:
    zmq_msg_close(&identity);
    zmq_msg_close(&payload);
}

static void door_cancel_client(g3n_front_door *door, const void *identity, size_t size)
{
    pthread_mutex_lock(&door->lock);
    for (chat_job *job = door->jobs; job; job = job->next)
        if (job->identity_len == size && memcmp(job->identity, identity, size) == 0)
            atomic_store(&job->cancelled, 1);
    pthread_mutex_unlock(&door->lock);
}

static void *door_main(void *arg)
{
    g3n_front_door *door = arg;
    for (;;) {
        zmq_pollitem_t items[2] = {{door->router, 0, ZMQ_POLLIN, 0}, {door->pull, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, 2, 50);
        if (n > 0 && (items[1].revents & ZMQ_POLLIN)) {
            for (int k = 0; k < 256; k++) { /* forward [identity][envelope] */
                zmq_msg_t identity, payload;
                zmq_msg_init(&identity);
                zmq_msg_init(&payload);
                if (zmq_msg_recv(&identity, door->pull, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&identity);
                    zmq_msg_close(&payload);
                    break;
                }
                zmq_msg_recv(&payload, door->pull, 0);
                if (zmq_msg_send(&identity, door->router, ZMQ_SNDMORE) < 0 && zmq_errno() == EHOSTUNREACH) {
                    /* ZMQ_ROUTER_MANDATORY: its client disconnected: cancel that chat, which
                     * would otherwise keep a decoder busy for all its tokens */
                    door_cancel_client(door, zmq_msg_data(&identity), zmq_msg_size(&identity));
                    g3n_live_door_cancel_client(door->live, zmq_msg_data(&identity), zmq_msg_size(&identity));
                } else {
                    zmq_msg_send(&payload, door->router, 0);
                }
                zmq_msg_close(&identity);
                zmq_msg_close(&payload);
            }
        }
        if (n > 0 && (items[0].revents & ZMQ_POLLIN) && !atomic_load(&door->stop))
            door_on_request(door);
        const double now = g3n_now_seconds();
        if (now - door->last_expiry > 1.0) { /* idle live sessions close */
            door->last_expiry = now;
            g3n_live_door_expire(door->live);
        }
        if (atomic_load(&door->stop)) {
            g3n_live_door_close_all(door->live); /* their answers cancelled; their last replies still go out */
            if (atomic_load(&door->active) == 0 && g3n_live_door_active(door->live) == 0)
                break;
        }
    }
    return NULL;
}

int g3n_front_door_start(g3n_front_door **out, g3n_broker *broker, const g3n_model_config *config,
                         const g3n_tokenizer *tokenizer, const g3n_front_door_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_front_door *door = calloc(1, sizeof(*door));
    if (!door)
        return g3n_error_set(err, "front door: out of memory");
    door->broker = broker;
    door->config = config;
    door->tokenizer = tokenizer;
    door->options = *options;
    if (door->options.max_chats <= 0)
        door->options.max_chats = 16;
    if (door->options.max_new_tokens == 0)
        door->options.max_new_tokens = 1024;
    if (door->options.max_message_bytes <= 0)
        door->options.max_message_bytes = G3N_WIRE_DEFAULT_MAX_MESSAGE_BYTES;
    pthread_mutex_init(&door->lock, NULL);
    pthread_cond_init(&door->idle, NULL);
    door->context = g3n_broker_context(broker);
    door->router = zmq_socket(door->context, ZMQ_ROUTER);
    door->pull = zmq_socket(door->context, ZMQ_PULL);
    snprintf(door->pull_endpoint, sizeof(door->pull_endpoint), "inproc://g3n-front-door-%p", (void *)door);
    int linger = 0;
    int64_t max_bytes = door->options.max_message_bytes;
    if (door->router) {
        int mandatory = 1; /* a send to a client that is gone fails (EHOSTUNREACH): its chat is cancelled */
        zmq_setsockopt(door->router, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof(mandatory));
        zmq_setsockopt(door->router, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_setsockopt(door->router, ZMQ_MAXMSGSIZE, &max_bytes, sizeof(max_bytes));
    }
    if (door->pull)
        zmq_setsockopt(door->pull, ZMQ_LINGER, &linger, sizeof(linger));
    if (door->router &&
        g3n_broker_secure_socket(broker, door->router, options->endpoint, G3N_CURVE_DOMAIN_CLIENTS, err) != G3N_OK) {
        g3n_front_door_stop(door);
        return G3N_ERR;
    }
    if (!door->router || !door->pull || zmq_bind(door->router, options->endpoint) != 0 ||
        zmq_bind(door->pull, door->pull_endpoint) != 0) {
        int e = zmq_errno();
        g3n_front_door_stop(door);
        return g3n_error_set(err, "front door: cannot bind %s: %s", options->endpoint, zmq_strerror(e));
    }
    g3n_live_door_options lo = g3n_live_door_default_options();
    if (door->options.max_live_sessions != 0)
        lo.max_sessions = door->options.max_live_sessions;
    if (door->options.live_idle_seconds > 0)
        lo.idle_seconds = door->options.live_idle_seconds;
    if (door->options.live_max_media_bytes > 0)
        lo.max_image_bytes = door->options.live_max_media_bytes;
    lo.max_new_tokens = door->options.live_max_tokens ? door->options.live_max_tokens : door->options.max_new_tokens;
    lo.preprocessor_config = door->options.preprocessor_config;
    if (g3n_live_door_create(&door->live, broker, config, tokenizer, door->pull_endpoint, &lo, err) != G3N_OK) {
        g3n_front_door_stop(door);
        return G3N_ERR;
    }
    if (pthread_create(&door->thread, NULL, door_main, door) != 0) {
        g3n_front_door_stop(door);
        return g3n_error_set(err, "front door: cannot start its thread");
    }
    door->thread_started = 1;
    *out = door;
    return G3N_OK;
}

void g3n_front_door_stop(g3n_front_door *door)
{
    if (!door)
        return;
    atomic_store(&door->stop, 1);
    if (door->thread_started)
        pthread_join(door->thread, NULL);
    g3n_live_door_free(door->live);
    if (door->router)
        zmq_close(door->router);
    if (door->pull)
        zmq_close(door->pull);
    pthread_mutex_destroy(&door->lock);
    pthread_cond_destroy(&door->idle);
    free(door);
}

/* The client's view of its connection (a socket monitor): whether it got
 * connected, and whether that connection went away. */
typedef struct chat_connection {
    int connected, lost, retries, refused; /* refused: a CurveZMQ handshake failed */
} chat_connection;

static void read_monitor(void *monitor, chat_connection *c)
{
    for (;;) {
        zmq_msg_t event, address;
        zmq_msg_init(&event);
        if (zmq_msg_recv(&event, monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&event);
            return;
        }
        uint16_t id = 0;
        if (zmq_msg_size(&event) >= 2)
            memcpy(&id, zmq_msg_data(&event), 2);
        zmq_msg_close(&event);
        zmq_msg_init(&address);
        zmq_msg_recv(&address, monitor, 0); /* the endpoint frame */
        zmq_msg_close(&address);
        if (id == ZMQ_EVENT_CONNECTED || id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            c->connected = 1;
        else if (id == ZMQ_EVENT_DISCONNECTED && c->connected)
            c->lost = 1;
        else if (id == ZMQ_EVENT_CONNECT_RETRIED)
            c->retries++;
        else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                 id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            c->refused = 1;
    }
}

struct g3n_front_door_connection {
    char endpoint[256];
    void *context, *socket, *monitor;
    chat_connection state;
    uint64_t next_request_id;
    int64_t max_message_bytes;
};

void g3n_front_door_disconnect(g3n_front_door_connection *c)
{
    if (!c)
        return;
    if (c->socket) {
        zmq_socket_monitor(c->socket, NULL, 0);
        zmq_close(c->socket);
    }
    if (c->monitor)
        zmq_close(c->monitor);
    if (c->context)
        zmq_ctx_term(c->context);
    free(c);
}

int g3n_front_door_connect(g3n_front_door_connection **out, const char *endpoint,
                           const g3n_transport_options *transport, g3n_error *err)
{
    *out = NULL;
    g3n_front_door_connection *c = calloc(1, sizeof(*c));
    if (!c)
        return g3n_error_set(err, "chat client: out of memory");
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    c->next_request_id = 1;
    c->max_message_bytes = G3N_WIRE_DEFAULT_MAX_MESSAGE_BYTES;
    c->context = zmq_ctx_new();
    c->socket = c->context ? zmq_socket(c->context, ZMQ_DEALER) : NULL;
    if (!c->socket) {
        g3n_front_door_disconnect(c);
        return g3n_error_set(err, "chat client: cannot create a socket");
    }
    int linger = 0, heartbeat_ms = 1000, heartbeat_timeout_ms = 5000;
    zmq_setsockopt(c->socket, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(c->socket, ZMQ_HEARTBEAT_IVL, &heartbeat_ms, sizeof(heartbeat_ms));
    zmq_setsockopt(c->socket, ZMQ_HEARTBEAT_TIMEOUT, &heartbeat_timeout_ms, sizeof(heartbeat_timeout_ms));
    if (g3n_curve_prepare_socket(c->socket, endpoint, &transport->curve, transport->insecure, 0, NULL, err) != G3N_OK) {
        g3n_front_door_disconnect(c);
        return G3N_ERR;
    }
    /* the connection's life (connected, lost, retried) and a refused key (a failed handshake) */
    char monitor_endpoint[64];
    snprintf(monitor_endpoint, sizeof(monitor_endpoint), "inproc://g3n-chat-monitor-%p", c->socket);
    if (zmq_socket_monitor(c->socket, monitor_endpoint,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0 ||
        !(c->monitor = zmq_socket(c->context, ZMQ_PAIR)) || zmq_connect(c->monitor, monitor_endpoint) != 0) {
        g3n_error_set(err, "chat client: cannot monitor the connection: %s", zmq_strerror(zmq_errno()));
        g3n_front_door_disconnect(c);
        return G3N_ERR;
    }
    if (zmq_connect(c->socket, endpoint) != 0) {
        g3n_error_set(err, "chat client: cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        g3n_front_door_disconnect(c);
        return G3N_ERR;
    }
    *out = c;
    return G3N_OK;
}

int g3n_front_door_exchange(g3n_front_door_connection *c, G3n__Envelope *request, int timeout_ms,
                            g3n_chat_event_callback on_event, void *user, G3n__Envelope **final_reply,
                            g3n_error *err)
{
    /* Bounded waits, each with its own error naming the endpoint: connected
     * within connect_ms; then any message (or the connection's heartbeats, ZMTP
     * PING/PONG every second, dead after 5 s of silence) at least every
     * timeout_ms; a lost connection (the orchestrator killed, restarted, or
     * dropping a message over its --max-message-mb) fails at once, never waits. */
    if (final_reply)
        *final_reply = NULL;
    const char *endpoint = c->endpoint;
    const int connect_ms = timeout_ms > 0 && timeout_ms < G3N_FRONT_DOOR_CONNECT_MS ? timeout_ms
                                                                                    : G3N_FRONT_DOOR_CONNECT_MS;
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = G3N_ERR;
    const uint64_t request_id = c->next_request_id++;
    request->request_id = request_id;
    if (g3n_wire_pack(request, &data, &size, err) != G3N_OK)
        goto done;
    if ((int64_t)size > c->max_message_bytes) { /* ZeroMQ would drop it, and nobody would hear */
        g3n_error_set(err, "chat client: the request is %.1f MiB, over the %lld MiB a message may have", size / 1048576.0,
                      (long long)(c->max_message_bytes >> 20));
        goto done;
    }
    chat_connection *connection = &c->state;
    read_monitor(c->monitor, connection);
    connection->lost = 0; /* a connection lost before this request and made again carries it */
    if (zmq_send(c->socket, data, size, 0) < 0) {
        g3n_error_set(err, "chat client: send failed: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    double started = g3n_now_seconds(), last = started;
    for (;;) {
        const double now = g3n_now_seconds();
        const double deadline = connection->connected ? last + timeout_ms / 1000.0 : started + connect_ms / 1000.0;
        if (timeout_ms >= 0 && now >= deadline) {
            if (!connection->connected)
                g3n_error_set(err,
                              "chat client: cannot reach the orchestrator at %s: no connection within %.1f s "
                              "(%d attempts refused; is g3n-orchestrator listening there?)",
                              endpoint, connect_ms / 1000.0, connection->retries + 1);
            else
                g3n_error_set(err, "chat client: no answer from the orchestrator at %s for %d ms", endpoint,
                              timeout_ms);
            goto done;
        }
        zmq_pollitem_t items[2] = {{c->socket, 0, ZMQ_POLLIN, 0}, {c->monitor, 0, ZMQ_POLLIN, 0}};
        long wait = timeout_ms < 0 ? 1000 : (long)((deadline - now) * 1000.0) + 1;
        int n = zmq_poll(items, 2, wait);
        if (n < 0) {
            g3n_error_set(err, "chat client: poll failed: %s", zmq_strerror(zmq_errno()));
            goto done;
        }
        if (items[1].revents & ZMQ_POLLIN)
            read_monitor(c->monitor, connection);
        if (connection->refused && !(items[0].revents & ZMQ_POLLIN)) {
            g3n_error_set(err,
                          "chat client: %s refused the connection's security handshake (CurveZMQ: this client's key "
                          "is not listed in the orchestrator's keys/clients/, the server key is not the "
                          "orchestrator's, or one side runs without keys)",
                          endpoint);
            goto done;
        }
        if (!(items[0].revents & ZMQ_POLLIN)) {
            if (connection->lost) {
                g3n_error_set(err,
                              "chat client: the connection to the orchestrator at %s was lost before the answer "
                              "ended (it stopped or restarted, or dropped this request of %zu bytes as over its "
                              "--max-message-mb)",
                              endpoint, size);
                goto done;
            }
            continue;
        }
        last = g3n_now_seconds();
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, c->socket, 0) < 0) {
            zmq_msg_close(&msg);
            g3n_error_set(err, "chat client: receive failed");
            goto done;
        }
        G3n__Envelope *reply = NULL;
        int code;
        int unpacked = g3n_wire_unpack(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, &reply, &code, err);
        zmq_msg_close(&msg);
        if (unpacked != G3N_OK) {
            g3n_wire_free(reply);
            goto done;
        }
        if (reply->request_id != request_id && reply->request_id != 0) { /* a late answer to an earlier request */
            g3n_wire_free(reply);
            continue;
        }
        if (reply->body_case == G3N__ENVELOPE__BODY_ERROR) {
            g3n_error_set(err, "%s: %s", g3n_wire_error_code_name(reply->error->code),
                          reply->error->message ? reply->error->message : "");
            g3n_wire_free(reply);
            goto done;
        }
        int final = !reply->partial;
        const int cancelled = final && reply->body_case == G3N__ENVELOPE__BODY_TOKEN &&
                              reply->token->finish == G3N__FINISH_REASON__FINISH_CANCELLED;
        if (reply->body_case == G3N__ENVELOPE__BODY_TOKEN && on_event)
            on_event(user, reply->token);
        if (final && final_reply) {
            *final_reply = reply;
            reply = NULL;
        }
        g3n_wire_free(reply);
        if (cancelled) { /* the orchestrator stopped mid-chat: an answer cut short is not a success */
            g3n_error_set(err, "the orchestrator at %s cancelled the chat before its answer ended (it is stopping); "
                               "the answer is incomplete", endpoint);
            goto done;
        }
        if (final)
            break;
    }
    rc = G3N_OK;
done:
    free(data);
    return rc;
}

int g3n_front_door_chat(const char *endpoint, G3n__ChatRequest *request, int timeout_ms,
                        g3n_chat_event_callback on_event, void *user, g3n_error *err)
{
    g3n_transport_options insecure = g3n_transport_default_options();
    insecure.insecure = 1;
    return g3n_front_door_chat_secure(endpoint, &insecure, request, timeout_ms, on_event, user, err);
}

int g3n_front_door_chat_secure(const char *endpoint, const g3n_transport_options *transport,
                               G3n__ChatRequest *request, int timeout_ms, g3n_chat_event_callback on_event, void *user,
                               g3n_error *err)
{
    g3n_front_door_connection *c = NULL;
    if (g3n_front_door_connect(&c, endpoint, transport, err) != G3N_OK)
        return G3N_ERR;
    G3n__Envelope env;
    g3n__envelope__init(&env);
    env.body_case = G3N__ENVELOPE__BODY_CHAT;
    env.chat = request;
    int rc = g3n_front_door_exchange(c, &env, timeout_ms, on_event, user, NULL, err);
    g3n_front_door_disconnect(c);
    return rc;
}
