/* transport.c - the broker, clients and workers over ZeroMQ (see transport.h).
 *
 * Frames:
 *   client -> broker (inproc ROUTER "front"):  [ctl: client_control][envelope bytes]
 *   broker -> client:                          [ctl: client_reply][envelope bytes]
 *   broker -> worker (ROUTER "back"):          [request id: 8 bytes LE][envelope bytes]
 *   worker -> broker (DEALER):                 [envelope bytes]
 * The broker forwards request payloads to workers without parsing them (the
 * worker validates; the leading request-id frame lets it answer even a
 * malformed message), and parses every worker message (Hello, Heartbeat,
 * Goodbye, or a reply to route back by request id).
 */
#include "transport.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* SIGTERM/SIGINT count (g3n_install_shutdown_handlers); a drain reads it too. */
static volatile sig_atomic_t shutdown_flag = 0;

/* ------------------------------------------------------------------ common */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

g3n_transport_options g3n_transport_default_options(void)
{
    g3n_transport_options o;
    memset(&o, 0, sizeof(o));
    o.heartbeat_interval_ms = 1000;
    o.heartbeat_timeout_ms = 5000;
    o.no_worker_wait_ms = 10000;
    o.max_retries = 1;
    o.max_message_bytes = G3N_WIRE_DEFAULT_MAX_MESSAGE_BYTES;
    o.request_timeout_ms = 600000;
    return o;
}

static void fill_defaults(g3n_transport_options *o)
{
    g3n_transport_options d = g3n_transport_default_options();
    if (o->heartbeat_interval_ms <= 0)
        o->heartbeat_interval_ms = d.heartbeat_interval_ms;
    if (o->heartbeat_timeout_ms <= 0)
        o->heartbeat_timeout_ms = d.heartbeat_timeout_ms;
    if (o->heartbeat_timeout_ms < 2 * o->heartbeat_interval_ms)
        o->heartbeat_timeout_ms = 2 * o->heartbeat_interval_ms;
    if (o->no_worker_wait_ms <= 0)
        o->no_worker_wait_ms = d.no_worker_wait_ms;
    if (o->max_retries < 0)
        o->max_retries = 0;
    if (o->max_message_bytes <= 0)
        o->max_message_bytes = d.max_message_bytes;
    if (o->request_timeout_ms <= 0)
        o->request_timeout_ms = d.request_timeout_ms;
}

static void free_buffer(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Sends a malloc'd buffer without copying (ZeroMQ frees it). */
static int send_owned(void *socket, uint8_t *data, size_t size, int flags)
{
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, data, size, free_buffer, NULL) != 0) {
        free(data);
        return -1;
    }
    if (zmq_msg_send(&msg, socket, flags) < 0) {
        zmq_msg_close(&msg);
        return -1;
    }
    return 0;
}

static int send_envelope(void *socket, G3n__Envelope *env, int flags, g3n_error *err)
{
    uint8_t *data;
    size_t size;
    if (g3n_wire_pack(env, &data, &size, err) != G3N_OK)
        return G3N_ERR;
    if (send_owned(socket, data, size, flags) != 0)
        return g3n_error_set(err, "transport: sending %s failed: %s", g3n_wire_body_name(env->body_case),
                             zmq_strerror(zmq_errno()));
    return G3N_OK;
}

/* Receives every remaining part of a multipart message and drops it. */
static void drain_parts(void *socket)
{
    int more = 0;
    size_t more_size = sizeof(more);
    while (zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &more_size) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket, 0) < 0) {
            zmq_msg_close(&part);
            return;
        }
        zmq_msg_close(&part);
    }
}

static int has_more(void *socket)
{
    int more = 0;
    size_t more_size = sizeof(more);
    return zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &more_size) == 0 && more;
}

static void set_common_options(void *socket, int64_t max_bytes)
{
    int linger = 0;
    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
    /* the envelope is a little larger than its tensors; the frame carrying it is what counts */
    zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &max_bytes, sizeof(max_bytes));
}

static atomic_uint_fast64_t next_request_id = 1;

/* ------------------------------------------------------------------ broker */

enum { CONTROL_SUBMIT = 1, CONTROL_CANCEL = 2, CONTROL_BYE = 3 /* the client closes: forget its requests */ };

typedef struct client_control {
    uint32_t kind;
    int32_t role;
    int32_t retryable;
    int32_t pinned;
    uint64_t request_id;
    char pin[64];
} client_control;

typedef struct client_reply_control {
    uint64_t request_id;
    int32_t final;
    int32_t unused;
    char worker[64];
} client_reply_control;

typedef struct worker_entry {
    char id[64]; /* routing id = worker name */
    size_t id_len;
    int role;
    int capacity;
    int outstanding;
    int64_t last_seen;
    uint64_t incarnation;
    int draining; /* 1: it is finishing its work before leaving; only requests pinned to it go there */
    char model_id[128];
    char user_id[160];                   /* CURVE: "ROLE:KEYNAME" its messages carry ("" inproc) */
    char key[G3N_CURVE_KEY_TEXT];        /* CURVE: its public key: the name is bound to it */
} worker_entry;

typedef struct request_entry {
    uint64_t id;
    uint8_t client[256];
    size_t client_len;
    int role;
    int retryable;
    int pinned;
    char pin[64];
    zmq_msg_t payload;  /* kept for a retry */
    int assigned;       /* 1: running on `worker` */
    char worker[64];
    int tries;
    int streamed;       /* an event was delivered: no retry any more */
    int64_t waiting_since;
    int64_t last_activity; /* assignment or the worker's last message: the deadline counts from here */
    int orphaned;       /* its client is gone: cancelled on its worker, never retried or answered */
} request_entry;

struct g3n_broker {
    void *context;
    void *back;  /* ROUTER: workers */
    void *front; /* ROUTER: clients (inproc) */
    char front_endpoint[96];
    g3n_transport_options options;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    pthread_mutex_t lock; /* stats */
    pthread_cond_t changed;
    g3n_broker_stats stats;
    /* broker-thread state */
    worker_entry *workers;
    int worker_count, worker_capacity;
    request_entry **requests;
    int request_count, request_capacity;
    int64_t last_heartbeat_sent;
    g3n_zap *zap; /* CURVE on: the ZAP handler (curve_keys.h) */
    unsigned zap_generation;
};

static void broker_log(g3n_broker *b, const char *format, ...) G3N_PRINTF(2, 3);
static void broker_log(g3n_broker *b, const char *format, ...)
{
    if (!b->options.verbose)
        return;
    va_list args;
    va_start(args, format);
    fprintf(stderr, "g3n broker: ");
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
}

static void publish_stats(g3n_broker *b)
{
    pthread_mutex_lock(&b->lock);
    for (int r = 0; r < G3N_ROLE_COUNT; r++)
        b->stats.live_workers[r] = b->stats.draining_workers[r] = 0;
    for (int i = 0; i < b->worker_count; i++)
        if (b->workers[i].role > 0 && b->workers[i].role < G3N_ROLE_COUNT) {
            b->stats.live_workers[b->workers[i].role]++;
            b->stats.draining_workers[b->workers[i].role] += b->workers[i].draining;
        }
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->lock);
}

static worker_entry *find_worker(g3n_broker *b, const void *id, size_t id_len)
{
    for (int i = 0; i < b->worker_count; i++)
        if (b->workers[i].id_len == id_len && memcmp(b->workers[i].id, id, id_len) == 0)
            return &b->workers[i];
    return NULL;
}

static request_entry *find_request(g3n_broker *b, uint64_t id, int *index)
{
    for (int i = 0; i < b->request_count; i++)
        if (b->requests[i]->id == id) {
            if (index)
                *index = i;
            return b->requests[i];
        }
    return NULL;
}

static void remove_request(g3n_broker *b, int index)
{
    request_entry *r = b->requests[index];
    zmq_msg_close(&r->payload);
    free(r);
    memmove(b->requests + index, b->requests + index + 1, (size_t)(b->request_count - index - 1) * sizeof(*b->requests));
    b->request_count--;
}

/* Sends [ctl][payload] to the client of r. payload: a message to move, or NULL with env. */
static void reply_to_client(g3n_broker *b, request_entry *r, int final, const char *worker, zmq_msg_t *payload)
{
    client_reply_control ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.request_id = r->id;
    ctl.final = final;
    if (worker)
        snprintf(ctl.worker, sizeof(ctl.worker), "%s", worker);
    if (zmq_send(b->front, r->client, r->client_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(b->front, &ctl, sizeof(ctl), ZMQ_SNDMORE) < 0 || zmq_msg_send(payload, b->front, 0) < 0)
        broker_log(b, "could not deliver a reply for request %llu: %s", (unsigned long long)r->id,
                   zmq_strerror(zmq_errno()));
}

/* Answers request `index` with an Error and forgets it. */
static void fail_request(g3n_broker *b, int index, int code, const char *message)
{
    request_entry *r = b->requests[index];
    G3n__Envelope env;
    G3n__Error body;
    g3n_wire_error_init(&env, &body, r->id, code, message);
    uint8_t *data;
    size_t size;
    if (g3n_wire_pack(&env, &data, &size, NULL) == G3N_OK) {
        zmq_msg_t msg;
        if (zmq_msg_init_data(&msg, data, size, free_buffer, NULL) == 0) {
            reply_to_client(b, r, 1, "", &msg);
            zmq_msg_close(&msg);
        } else {
            free(data);
        }
    }
    broker_log(b, "request %llu failed: %s", (unsigned long long)r->id, message);
    pthread_mutex_lock(&b->lock);
    b->stats.requests_failed++;
    pthread_mutex_unlock(&b->lock);
    remove_request(b, index);
}

/* Drops worker w: its in-flight requests are re-queued (retryable, nothing
 * streamed yet, tries left) or failed with ERROR_WORKER_LOST. */
static void drop_worker(g3n_broker *b, worker_entry *w, const char *why)
{
    char name[64];
    snprintf(name, sizeof(name), "%s", w->id);
    int role = w->role;
    broker_log(b, "%s worker %s lost: %s", g3n_role_name(role), name, why);
    int index = (int)(w - b->workers);
    memmove(b->workers + index, b->workers + index + 1, (size_t)(b->worker_count - index - 1) * sizeof(*b->workers));
    b->worker_count--;
    pthread_mutex_lock(&b->lock);
    b->stats.workers_lost++;
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < b->request_count;) {
        request_entry *r = b->requests[i];
        if (!r->assigned || strcmp(r->worker, name) != 0) {
            i++;
            continue;
        }
        if (r->orphaned) { /* nobody waits for it: never re-run */
            remove_request(b, i);
            continue;
        }
        if (r->retryable && !r->streamed && !r->pinned && r->tries <= b->options.max_retries) {
            r->assigned = 0;
            r->worker[0] = '\0';
            r->waiting_since = now_ms();
            pthread_mutex_lock(&b->lock);
            b->stats.requests_retried++;
            pthread_mutex_unlock(&b->lock);
            broker_log(b, "request %llu goes to another %s worker", (unsigned long long)r->id, g3n_role_name(role));
            i++;
        } else {
            char message[512];
            snprintf(message, sizeof(message), "%s worker %s was lost (%s) while running request %llu%s",
                     g3n_role_name(role), name, why, (unsigned long long)r->id,
                     r->pinned ? " (its session lived there)"
                     : r->streamed ? " (it had already streamed events, so it is not retried)"
                     : r->retryable ? " (no retries left)" : " (not retryable)");
            fail_request(b, i, G3N__ERROR_CODE__ERROR_WORKER_LOST, message);
        }
    }
    publish_stats(b);
}

static int add_worker(g3n_broker *b, const void *id, size_t id_len, int role, int capacity, const char *model_id)
{
    if (b->worker_count == b->worker_capacity) {
        int capacity_new = b->worker_capacity ? 2 * b->worker_capacity : 8;
        worker_entry *grown = realloc(b->workers, (size_t)capacity_new * sizeof(*grown));
        if (!grown)
            return G3N_ERR;
        b->workers = grown;
        b->worker_capacity = capacity_new;
    }
    worker_entry *w = &b->workers[b->worker_count++];
    memset(w, 0, sizeof(*w));
    memcpy(w->id, id, id_len);
    w->id[id_len] = '\0';
    w->id_len = id_len;
    w->role = role;
    w->capacity = capacity;
    w->last_seen = now_ms();
    snprintf(w->model_id, sizeof(w->model_id), "%s", model_id ? model_id : "");
    broker_log(b, "%s worker %s joined (capacity %d, %s)", g3n_role_name(role), w->id, capacity, w->model_id);
    publish_stats(b);
    return G3N_OK;
}

static void send_to_worker(g3n_broker *b, worker_entry *w, uint64_t request_id, zmq_msg_t *payload)
{
    uint8_t id_frame[8];
    for (int i = 0; i < 8; i++)
        id_frame[i] = (uint8_t)(request_id >> (8 * i));
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, payload);
    if (zmq_send(b->back, w->id, w->id_len, ZMQ_SNDMORE) < 0 || zmq_send(b->back, id_frame, 8, ZMQ_SNDMORE) < 0 ||
        zmq_msg_send(&copy, b->back, 0) < 0) {
        zmq_msg_close(&copy);
        broker_log(b, "sending to worker %s failed: %s", w->id, zmq_strerror(zmq_errno()));
    }
}

static void send_envelope_to_worker(g3n_broker *b, worker_entry *w, G3n__Envelope *env)
{
    uint8_t *data;
    size_t size;
    if (g3n_wire_pack(env, &data, &size, NULL) != G3N_OK)
        return;
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, data, size, free_buffer, NULL) != 0) {
        free(data);
        return;
    }
    send_to_worker(b, w, env->request_id, &msg);
    zmq_msg_close(&msg);
}

/* 1 when a worker of `role` can take new requests (a draining one cannot). */
static int role_has_worker(g3n_broker *b, int role)
{
    for (int i = 0; i < b->worker_count; i++)
        if (b->workers[i].role == role && !b->workers[i].draining)
            return 1;
    return 0;
}

/* Hands waiting requests to the least-loaded live worker of their role. */
static void dispatch(g3n_broker *b)
{
    int64_t now = now_ms();
    for (int i = 0; i < b->request_count;) {
        request_entry *r = b->requests[i];
        if (r->assigned) {
            i++;
            continue;
        }
        worker_entry *best = NULL;
        int pinned_alive = 0;
        for (int k = 0; k < b->worker_count; k++) {
            worker_entry *w = &b->workers[k];
            if (w->role != r->role)
                continue;
            if (r->pinned && strcmp(w->id, r->pin) != 0)
                continue;
            if (!r->pinned && w->draining)
                continue;
            pinned_alive = 1;
            if (w->outstanding >= w->capacity)
                continue;
            if (!best || w->outstanding < best->outstanding)
                best = w;
        }
        if (r->pinned && !pinned_alive) {
            char message[256];
            snprintf(message, sizeof(message), "%s worker %s (pinned: it holds the session) is not connected",
                     g3n_role_name(r->role), r->pin);
            fail_request(b, i, G3N__ERROR_CODE__ERROR_WORKER_LOST, message);
            continue;
        }
        if (!best) {
            if (!role_has_worker(b, r->role) && now - r->waiting_since > b->options.no_worker_wait_ms) {
                char message[256];
                snprintf(message, sizeof(message), "no %s worker is connected (waited %d ms)", g3n_role_name(r->role),
                         b->options.no_worker_wait_ms);
                fail_request(b, i, G3N__ERROR_CODE__ERROR_NO_WORKER, message);
                continue;
            }
            i++;
            continue;
        }
        r->assigned = 1;
        r->last_activity = now;
        r->tries++;
        snprintf(r->worker, sizeof(r->worker), "%s", best->id);
        best->outstanding++;
        send_to_worker(b, best, r->id, &r->payload);
        pthread_mutex_lock(&b->lock);
        b->stats.requests_dispatched++;
        pthread_mutex_unlock(&b->lock);
        i++;
    }
}

/* Sends a Cancel for assigned request r to its worker. */
static void cancel_on_worker(g3n_broker *b, request_entry *r)
{
    worker_entry *w = find_worker(b, r->worker, strlen(r->worker));
    if (!w)
        return;
    G3n__Envelope env;
    G3n__Cancel cancel;
    g3n__envelope__init(&env);
    g3n__cancel__init(&cancel);
    env.request_id = r->id;
    env.body_case = G3N__ENVELOPE__BODY_CANCEL;
    env.cancel = &cancel;
    send_envelope_to_worker(b, w, &env);
}

/* A client closed: its queued requests are dropped, its running ones
 * cancelled on their workers (and never retried). */
static void forget_client(g3n_broker *b, const void *client, size_t client_len)
{
    for (int i = 0; i < b->request_count;) {
        request_entry *r = b->requests[i];
        if (r->client_len != client_len || memcmp(r->client, client, client_len) != 0) {
            i++;
            continue;
        }
        if (!r->assigned) {
            broker_log(b, "request %llu dropped: its client is gone", (unsigned long long)r->id);
            remove_request(b, i);
            continue;
        }
        if (!r->orphaned) {
            r->orphaned = 1;
            cancel_on_worker(b, r);
        }
        i++;
    }
}

static void handle_client(g3n_broker *b)
{
    zmq_msg_t identity, control, payload;
    zmq_msg_init(&identity);
    zmq_msg_init(&control);
    zmq_msg_init(&payload);
    if (zmq_msg_recv(&identity, b->front, 0) < 0)
        goto done;
    if (!has_more(b->front) || zmq_msg_recv(&control, b->front, 0) < 0)
        goto done;
    if (zmq_msg_size(&control) != sizeof(client_control) || zmq_msg_size(&identity) > 255) {
        drain_parts(b->front);
        goto done;
    }
    client_control ctl;
    memcpy(&ctl, zmq_msg_data(&control), sizeof(ctl));
    if (ctl.kind == CONTROL_BYE) {
        drain_parts(b->front);
        forget_client(b, zmq_msg_data(&identity), zmq_msg_size(&identity));
        goto done;
    }
    if (ctl.kind == CONTROL_CANCEL) {
        drain_parts(b->front);
        int index;
        request_entry *r = find_request(b, ctl.request_id, &index);
        if (!r)
            goto done;
        if (!r->assigned) {
            fail_request(b, index, G3N__ERROR_CODE__ERROR_CANCELLED, "cancelled before it started");
        } else {
            worker_entry *w = find_worker(b, r->worker, strlen(r->worker));
            if (w) {
                G3n__Envelope env;
                G3n__Cancel cancel;
                g3n__envelope__init(&env);
                g3n__cancel__init(&cancel);
                env.request_id = r->id;
                env.body_case = G3N__ENVELOPE__BODY_CANCEL;
                env.cancel = &cancel;
                send_envelope_to_worker(b, w, &env);
            }
        }
        goto done;
    }
    if (!has_more(b->front) || zmq_msg_recv(&payload, b->front, 0) < 0)
        goto done;
    drain_parts(b->front);
    if (b->request_count == b->request_capacity) {
        int capacity_new = b->request_capacity ? 2 * b->request_capacity : 16;
        request_entry **grown = realloc(b->requests, (size_t)capacity_new * sizeof(*grown));
        if (!grown)
            goto done;
        b->requests = grown;
        b->request_capacity = capacity_new;
    }
    request_entry *r = calloc(1, sizeof(*r));
    if (!r)
        goto done;
    r->id = ctl.request_id;
    memcpy(r->client, zmq_msg_data(&identity), zmq_msg_size(&identity));
    r->client_len = zmq_msg_size(&identity);
    r->role = ctl.role;
    r->retryable = ctl.retryable;
    r->pinned = ctl.pinned;
    memcpy(r->pin, ctl.pin, sizeof(r->pin));
    r->pin[sizeof(r->pin) - 1] = '\0';
    r->waiting_since = now_ms();
    r->last_activity = r->waiting_since;
    zmq_msg_init(&r->payload);
    zmq_msg_move(&r->payload, &payload);
    b->requests[b->request_count++] = r;
done:
    zmq_msg_close(&identity);
    zmq_msg_close(&control);
    zmq_msg_close(&payload);
}

/* A worker said it is draining: no new requests go to it (dispatch), and it
 * gets an acknowledgement now (a Heartbeat with draining set), after which no
 * request it has not already received will reach it. Acknowledged at every
 * draining heartbeat, so that a lost one does not matter. */
static void mark_draining(g3n_broker *b, worker_entry *w)
{
    if (!w->draining) {
        w->draining = 1;
        broker_log(b, "%s worker %s is draining: no new requests go to it", g3n_role_name(w->role), w->id);
        publish_stats(b);
    }
    G3n__Envelope env;
    G3n__Heartbeat hb;
    g3n__envelope__init(&env);
    g3n__heartbeat__init(&hb);
    hb.role = G3N__ROLE__ROLE_ORCHESTRATOR;
    hb.outstanding = (uint32_t)w->outstanding;
    hb.draining = 1;
    env.body_case = G3N__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    send_envelope_to_worker(b, w, &env);
}

static void count_unauthorised(g3n_broker *b)
{
    pthread_mutex_lock(&b->lock);
    b->stats.messages_unauthorised++;
    pthread_mutex_unlock(&b->lock);
}

/* CURVE: the sender's key must still be listed (a revoked key's connection
 * gets nothing more), and a registered name answers only to the key that
 * registered it (no one takes over another worker's name). */
static int authorise_worker_message(g3n_broker *b, const char *id, size_t id_len, zmq_msg_t *payload, char *user_id,
                                    size_t user_id_size, char *key, size_t key_size)
{
    if (!g3n_zap_check_message(b->zap, payload, NULL, user_id, user_id_size)) {
        count_unauthorised(b);
        broker_log(b, "message from %s (%s) refused: its key is no longer listed", id, user_id);
        return 0;
    }
    g3n_zap_message_key(payload, key, key_size);
    worker_entry *w = find_worker(b, id, id_len);
    if (w && (strcmp(w->user_id, user_id) != 0 || strcmp(w->key, key) != 0)) {
        count_unauthorised(b);
        broker_log(b, "message from %s refused: that worker name belongs to key %s, not %s", id,
                   w->user_id[0] ? w->user_id : "(inproc)", user_id[0] ? user_id : "(inproc)");
        return 0;
    }
    return 1;
}

/* CURVE: a key listed for one role registers only as that role. */
static int key_allows_role(g3n_broker *b, const char *id, const char *user_id, int role)
{
    if (!b->zap || !user_id[0])
        return 1;
    const char *name = g3n_role_name(role);
    size_t n = strlen(name);
    if (strncmp(user_id, name, n) == 0 && user_id[n] == ':')
        return 1;
    count_unauthorised(b);
    broker_log(b, "worker %s refused: it says %s but its key is %s", id, name, user_id);
    return 0;
}

static void bind_worker_key(worker_entry *w, const char *user_id, const char *key)
{
    snprintf(w->user_id, sizeof(w->user_id), "%s", user_id);
    snprintf(w->key, sizeof(w->key), "%s", key);
}

/* CURVE: after the keys folder was read again, workers whose key went are dropped. */
static void drop_revoked_workers(g3n_broker *b)
{
    unsigned generation = g3n_zap_generation(b->zap);
    if (generation == b->zap_generation)
        return;
    b->zap_generation = generation;
    for (int i = 0; i < b->worker_count;) {
        worker_entry *w = &b->workers[i];
        if (w->user_id[0] && !g3n_zap_user_allowed(b->zap, w->user_id, w->key)) {
            drop_worker(b, w, "its key was revoked");
            continue;
        }
        i++;
    }
}

static void handle_worker(g3n_broker *b)
{
    zmq_msg_t identity, payload;
    zmq_msg_init(&identity);
    zmq_msg_init(&payload);
    if (zmq_msg_recv(&identity, b->back, 0) < 0)
        goto done;
    if (!has_more(b->back) || zmq_msg_recv(&payload, b->back, 0) < 0)
        goto done;
    drain_parts(b->back);
    size_t id_len = zmq_msg_size(&identity);
    if (id_len == 0 || id_len >= 64) {
        broker_log(b, "a peer with a routing id of %zu bytes was ignored (workers name themselves, < 64 bytes)", id_len);
        goto done;
    }
    char id[64];
    memcpy(id, zmq_msg_data(&identity), id_len);
    id[id_len] = '\0';
    char user_id[160] = "", key[G3N_CURVE_KEY_TEXT] = "";
    if (b->zap && !authorise_worker_message(b, id, id_len, &payload, user_id, sizeof(user_id), key, sizeof(key)))
        goto done;
    G3n__Envelope *env = NULL;
    int code;
    g3n_error err;
    if (g3n_wire_unpack(zmq_msg_data(&payload), zmq_msg_size(&payload), b->options.max_message_bytes, &env, &code,
                        &err) != G3N_OK) {
        broker_log(b, "message from worker %s rejected: %s", id, err.message);
        pthread_mutex_lock(&b->lock);
        b->stats.messages_rejected++;
        pthread_mutex_unlock(&b->lock);
        g3n_wire_free(env);
        goto done;
    }
    worker_entry *w = find_worker(b, id, id_len);
    if (w)
        w->last_seen = now_ms();
    switch (env->body_case) {
    case G3N__ENVELOPE__BODY_HELLO: {
        int role = env->hello->role;
        int capacity = (int)env->hello->capacity;
        if (role <= 0 || role >= G3N_ROLE_COUNT || role == G3N_ROLE_ORCHESTRATOR || capacity < 1 || capacity > 4096) {
            broker_log(b, "worker %s: Hello with role %d, capacity %d rejected", id, role, capacity);
            break;
        }
        if (!key_allows_role(b, id, user_id, role))
            break;
        if (w && w->incarnation == env->hello->incarnation && w->role == role) {
            /* the same worker reconnected: its running requests are still running */
            broker_log(b, "%s worker %s reconnected", g3n_role_name(role), id);
            w->capacity = capacity;
            break;
        }
        if (w)
            drop_worker(b, w, "it started again (a new incarnation)");
        if (add_worker(b, id, id_len, role, capacity, env->hello->model_id) == G3N_OK) {
            b->workers[b->worker_count - 1].incarnation = env->hello->incarnation;
            bind_worker_key(&b->workers[b->worker_count - 1], user_id, key);
        }
        break;
    }
    case G3N__ENVELOPE__BODY_HEARTBEAT:
        if (!w) {
            int role = env->heartbeat->role;
            int capacity = (int)env->heartbeat->capacity;
            if (role > 0 && role < G3N_ROLE_COUNT && role != G3N_ROLE_ORCHESTRATOR && capacity >= 1 &&
                capacity <= 4096 && key_allows_role(b, id, user_id, role) &&
                add_worker(b, id, id_len, role, capacity, "(re-registered by heartbeat)") == G3N_OK) {
                w = &b->workers[b->worker_count - 1];
                bind_worker_key(w, user_id, key);
            }
        }
        if (w && env->heartbeat->draining)
            mark_draining(b, w);
        break;
    case G3N__ENVELOPE__BODY_GOODBYE:
        if (w)
            drop_worker(b, w, env->goodbye->reason && env->goodbye->reason[0] ? env->goodbye->reason : "goodbye");
        break;
    default: {
        int index;
        request_entry *r = find_request(b, env->request_id, &index);
        if (!r || !r->assigned || strcmp(r->worker, id) != 0) {
            broker_log(b, "%s from worker %s for request %llu dropped (not running there)",
                       g3n_wire_body_name(env->body_case), id, (unsigned long long)env->request_id);
            break;
        }
        int final = !env->partial;
        r->last_activity = now_ms();
        if (!r->orphaned)
            reply_to_client(b, r, final, id, &payload);
        if (final) {
            if (w && w->outstanding > 0)
                w->outstanding--;
            remove_request(b, index);
        } else {
            r->streamed = 1;
        }
        break;
    }
    }
    g3n_wire_free(env);
done:
    zmq_msg_close(&identity);
    zmq_msg_close(&payload);
}

/* Requests past their deadline: queued too long while workers exist (the
 * no-worker case is dispatch's), or running with no word from their worker. */
static void request_deadlines(g3n_broker *b, int64_t now)
{
    const int64_t limit = b->options.request_timeout_ms;
    for (int i = 0; i < b->request_count;) {
        request_entry *r = b->requests[i];
        char message[320];
        if (r->assigned && now - r->last_activity > limit) {
            worker_entry *w = find_worker(b, r->worker, strlen(r->worker));
            cancel_on_worker(b, r);
            if (w && w->outstanding > 0)
                w->outstanding--;
            if (r->orphaned) {
                remove_request(b, i);
                continue;
            }
            snprintf(message, sizeof(message),
                     "%s worker %s sent nothing for request %llu in %d ms (its deadline; the worker still "
                     "heartbeats: stuck or overloaded); cancelled there",
                     g3n_role_name(r->role), r->worker, (unsigned long long)r->id, b->options.request_timeout_ms);
            fail_request(b, i, G3N__ERROR_CODE__ERROR_WORKER_LOST, message);
            continue;
        }
        if (!r->assigned && role_has_worker(b, r->role) && now - r->waiting_since > limit) {
            snprintf(message, sizeof(message), "request %llu waited %d ms for a free %s worker (its deadline)",
                     (unsigned long long)r->id, b->options.request_timeout_ms, g3n_role_name(r->role));
            fail_request(b, i, G3N__ERROR_CODE__ERROR_NO_WORKER, message);
            continue;
        }
        i++;
    }
}

static void broker_timers(g3n_broker *b)
{
    if (b->zap)
        drop_revoked_workers(b);
    int64_t now = now_ms();
    request_deadlines(b, now);
    for (int i = 0; i < b->worker_count;) {
        worker_entry *w = &b->workers[i];
        if (now - w->last_seen > b->options.heartbeat_timeout_ms) {
            char why[96];
            snprintf(why, sizeof(why), "no heartbeat for %lld ms", (long long)(now - w->last_seen));
            drop_worker(b, w, why);
            continue;
        }
        i++;
    }
    if (now - b->last_heartbeat_sent >= b->options.heartbeat_interval_ms) {
        b->last_heartbeat_sent = now;
        G3n__Envelope env;
        G3n__Heartbeat hb;
        g3n__envelope__init(&env);
        g3n__heartbeat__init(&hb);
        hb.role = G3N__ROLE__ROLE_ORCHESTRATOR;
        env.body_case = G3N__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        for (int i = 0; i < b->worker_count; i++) {
            hb.outstanding = (uint32_t)b->workers[i].outstanding;
            send_envelope_to_worker(b, &b->workers[i], &env);
        }
    }
}

static void *broker_main(void *arg)
{
    g3n_broker *b = arg;
    int tick = b->options.heartbeat_interval_ms / 4;
    if (tick < 5)
        tick = 5;
    if (tick > 100)
        tick = 100;
    while (!atomic_load(&b->stop)) {
        zmq_pollitem_t items[2] = {{b->back, 0, ZMQ_POLLIN, 0}, {b->front, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, 2, tick);
        if (n < 0) {
            if (zmq_errno() == ETERM)
                break;
            continue;
        }
        /* at most a batch per wake-up, so that timers keep running under load */
        for (int k = 0; k < 64 && (items[0].revents & ZMQ_POLLIN); k++) {
            handle_worker(b);
            zmq_pollitem_t again = {b->back, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&again, 1, 0) <= 0)
                break;
        }
        for (int k = 0; k < 64 && (items[1].revents & ZMQ_POLLIN); k++) {
            handle_client(b);
            zmq_pollitem_t again = {b->front, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&again, 1, 0) <= 0)
                break;
        }
        broker_timers(b);
        dispatch(b);
    }
    return NULL;
}

int g3n_broker_start(g3n_broker **out, const char *const *endpoints, int endpoint_count,
                     const g3n_transport_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_broker *b = calloc(1, sizeof(*b));
    if (!b)
        return g3n_error_set(err, "broker: out of memory");
    b->options = options ? *options : g3n_transport_default_options();
    fill_defaults(&b->options);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->changed, NULL);
    b->context = zmq_ctx_new();
    if (!b->context) {
        g3n_broker_stop(b);
        return g3n_error_set(err, "broker: zmq_ctx_new failed: %s", zmq_strerror(zmq_errno()));
    }
    b->back = zmq_socket(b->context, ZMQ_ROUTER);
    b->front = zmq_socket(b->context, ZMQ_ROUTER);
    if (!b->back || !b->front) {
        g3n_broker_stop(b);
        return g3n_error_set(err, "broker: cannot create sockets: %s", zmq_strerror(zmq_errno()));
    }
    set_common_options(b->back, b->options.max_message_bytes + 4096);
    /* a new connection may take over a name (a restarted worker), except under
     * CURVE: there a name stays with the connection that holds it */
    int handover = b->options.curve.enabled ? 0 : 1;
    zmq_setsockopt(b->back, ZMQ_ROUTER_HANDOVER, &handover, sizeof(handover));
    if (b->options.curve.enabled) { /* the ZAP handler first: no handshake runs without it */
        if (g3n_zap_start(&b->zap, b->context, b->options.curve.keys_dir, b->options.verbose, err) != G3N_OK) {
            g3n_broker_stop(b);
            return G3N_ERR;
        }
        b->zap_generation = g3n_zap_generation(b->zap);
    }
    int linger = 0;
    zmq_setsockopt(b->front, ZMQ_LINGER, &linger, sizeof(linger));
    for (int i = 0; i < endpoint_count; i++) {
        if (g3n_curve_prepare_socket(b->back, endpoints[i], &b->options.curve, b->options.insecure, 1,
                                     G3N_CURVE_DOMAIN_WORKERS, err) != G3N_OK) {
            g3n_broker_stop(b);
            return G3N_ERR;
        }
        if (zmq_bind(b->back, endpoints[i]) != 0) {
            int e = zmq_errno();
            g3n_broker_stop(b);
            return g3n_error_set(err, "broker: cannot bind %s: %s", endpoints[i], zmq_strerror(e));
        }
    }
    snprintf(b->front_endpoint, sizeof(b->front_endpoint), "inproc://g3n-broker-front-%p", (void *)b);
    if (zmq_bind(b->front, b->front_endpoint) != 0) {
        int e = zmq_errno();
        g3n_broker_stop(b);
        return g3n_error_set(err, "broker: cannot bind %s: %s", b->front_endpoint, zmq_strerror(e));
    }
    if (pthread_create(&b->thread, NULL, broker_main, b) != 0) {
        g3n_broker_stop(b);
        return g3n_error_set(err, "broker: cannot start its thread");
    }
    b->thread_started = 1;
    *out = b;
    return G3N_OK;
}

void g3n_broker_stop(g3n_broker *b)
{
    if (!b)
        return;
    atomic_store(&b->stop, 1);
    if (b->thread_started)
        pthread_join(b->thread, NULL);
    for (int i = 0; i < b->request_count; i++) {
        zmq_msg_close(&b->requests[i]->payload);
        free(b->requests[i]);
    }
    free(b->requests);
    free(b->workers);
    if (b->back)
        zmq_close(b->back);
    if (b->front)
        zmq_close(b->front);
    g3n_zap_stop(b->zap);
    if (b->context)
        zmq_ctx_term(b->context);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->changed);
    free(b);
}

void *g3n_broker_context(g3n_broker *b)
{
    return b->context;
}

int g3n_broker_secure_socket(g3n_broker *b, void *socket, const char *endpoint, const char *domain, g3n_error *err)
{
    return g3n_curve_prepare_socket(socket, endpoint, &b->options.curve, b->options.insecure, 1, domain, err);
}

g3n_zap *g3n_broker_zap(g3n_broker *b)
{
    return b->zap;
}

void g3n_broker_get_stats(g3n_broker *b, g3n_broker_stats *stats)
{
    pthread_mutex_lock(&b->lock);
    *stats = b->stats;
    pthread_mutex_unlock(&b->lock);
}

int g3n_broker_wait_workers(g3n_broker *b, int role, int count, int timeout_ms, g3n_error *err)
{
    if (role <= 0 || role >= G3N_ROLE_COUNT)
        return g3n_error_set(err, "broker: unknown role %d", role);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->lock);
    int rc = 0;
    while (b->stats.live_workers[role] < count && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&b->changed, &b->lock, &deadline);
    int have = b->stats.live_workers[role];
    pthread_mutex_unlock(&b->lock);
    if (have < count)
        return g3n_error_set(err, "only %d of %d %s workers connected within %d ms", have, count, g3n_role_name(role),
                             timeout_ms);
    return G3N_OK;
}

/* ------------------------------------------------------------------ client */

struct g3n_client {
    void *socket;
    int64_t max_message_bytes;
};

int g3n_client_open(g3n_client **out, g3n_broker *broker, g3n_error *err)
{
    *out = NULL;
    g3n_client *c = calloc(1, sizeof(*c));
    if (!c)
        return g3n_error_set(err, "client: out of memory");
    c->max_message_bytes = broker->options.max_message_bytes;
    c->socket = zmq_socket(broker->context, ZMQ_DEALER);
    if (!c->socket) {
        free(c);
        return g3n_error_set(err, "client: cannot create a socket: %s", zmq_strerror(zmq_errno()));
    }
    int linger = 0;
    zmq_setsockopt(c->socket, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(c->socket, broker->front_endpoint) != 0) {
        int e = zmq_errno();
        zmq_close(c->socket);
        free(c);
        return g3n_error_set(err, "client: cannot connect to the broker: %s", zmq_strerror(e));
    }
    *out = c;
    return G3N_OK;
}

void g3n_client_close(g3n_client *c)
{
    if (!c)
        return;
    client_control bye; /* the broker forgets this client's requests: none is re-run for nobody */
    memset(&bye, 0, sizeof(bye));
    bye.kind = CONTROL_BYE;
    int linger = 200; /* time for the goodbye to reach the broker */
    zmq_setsockopt(c->socket, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_send(c->socket, &bye, sizeof(bye), ZMQ_DONTWAIT);
    zmq_close(c->socket);
    free(c);
}

static int client_send(g3n_client *c, const g3n_request_options *options, uint64_t id, uint8_t *data, size_t size,
                       g3n_error *err)
{
    client_control ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.kind = CONTROL_SUBMIT;
    ctl.role = options->role;
    ctl.retryable = options->retryable;
    ctl.request_id = id;
    if (options->pin_worker && options->pin_worker[0]) {
        ctl.pinned = 1;
        snprintf(ctl.pin, sizeof(ctl.pin), "%s", options->pin_worker);
    }
    if (zmq_send(c->socket, &ctl, sizeof(ctl), ZMQ_SNDMORE) < 0) {
        free(data);
        return g3n_error_set(err, "client: send failed: %s", zmq_strerror(zmq_errno()));
    }
    if (send_owned(c->socket, data, size, 0) != 0)
        return g3n_error_set(err, "client: send failed: %s", zmq_strerror(zmq_errno()));
    return G3N_OK;
}

int g3n_client_submit(g3n_client *c, const g3n_request_options *options, G3n__Envelope *envelope,
                      uint64_t *request_id, g3n_error *err)
{
    if (options->role <= 0 || options->role >= G3N_ROLE_COUNT || options->role == G3N_ROLE_ORCHESTRATOR)
        return g3n_error_set(err, "client: no worker role %d", options->role);
    uint64_t id = atomic_fetch_add(&next_request_id, 1);
    envelope->request_id = id;
    uint8_t *data;
    size_t size;
    if (g3n_wire_pack(envelope, &data, &size, err) != G3N_OK)
        return G3N_ERR;
    if ((int64_t)size > c->max_message_bytes) {
        free(data);
        return g3n_error_set(err, "client: %s request of %zu bytes is over the message limit of %lld bytes",
                             g3n_wire_body_name(envelope->body_case), size, (long long)c->max_message_bytes);
    }
    if (request_id)
        *request_id = id;
    return client_send(c, options, id, data, size, err);
}

int g3n_client_submit_bytes(g3n_client *c, const g3n_request_options *options, const void *bytes, size_t size,
                            uint64_t *request_id, g3n_error *err)
{
    uint64_t id = atomic_fetch_add(&next_request_id, 1);
    uint8_t *data = malloc(size ? size : 1);
    if (!data)
        return g3n_error_set(err, "client: out of memory");
    if (size)
        memcpy(data, bytes, size);
    if (request_id)
        *request_id = id;
    return client_send(c, options, id, data, size, err);
}

void g3n_reply_clear(g3n_reply *reply)
{
    g3n_wire_free(reply->envelope);
    memset(reply, 0, sizeof(*reply));
}

int g3n_client_receive(g3n_client *c, int timeout_ms, g3n_reply *reply, g3n_error *err)
{
    memset(reply, 0, sizeof(*reply));
    int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        zmq_pollitem_t item = {c->socket, 0, ZMQ_POLLIN, 0};
        int64_t left = deadline - now_ms();
        int n = zmq_poll(&item, 1, timeout_ms < 0 ? -1 : left > 0 ? (long)left : 0);
        if (n < 0) {
            if (zmq_errno() == EINTR) /* a signal (a timer, SIGCHLD): wait out the rest of the time */
                continue;
            return g3n_error_set(err, "client: poll failed: %s", zmq_strerror(zmq_errno()));
        }
        if (n == 0)
            return g3n_error_set(err, "client: no reply within %d ms", timeout_ms);
        break;
    }
    zmq_msg_t control, payload;
    zmq_msg_init(&control);
    zmq_msg_init(&payload);
    int rc = G3N_ERR;
    if (zmq_msg_recv(&control, c->socket, 0) < 0 || !has_more(c->socket) || zmq_msg_recv(&payload, c->socket, 0) < 0) {
        g3n_error_set(err, "client: receive failed: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    drain_parts(c->socket);
    if (zmq_msg_size(&control) != sizeof(client_reply_control)) {
        g3n_error_set(err, "client: malformed reply from the broker");
        goto done;
    }
    client_reply_control ctl;
    memcpy(&ctl, zmq_msg_data(&control), sizeof(ctl));
    ctl.worker[sizeof(ctl.worker) - 1] = '\0';
    int code;
    if (g3n_wire_unpack(zmq_msg_data(&payload), zmq_msg_size(&payload), c->max_message_bytes + 4096,
                        &reply->envelope, &code, err) != G3N_OK) {
        g3n_wire_free(reply->envelope);
        reply->envelope = NULL;
        g3n_error_prefix(err, "reply to request %llu from worker %s", (unsigned long long)ctl.request_id, ctl.worker);
        goto done;
    }
    reply->request_id = ctl.request_id;
    reply->final = ctl.final;
    memcpy(reply->worker, ctl.worker, sizeof(reply->worker));
    rc = G3N_OK;
done:
    zmq_msg_close(&control);
    zmq_msg_close(&payload);
    return rc;
}

int g3n_client_cancel(g3n_client *c, uint64_t request_id, g3n_error *err)
{
    client_control ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.kind = CONTROL_CANCEL;
    ctl.request_id = request_id;
    if (zmq_send(c->socket, &ctl, sizeof(ctl), 0) < 0)
        return g3n_error_set(err, "client: cancel failed: %s", zmq_strerror(zmq_errno()));
    return G3N_OK;
}

int g3n_client_call(g3n_client *c, const g3n_request_options *options, G3n__Envelope *envelope,
                    g3n_event_callback on_event, void *user, g3n_reply *reply, g3n_error *err)
{
    memset(reply, 0, sizeof(*reply));
    uint64_t id;
    if (g3n_client_submit(c, options, envelope, &id, err) != G3N_OK)
        return G3N_ERR;
    int cancelled = 0;
    for (;;) {
        g3n_reply r;
        if (g3n_client_receive(c, -1, &r, err) != G3N_OK)
            return G3N_ERR;
        if (r.request_id != id) {
            g3n_reply_clear(&r);
            continue;
        }
        if (!r.final) {
            if (on_event && !cancelled && on_event(user, r.envelope) != 0) {
                cancelled = 1;
                g3n_client_cancel(c, id, NULL);
            }
            g3n_reply_clear(&r);
            continue;
        }
        *reply = r;
        break;
    }
    if (reply->envelope->body_case == G3N__ENVELOPE__BODY_ERROR) {
        const G3n__Error *e = reply->envelope->error;
        return g3n_error_set(err, "%s request %llu%s%s: %s: %s", g3n_role_name(options->role),
                             (unsigned long long)id, reply->worker[0] ? " on worker " : "", reply->worker,
                             g3n_wire_error_code_name(e->code), e->message ? e->message : "");
    }
    return G3N_OK;
}

/* ------------------------------------------------------------------ worker */

typedef struct worker_job {
    G3n__Envelope *request;
    uint64_t request_id;
    struct worker_job *next;
} worker_job;

struct g3n_worker_call {
    g3n_worker *worker;
    uint64_t request_id;
    atomic_int cancelled;
    int final_sent;
    int code;
    void *push;
    struct g3n_worker_call *next_active;
};

struct g3n_worker {
    g3n_worker_options options;
    char endpoint[512];
    char name[64];
    char model_id[256];
    g3n_worker_handler handler;
    void *user;
    void *context;
    int own_context;
    char out_endpoint[96];
    void *pull; /* owned by the socket thread after start */
    pthread_t socket_thread;
    int socket_started;
    pthread_t *handlers;
    int handler_count;
    atomic_int stop_socket;
    atomic_int stop_handlers;
    atomic_int killed;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    worker_job *queue_head, *queue_tail;
    int queued;
    g3n_worker_call *active; /* running calls (for Cancel) */
    int running;
    atomic_uint_fast64_t received, rejected;
    uint64_t incarnation;
    atomic_int draining;            /* g3n_worker_drain was called */
    atomic_int drain_acknowledged;  /* the broker answered a draining heartbeat */
    atomic_int_fast64_t broker_seen_ms; /* when the broker last said anything (0: never) */
};

static void worker_log(g3n_worker *w, const char *format, ...) G3N_PRINTF(2, 3);
static void worker_log(g3n_worker *w, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "g3n %s %s: ", g3n_role_name(w->options.role), w->name);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
}

static void *worker_connect(g3n_worker *w)
{
    void *s = zmq_socket(w->context, ZMQ_DEALER);
    if (!s)
        return NULL;
    set_common_options(s, w->options.transport.max_message_bytes + 4096);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, w->name, strlen(w->name));
    g3n_error curve_err;
    if (g3n_curve_prepare_socket(s, w->endpoint, &w->options.transport.curve, w->options.transport.insecure, 0, NULL,
                                 &curve_err) != G3N_OK) {
        worker_log(w, "%s", curve_err.message);
        zmq_close(s);
        return NULL;
    }
    if (zmq_connect(s, w->endpoint) != 0) {
        worker_log(w, "cannot connect to %s: %s", w->endpoint, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    G3n__Envelope env;
    G3n__Hello hello;
    g3n__envelope__init(&env);
    g3n__hello__init(&hello);
    hello.role = (G3n__Role)w->options.role;
    hello.model_id = w->model_id;
    hello.capacity = (uint32_t)w->options.capacity;
    hello.name = w->name;
    hello.incarnation = w->incarnation;
    env.body_case = G3N__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    send_envelope(s, &env, ZMQ_DONTWAIT, NULL);
    return s;
}

static void worker_send_error(g3n_worker *w, void *socket, uint64_t request_id, int code, const char *message)
{
    G3n__Envelope env;
    G3n__Error body;
    g3n_wire_error_init(&env, &body, request_id, code, message);
    g3n_error err;
    if (send_envelope(socket, &env, ZMQ_DONTWAIT, &err) != G3N_OK)
        worker_log(w, "%s", err.message);
}

static void worker_heartbeat(g3n_worker *w, void *socket)
{
    G3n__Envelope env;
    G3n__Heartbeat hb;
    g3n__envelope__init(&env);
    g3n__heartbeat__init(&hb);
    hb.role = (G3n__Role)w->options.role;
    hb.capacity = (uint32_t)w->options.capacity;
    pthread_mutex_lock(&w->lock);
    hb.outstanding = (uint32_t)(w->queued + w->running);
    pthread_mutex_unlock(&w->lock);
    hb.draining = atomic_load(&w->draining) ? 1 : 0;
    env.body_case = G3N__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    send_envelope(socket, &env, ZMQ_DONTWAIT, NULL);
}

/* A message from the broker: [request id][envelope]. */
static void worker_on_message(g3n_worker *w, void *socket, int64_t *last_broker_seen)
{
    zmq_msg_t id_frame, payload;
    zmq_msg_init(&id_frame);
    zmq_msg_init(&payload);
    if (zmq_msg_recv(&id_frame, socket, 0) < 0)
        goto done;
    *last_broker_seen = now_ms();
    atomic_store(&w->broker_seen_ms, *last_broker_seen);
    if (!has_more(socket)) {
        atomic_fetch_add(&w->rejected, 1);
        worker_log(w, "a one-frame message from the broker was dropped");
        goto done;
    }
    if (zmq_msg_recv(&payload, socket, 0) < 0)
        goto done;
    drain_parts(socket);
    uint64_t frame_id = 0;
    if (zmq_msg_size(&id_frame) == 8) {
        const uint8_t *p = zmq_msg_data(&id_frame);
        for (int i = 0; i < 8; i++)
            frame_id |= (uint64_t)p[i] << (8 * i);
    }
    G3n__Envelope *env = NULL;
    int code;
    g3n_error err;
    if (g3n_wire_unpack(zmq_msg_data(&payload), zmq_msg_size(&payload), w->options.transport.max_message_bytes, &env,
                        &code, &err) != G3N_OK) {
        atomic_fetch_add(&w->rejected, 1);
        /* the broker routes the answer by the routing frame's id: the envelope's own (if it parsed) may differ */
        uint64_t id = frame_id ? frame_id : env && env->request_id ? env->request_id : 0;
        worker_log(w, "request %llu rejected: %s", (unsigned long long)id, err.message);
        worker_send_error(w, socket, id, code, err.message);
        g3n_wire_free(env);
        goto done;
    }
    if (frame_id && env->request_id != frame_id) {
        atomic_fetch_add(&w->rejected, 1);
        char message[160];
        snprintf(message, sizeof(message), "envelope request_id %llu does not match its routing frame %llu",
                 (unsigned long long)env->request_id, (unsigned long long)frame_id);
        worker_send_error(w, socket, frame_id, G3N__ERROR_CODE__ERROR_BAD_REQUEST, message);
        g3n_wire_free(env);
        goto done;
    }
    switch (env->body_case) {
    case G3N__ENVELOPE__BODY_HEARTBEAT:
        if (env->heartbeat->draining && atomic_load(&w->draining))
            atomic_store(&w->drain_acknowledged, 1);
        g3n_wire_free(env);
        break;
    case G3N__ENVELOPE__BODY_CANCEL:
        pthread_mutex_lock(&w->lock);
        for (g3n_worker_call *c = w->active; c; c = c->next_active)
            if (c->request_id == env->request_id)
                atomic_store(&c->cancelled, 1);
        pthread_mutex_unlock(&w->lock);
        g3n_wire_free(env);
        break;
    case G3N__ENVELOPE__BODY_HELLO:
    case G3N__ENVELOPE__BODY_GOODBYE:
    case G3N__ENVELOPE__BODY_ERROR:
        g3n_wire_free(env);
        break;
    default: {
        worker_job *job = calloc(1, sizeof(*job));
        if (!job) {
            worker_send_error(w, socket, env->request_id, G3N__ERROR_CODE__ERROR_INTERNAL, "worker out of memory");
            g3n_wire_free(env);
            break;
        }
        atomic_fetch_add(&w->received, 1);
        job->request = env;
        job->request_id = env->request_id;
        pthread_mutex_lock(&w->lock);
        if (w->queue_tail)
            w->queue_tail->next = job;
        else
            w->queue_head = job;
        w->queue_tail = job;
        w->queued++;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        break;
    }
    }
done:
    zmq_msg_close(&id_frame);
    zmq_msg_close(&payload);
}

static void *worker_socket_main(void *arg)
{
    g3n_worker *w = arg;
    const g3n_transport_options *o = &w->options.transport;
    void *socket = worker_connect(w);
    int64_t last_broker_seen = now_ms(), last_sent = now_ms();
    int tick = o->heartbeat_interval_ms / 4;
    if (tick < 5)
        tick = 5;
    if (tick > 100)
        tick = 100;
    int stopping = 0, drain_announced = 0;
    for (;;) {
        if (atomic_load(&w->killed) && socket) {
            zmq_close(socket); /* linger 0: nothing more leaves */
            socket = NULL;
        }
        zmq_pollitem_t items[2] = {{w->pull, 0, ZMQ_POLLIN, 0}, {socket, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, socket ? 2 : 1, tick);
        if (n < 0 && zmq_errno() == ETERM)
            break;
        if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
            for (int k = 0; k < 64; k++) {
                zmq_msg_t msg;
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, w->pull, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&msg);
                    break;
                }
                if (socket && zmq_msg_send(&msg, socket, 0) >= 0)
                    last_sent = now_ms();
                else
                    zmq_msg_close(&msg);
            }
        }
        if (socket && n > 0 && (items[1].revents & ZMQ_POLLIN))
            for (int k = 0; k < 64; k++) {
                worker_on_message(w, socket, &last_broker_seen);
                zmq_pollitem_t again = {socket, 0, ZMQ_POLLIN, 0};
                if (zmq_poll(&again, 1, 0) <= 0)
                    break;
            }
        if (atomic_load(&w->stop_socket)) {
            if (!stopping) {
                stopping = 1;
                continue; /* one more pass to forward the last replies */
            }
            break;
        }
        int64_t now = now_ms();
        if (socket && atomic_load(&w->draining) && !drain_announced) {
            drain_announced = 1;
            last_sent = now - o->heartbeat_interval_ms; /* tell the broker now */
        }
        if (socket && now - last_sent >= o->heartbeat_interval_ms) {
            worker_heartbeat(w, socket);
            last_sent = now;
        }
        if (socket && now - last_broker_seen > o->heartbeat_timeout_ms) {
            worker_log(w, "broker at %s silent for %lld ms: reconnecting%s", w->endpoint,
                       (long long)(now - last_broker_seen),
                       o->curve.enabled && strncmp(w->endpoint, "inproc://", 9) != 0
                           ? " (CurveZMQ: if it never answers, is this worker's public key listed in the "
                             "orchestrator's keys folder for its role, and --server-key the orchestrator's?)"
                           : "");
            zmq_close(socket);
            socket = worker_connect(w);
            last_broker_seen = now;
            last_sent = now;
        }
        if (!socket && !atomic_load(&w->killed) && !atomic_load(&w->stop_socket)) {
            usleep(100000);
            socket = worker_connect(w);
            last_broker_seen = now_ms();
        }
    }
    if (socket) {
        if (!atomic_load(&w->killed)) {
            G3n__Envelope env;
            G3n__Goodbye bye;
            g3n__envelope__init(&env);
            g3n__goodbye__init(&bye);
            bye.reason = "worker stopping";
            env.body_case = G3N__ENVELOPE__BODY_GOODBYE;
            env.goodbye = &bye;
            int linger = 500;
            zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
            send_envelope(socket, &env, ZMQ_DONTWAIT, NULL);
        }
        zmq_close(socket);
    }
    return NULL;
}

int g3n_worker_call_send(g3n_worker_call *call, G3n__Envelope *reply, int partial, g3n_error *err)
{
    if (call->final_sent)
        return g3n_error_set(err, "worker: request %llu already has its final reply",
                             (unsigned long long)call->request_id);
    reply->request_id = call->request_id;
    reply->partial = partial ? 1 : 0;
    if (!partial)
        call->final_sent = 1;
    if (atomic_load(&call->worker->killed))
        return G3N_OK; /* a dead worker says nothing */
    uint8_t *data;
    size_t size;
    if (g3n_wire_pack(reply, &data, &size, err) != G3N_OK)
        return G3N_ERR;
    if ((int64_t)size > call->worker->options.transport.max_message_bytes) {
        free(data);
        char message[256];
        snprintf(message, sizeof(message), "the %s reply of %zu bytes is over the message limit",
                 g3n_wire_body_name(reply->body_case), size);
        call->final_sent = 0;
        g3n_worker_call_fail(call, G3N__ERROR_CODE__ERROR_TOO_LARGE, message);
        return g3n_error_set(err, "%s", message);
    }
    if (send_owned(call->push, data, size, 0) != 0)
        return g3n_error_set(err, "worker: forwarding a reply failed: %s", zmq_strerror(zmq_errno()));
    return G3N_OK;
}

int g3n_worker_call_fail(g3n_worker_call *call, int code, const char *message)
{
    G3n__Envelope env;
    G3n__Error body;
    g3n_wire_error_init(&env, &body, call->request_id, code, message);
    g3n_worker_call_send(call, &env, 0, NULL);
    return G3N_ERR;
}

void g3n_worker_call_set_code(g3n_worker_call *call, int code)
{
    call->code = code;
}

int g3n_worker_call_cancelled(const g3n_worker_call *call)
{
    return atomic_load(&call->cancelled) || atomic_load(&call->worker->stop_handlers);
}

uint64_t g3n_worker_call_request_id(const g3n_worker_call *call)
{
    return call->request_id;
}

/* Ping is answered by every worker (health checks, tests). */
static int answer_ping(g3n_worker *w, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err)
{
    uint32_t delay = request->ping->delay_ms;
    if (delay > 600000)
        delay = 600000;
    int64_t until = now_ms() + delay;
    while (now_ms() < until) {
        if (g3n_worker_call_cancelled(call)) {
            g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_CANCELLED);
            return g3n_error_set(err, "ping cancelled");
        }
        usleep(2000);
    }
    G3n__Envelope env;
    G3n__Pong pong;
    g3n__envelope__init(&env);
    g3n__pong__init(&pong);
    pong.payload = request->ping->payload;
    pong.worker = w->name;
    env.body_case = G3N__ENVELOPE__BODY_PONG;
    env.pong = &pong;
    return g3n_worker_call_send(call, &env, 0, err);
}

static void *worker_handler_main(void *arg)
{
    g3n_worker *w = arg;
    void *push = zmq_socket(w->context, ZMQ_PUSH);
    if (!push)
        return NULL;
    int linger = -1;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_connect(push, w->out_endpoint);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->queue_head && !atomic_load(&w->stop_handlers))
            pthread_cond_wait(&w->wake, &w->lock);
        if (atomic_load(&w->stop_handlers)) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        worker_job *job = w->queue_head;
        w->queue_head = job->next;
        if (!w->queue_head)
            w->queue_tail = NULL;
        w->queued--;
        g3n_worker_call call;
        memset(&call, 0, sizeof(call));
        call.worker = w;
        call.request_id = job->request_id;
        call.push = push;
        call.code = G3N__ERROR_CODE__ERROR_INTERNAL;
        call.next_active = w->active;
        w->active = &call;
        w->running++;
        pthread_mutex_unlock(&w->lock);

        g3n_error err;
        err.message[0] = '\0';
        int rc;
        if (job->request->body_case == G3N__ENVELOPE__BODY_PING)
            rc = answer_ping(w, &call, job->request, &err);
        else if (w->handler)
            rc = w->handler(w->user, &call, job->request, &err);
        else {
            g3n_worker_call_set_code(&call, G3N__ERROR_CODE__ERROR_UNSUPPORTED);
            rc = g3n_error_set(&err, "this worker does not serve %s", g3n_wire_body_name(job->request->body_case));
        }
        if (!call.final_sent) {
            if (rc == G3N_OK)
                g3n_worker_call_fail(&call, G3N__ERROR_CODE__ERROR_INTERNAL, "the handler sent no reply");
            else
                g3n_worker_call_fail(&call, call.code, err.message[0] ? err.message : "failed");
        }

        pthread_mutex_lock(&w->lock);
        for (g3n_worker_call **p = &w->active; *p; p = &(*p)->next_active)
            if (*p == &call) {
                *p = call.next_active;
                break;
            }
        w->running--;
        pthread_mutex_unlock(&w->lock);
        g3n_wire_free(job->request);
        free(job);
    }
    zmq_close(push);
    return NULL;
}

int g3n_worker_start(g3n_worker **out, const g3n_worker_options *options, g3n_worker_handler handler, void *user,
                     g3n_error *err)
{
    *out = NULL;
    if (options->role <= 0 || options->role >= G3N_ROLE_COUNT || options->role == G3N_ROLE_ORCHESTRATOR)
        return g3n_error_set(err, "worker: role %d cannot be served by a worker", options->role);
    if (!options->endpoint || !options->endpoint[0])
        return g3n_error_set(err, "worker: no broker endpoint");
    if (g3n_curve_check_endpoint(options->endpoint, &options->transport.curve, options->transport.insecure, err) !=
        G3N_OK)
        return G3N_ERR;
    g3n_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return g3n_error_set(err, "worker: out of memory");
    w->options = *options;
    fill_defaults(&w->options.transport);
    if (w->options.capacity < 1)
        w->options.capacity = 1;
    snprintf(w->endpoint, sizeof(w->endpoint), "%s", options->endpoint);
    snprintf(w->model_id, sizeof(w->model_id), "%s", options->model_id ? options->model_id : "");
    static atomic_int worker_counter = 0;
    if (options->name && options->name[0]) {
        snprintf(w->name, sizeof(w->name), "%s", options->name);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(w->name, sizeof(w->name), "%s-%.24s-%d-%d", g3n_role_name(options->role), host, (int)getpid(),
                 atomic_fetch_add(&worker_counter, 1));
    }
    w->handler = handler;
    w->user = user;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        w->incarnation = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32) ^
                         (uint64_t)(uintptr_t)w;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (options->zmq_context) {
        w->context = options->zmq_context;
    } else {
        w->context = zmq_ctx_new();
        w->own_context = 1;
    }
    w->pull = w->context ? zmq_socket(w->context, ZMQ_PULL) : NULL;
    snprintf(w->out_endpoint, sizeof(w->out_endpoint), "inproc://g3n-worker-out-%p", (void *)w);
    if (!w->pull || zmq_bind(w->pull, w->out_endpoint) != 0) {
        int e = zmq_errno();
        g3n_worker_stop(w);
        return g3n_error_set(err, "worker: cannot set up its sockets: %s", zmq_strerror(e));
    }
    int linger = 0;
    zmq_setsockopt(w->pull, ZMQ_LINGER, &linger, sizeof(linger));
    w->handlers = calloc((size_t)w->options.capacity, sizeof(pthread_t));
    if (!w->handlers) {
        g3n_worker_stop(w);
        return g3n_error_set(err, "worker: out of memory");
    }
    for (int i = 0; i < w->options.capacity; i++) {
        if (pthread_create(&w->handlers[i], NULL, worker_handler_main, w) != 0) {
            g3n_worker_stop(w);
            return g3n_error_set(err, "worker: cannot start handler thread %d", i);
        }
        w->handler_count++;
    }
    if (pthread_create(&w->socket_thread, NULL, worker_socket_main, w) != 0) {
        g3n_worker_stop(w);
        return g3n_error_set(err, "worker: cannot start its socket thread");
    }
    w->socket_started = 1;
    *out = w;
    return G3N_OK;
}

void g3n_worker_kill(g3n_worker *w)
{
    atomic_store(&w->killed, 1);
}

void g3n_worker_stop(g3n_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stop_handlers, 1);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->handler_count; i++)
        pthread_join(w->handlers[i], NULL);
    atomic_store(&w->stop_socket, 1);
    if (w->socket_started)
        pthread_join(w->socket_thread, NULL);
    while (w->queue_head) {
        worker_job *job = w->queue_head;
        w->queue_head = job->next;
        g3n_wire_free(job->request);
        free(job);
    }
    if (w->pull)
        zmq_close(w->pull);
    if (w->own_context && w->context)
        zmq_ctx_term(w->context);
    free(w->handlers);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}

const char *g3n_worker_name(const g3n_worker *w)
{
    return w->name;
}

uint64_t g3n_worker_requests_received(g3n_worker *w)
{
    return atomic_load(&w->received);
}

uint64_t g3n_worker_messages_rejected(g3n_worker *w)
{
    return atomic_load(&w->rejected);
}

int g3n_worker_connected(g3n_worker *w)
{
    int64_t seen = atomic_load(&w->broker_seen_ms);
    return seen > 0 && now_ms() - seen <= w->options.transport.heartbeat_timeout_ms;
}

int g3n_worker_draining(g3n_worker *w)
{
    return atomic_load(&w->draining);
}

int g3n_worker_drain(g3n_worker *w, int timeout_ms, int (*busy)(void *user), void *busy_user, g3n_error *err)
{
    int64_t start = now_ms();
    atomic_store(&w->draining, 1);
    /* 1. the broker's acknowledgement: after it nothing new arrives (unless pinned to us). A broker that
     * is silent cannot send anything either, so its silence counts as one. */
    while (!atomic_load(&w->drain_acknowledged) && g3n_worker_connected(w) && now_ms() - start < timeout_ms &&
           shutdown_flag < 2)
        usleep(5000);
    /* 2. what it holds: queued and running requests, and what `busy` reports (a decoder's sessions) */
    for (;;) {
        pthread_mutex_lock(&w->lock);
        int holding = w->queued + w->running;
        pthread_mutex_unlock(&w->lock);
        int other = busy ? busy(busy_user) : 0;
        if (holding == 0 && other == 0)
            return G3N_OK;
        if (shutdown_flag >= 2)
            return g3n_error_set(err, "drain cut short by a second signal with %d request(s) and %d session(s) held",
                                 holding, other);
        if (now_ms() - start >= timeout_ms)
            return g3n_error_set(err, "drain timed out after %d ms with %d request(s) and %d session(s) still held",
                                 timeout_ms, holding, other);
        usleep(10000);
    }
}

/* ------------------------------------------------------------------ daemons */

static void on_signal(int sig)
{
    (void)sig;
    if (shutdown_flag < 1000)
        shutdown_flag++;
}

void g3n_install_shutdown_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int g3n_shutdown_requested(void)
{
    return shutdown_flag;
}
