/* http_server.c - the OpenAI-compatible HTTP API (http_server.h).
 *
 * Why libmicrohttpd: a small C library, packaged by Debian (libmicrohttpd-dev),
 * maintained by GNU for two decades, with a thread-per-connection mode that
 * lets a handler block on a generation, content-reader callbacks for streaming
 * responses of unknown length (server-sent events), and connection limits and
 * timeouts built in. No C++ and no event-loop framework to adopt. */
#define _GNU_SOURCE /* POLLRDHUP */
#include "http_server.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat_template.h"
#include "http_auth.h"
#include "conversation.h"
#include "http_metrics.h"
#include "http_live.h"
#include "http_reply.h"
#include "http_request.h"
#include "http_static.h"
#include "http_stop.h"
#include "ops.h"
#include "pipeline.h"

struct g3n_http_server {
    struct MHD_Daemon *daemon;
    g3n_broker *broker;
    const g3n_model_config *config;
    const g3n_tokenizer *tokenizer;
    g3n_http_options options;
    char model_name[128];
    char submodels[G3N_HTTP_MAX_SUBMODELS][64]; /* MatFormer sub-model names (options.submodels) */
    int submodel_count;
    char allow_dir[1024];
    int64_t context;            /* prompt + completion tokens */
    g3n_http_metrics *metrics;
    int port;
    time_t started;
    char *tls_cert, *tls_key; /* PEM copies (the daemon reads them at start) */

    pthread_mutex_t lock;       /* guards the counts below */
    pthread_cond_t changed;     /* a slot freed, a job ended, stopping */
    int active, queued, jobs;
    atomic_int stopping;
    atomic_uint_fast64_t next_id;

    /* request deadlines (a reaper thread cuts off connections past theirs) */
    pthread_mutex_t connections_lock;
    struct open_connection *connections; /* every open connection */
    pthread_t reaper;
    int reaper_started;
    atomic_int reaper_stop;
};

static int resolve_model(const g3n_http_server *s, const char *requested, char *id, size_t id_size,
                         char submodel[64]);

/* An open connection and where its current request stands. */
typedef struct open_connection {
    int fd;
    int receiving;     /* 1: waiting for (or reading) a request; 0: answering it */
    double deadline;   /* g3n_now_seconds() by which the request must be in */
    int64_t body;      /* declared body bytes (Content-Length), for the deadline */
    struct open_connection *next, *previous;
} open_connection;

g3n_http_options g3n_http_default_options(void)
{
    g3n_http_options o;
    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = 8080;
    o.max_sessions = 4;
    o.queue = 16;
    o.max_body_bytes = 64LL << 20;
    o.max_media_bytes = 32LL << 20;
    o.max_tokens = 1024;
    o.model_name = "gemma-3n";
    o.max_connections = 256;
    o.retry_after_seconds = 1;
    o.request_seconds = 30;
    o.sampling = g3n_sampling_default_params();
    o.sampling.do_sample = 0;
    return o;
}

/* ------------------------------------------------------------ small helpers */

typedef struct byte_buffer {
    char *data;
    size_t length, capacity;
} byte_buffer;

static int buffer_reserve(byte_buffer *b, size_t extra)
{
    if (b->length + extra + 1 <= b->capacity)
        return G3N_OK;
    size_t c = b->capacity ? b->capacity : 1024;
    while (c < b->length + extra + 1)
        c *= 2;
    char *d = realloc(b->data, c);
    if (!d)
        return G3N_ERR;
    b->data = d;
    b->capacity = c;
    return G3N_OK;
}

static int buffer_append(byte_buffer *b, const char *text, size_t length)
{
    if (buffer_reserve(b, length) != G3N_OK)
        return G3N_ERR;
    memcpy(b->data + b->length, text, length);
    b->length += length;
    b->data[b->length] = '\0';
    return G3N_OK;
}

static int buffer_puts(byte_buffer *b, const char *text)
{
    return buffer_append(b, text, strlen(text));
}

/* Appends text as the inside of a JSON string. */
static int buffer_json_escape(byte_buffer *b, const char *text, size_t length)
{
    if (buffer_reserve(b, length * 6) != G3N_OK)
        return G3N_ERR;
    char *o = b->data + b->length;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    b->length = (size_t)(o - b->data);
    b->data[b->length] = '\0';
    return G3N_OK;
}

static double now_seconds(void)
{
    return g3n_now_seconds();
}

/* 1 when the peer closed its side (or the socket failed). */
static int peer_gone(int fd)
{
    if (fd < 0)
        return 0;
    struct pollfd p = {fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static int connection_fd(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? (int)info->connect_fd : -1;
}

/* ----------------------------------------------------------------- responses */

static enum MHD_Result send_error(g3n_http_server *s, struct MHD_Connection *connection, const g3n_http_error *e)
{
    int retry = e->status == 429 || e->status == 503 ? s->options.retry_after_seconds : 0;
    return g3n_http_send_error(connection, e, retry);
}

/* ---------------------------------------------------------------- chat jobs */

/* One chat: parsed on the connection's thread, generated on its own thread,
 * read back by the connection (the whole answer, or a stream of events).
 * Two owners (the connection side and the job thread): freed by the last
 * job_release. */
typedef struct chat_job {
    g3n_http_server *server;
    atomic_int refs;
    g3n_http_chat_request request;
    g3n_chat_prompt prompt;
    g3n_http_endpoint endpoint;
    int64_t max_new_tokens;
    g3n_sampling_params sampling;
    char id[48];
    char model_id[200];       /* the id answers carry: model_name, or model_name:<sub-model> */
    char submodel[64];        /* the decoder's sub-model ("": the full model) */
    time_t created;
    double arrived;

    atomic_int cancelled;     /* the client went away, or the server stops */
    pthread_mutex_t lock;     /* guards the fields below */
    pthread_cond_t changed;
    int started;              /* the first token exists, or the job ended */
    int token_seen;           /* the first token exists (a stream has begun) */
    int finished;
    int failed;
    g3n_http_error error;
    byte_buffer out;          /* stream: SSE bytes not yet read; else the answer's text */
    size_t read_position;

    /* the job thread's own state */
    g3n_detokenizer detokenizer;
    g3n_stop_matcher stop;
    int stop_matched;
    int64_t generated;
    double first_token;
    g3n_pipeline_stats stats;
    g3n_pipeline_windows windows;         /* the media to encode: images, 30 s audio windows */
    g3n_chat_message *windowed_messages;  /* the messages with one item per window */
    g3n_chat_item *windowed_items;
} chat_job;

static void job_release(chat_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    g3n_http_chat_request_free(&j->request);
    g3n_chat_prompt_free(&j->prompt);
    g3n_stop_free(&j->stop);
    g3n_pipeline_windows_free(&j->windows);
    free(j->windowed_messages);
    free(j->windowed_items);
    free(j->out.data);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->changed);
    free(j);
}

/* data: {"id":..., "object":"chat.completion.chunk", ...}\n\n  (j->lock held) */
static int append_chunk(chat_job *j, const char *role, const char *text, size_t length, const char *finish)
{
    char head[512];
    snprintf(head, sizeof(head),
             "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\","
             "\"system_fingerprint\":null,\"choices\":[{\"index\":0,\"delta\":{",
             j->id, (long long)j->created, j->model_id);
    if (buffer_puts(&j->out, head) != G3N_OK)
        return G3N_ERR;
    int rc = G3N_OK;
    if (role) {
        rc |= buffer_puts(&j->out, "\"role\":\"");
        rc |= buffer_puts(&j->out, role);
        rc |= buffer_puts(&j->out, "\",");
    }
    if (text) {
        rc |= buffer_puts(&j->out, "\"content\":\"");
        rc |= buffer_json_escape(&j->out, text, length);
        rc |= buffer_puts(&j->out, "\"");
    } else if (role) {
        j->out.length--; /* the comma */
    }
    rc |= buffer_puts(&j->out, "},\"logprobs\":null,\"finish_reason\":");
    if (finish) {
        rc |= buffer_puts(&j->out, "\"");
        rc |= buffer_puts(&j->out, finish);
        rc |= buffer_puts(&j->out, "\"");
    } else {
        rc |= buffer_puts(&j->out, "null");
    }
    rc |= buffer_puts(&j->out, "}]}\n\n");
    return rc == G3N_OK ? G3N_OK : G3N_ERR;
}

/* Text the client may see now. */
static void job_emit(chat_job *j, const char *text, size_t length)
{
    if (length == 0)
        return;
    pthread_mutex_lock(&j->lock);
    int rc = j->request.stream ? append_chunk(j, NULL, text, length, NULL) : buffer_append(&j->out, text, length);
    if (rc != G3N_OK)
        atomic_store(&j->cancelled, 1); /* out of memory: end this one */
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
}

/* g3n_pipeline_generate's per-token callback: detokenize, stop strings,
 * first-token time; returns nonzero to stop (also on cancel). */
static int job_on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    (void)logits;
    (void)vocab;
    chat_job *j = user;
    g3n_http_server *s = j->server;
    j->generated = step + 1;
    if (step == 0) {
        j->first_token = now_seconds();
        g3n_http_metrics_first_token(s->metrics, j->first_token - j->arrived);
        pthread_mutex_lock(&j->lock);
        if (j->request.stream && append_chunk(j, "assistant", "", 0, NULL) != G3N_OK)
            atomic_store(&j->cancelled, 1);
        j->started = 1;
        j->token_seen = 1;
        pthread_cond_broadcast(&j->changed);
        pthread_mutex_unlock(&j->lock);
    }
    g3n_http_metrics_tokens(s->metrics, 1);
    const char *text, *shown;
    size_t length, shown_length;
    g3n_error err;
    if (g3n_detokenizer_push(&j->detokenizer, token, &text, &length, &err) != G3N_OK)
        return 1;
    int stop = g3n_stop_push(&j->stop, text, length, &shown, &shown_length, &err);
    if (stop == G3N_ERR)
        return 1;
    job_emit(j, shown, shown_length);
    if (stop == 1)
        j->stop_matched = 1;
    return stop == 1 || atomic_load(&j->cancelled) || s->stopping;
}

/* A pipeline error -> the HTTP answer it deserves. */
static void classify_error(const char *message, g3n_http_error *e)
{
    const int code = g3n_pipeline_error_code(message);
    if (strstr(message, "bad reply from the ")) /* a worker's fault, not the client's (pipeline.h) */
        g3n_http_error_set(e, 502, "server_error", "bad_worker_reply", NULL, "a worker answered badly: %s", message);
    else if ((strncmp(message, "encoding image", 14) == 0 || strncmp(message, "encoding audio", 14) == 0) &&
             code != G3N__ERROR_CODE__ERROR_BAD_REQUEST && !strstr(message, "ERROR_NO_WORKER") &&
             !strstr(message, "ERROR_WORKER_LOST"))
        g3n_http_error_set(e, 500, "server_error", NULL, NULL, "%s", message); /* an encoder failed on its side */
    else if (strstr(message, "ERROR_NO_WORKER") || strstr(message, "ERROR_WORKER_LOST") ||
        strstr(message, "busy sessions") || strstr(message, "ERROR_TOO_LARGE"))
        g3n_http_error_set(e, 503, "server_error", "service_unavailable", NULL, "the model is busy or unavailable: %s",
                           message);
    else if (strncmp(message, "encoding image", 14) == 0)
        g3n_http_error_set(e, 400, "invalid_request_error", "invalid_image", "messages",
                           "an image could not be decoded: %s", message);
    else if (strncmp(message, "encoding audio", 14) == 0)
        g3n_http_error_set(e, 400, "invalid_request_error", "invalid_audio", "messages",
                           "an audio clip could not be decoded: %s", message);
    else if (strstr(message, "ERROR_BAD_REQUEST"))
        g3n_http_error_set(e, 400, "invalid_request_error", NULL, NULL, "%s", message);
    else
        g3n_http_error_set(e, 500, "server_error", NULL, NULL, "%s", message);
}

static void encoded_metrics(void *user, const G3n__Envelope *m)
{
    g3n_http_metrics *metrics = user;
    if (m->body_case == G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY)
        g3n_http_metrics_stage(metrics, G3N_STAGE_AUDIO_ENCODE, m->encode_audio_reply->seconds);
    else if (m->body_case == G3N__ENVELOPE__BODY_ENCODE_IMAGE_REPLY)
        g3n_http_metrics_stage(metrics, G3N_STAGE_VISION_ENCODE, m->encode_image_reply->seconds);
}

/* Encodes the media, prefills, decodes: the body of the job thread. */
static int job_run(chat_job *j, g3n_http_error *e)
{
    g3n_http_server *s = j->server;
    g3n_error err = {{0}};
    g3n_client *client = NULL;
    int rc = G3N_ERR;
    if (g3n_client_open(&client, s->broker, &err) != G3N_OK) {
        g3n_http_error_set(e, 503, "server_error", "service_unavailable", NULL, "%s", err.message);
        goto done;
    }
    if (atomic_load(&j->cancelled) || s->stopping) {
        g3n_http_error_set(e, 499, "invalid_request_error", "cancelled", NULL, "the request was cancelled");
        goto done;
    }
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(s->config);
    params.max_new_tokens = j->max_new_tokens;
    params.sampling = j->sampling;
    params.on_token = job_on_token;
    params.user = j;
    params.model = j->submodel;
    /* media encoded there (those a continued session already holds are not), prefix reuse (conversation.h) */
    g3n_conversation_options co = {s->options.prefix_cache, encoded_metrics, s->metrics, s->config};
    /* the media as windowed at the request (images, 30 s audio windows: the prompt's placeholders) */
    if (g3n_pipeline_conversation(client, &co, NULL, j->prompt.ids.ids, j->prompt.ids.count, j->windows.files,
                                  j->windows.count, &params, NULL, NULL, &j->stats, &err) != G3N_OK) {
        classify_error(err.message, e);
        goto done;
    }
    const char *text, *shown;
    size_t length, shown_length;
    if (g3n_detokenizer_flush(&j->detokenizer, &text, &length, &err) == G3N_OK && length) {
        if (g3n_stop_push(&j->stop, text, length, &shown, &shown_length, &err) == 1)
            j->stop_matched = 1;
        job_emit(j, shown, shown_length);
    }
    g3n_stop_flush(&j->stop, &shown, &shown_length);
    job_emit(j, shown, shown_length);
    g3n_http_metrics_prompt(s->metrics, j->stats.prompt_tokens);
    g3n_http_metrics_stage(s->metrics, G3N_STAGE_EMBED, j->stats.embed_seconds);
    g3n_http_metrics_stage(s->metrics, G3N_STAGE_PREFILL, j->stats.prefill_seconds);
    if (j->stats.generated_tokens > 1)
        g3n_http_metrics_stage(s->metrics, G3N_STAGE_DECODE_STEP,
                               j->stats.decode_seconds / (double)(j->stats.generated_tokens - 1));
    g3n_http_metrics_duration(s->metrics, now_seconds() - j->arrived);
    rc = G3N_OK;
done:
    g3n_client_close(client);
    return rc;
}

static const char *finish_reason(const chat_job *j)
{
    return j->stop_matched || j->stats.stopped_on_eos ? "stop" : "length";
}

static void *job_main(void *arg)
{
    chat_job *j = arg;
    g3n_http_server *s = j->server;
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    int rc = G3N_ERR;

    /* wait for a generation slot */
    pthread_mutex_lock(&s->lock);
    while (s->active >= s->options.max_sessions && !atomic_load(&j->cancelled) && !s->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->changed, &s->lock, &until);
    }
    s->queued--;
    int admitted = !atomic_load(&j->cancelled) && !s->stopping;
    if (admitted)
        s->active++;
    pthread_mutex_unlock(&s->lock);

    if (admitted) {
        g3n_detokenizer_init(&j->detokenizer, s->tokenizer, 1);
        rc = job_run(j, &e);
        g3n_detokenizer_free(&j->detokenizer);
        pthread_mutex_lock(&s->lock);
        s->active--;
        int idle = s->active == 0 && s->queued == 0;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        if (idle)
            malloc_trim(0); /* give the sessions' memory back to the system while idle */
    } else {
        g3n_http_error_set(&e, s->stopping ? 503 : 499, "server_error", s->stopping ? "shutting_down" : "cancelled",
                           NULL, s->stopping ? "the server is shutting down" : "the request was cancelled");
    }

    pthread_mutex_lock(&j->lock);
    if (rc != G3N_OK) {
        j->failed = 1;
        j->error = e;
    }
    if (j->request.stream && j->token_seen) {
        if (rc != G3N_OK) {
            char *event = g3n_http_error_event(&e);
            if (event) {
                buffer_puts(&j->out, event);
                free(event);
            }
        } else {
            append_chunk(j, NULL, NULL, 0, finish_reason(j));
            if (j->request.include_usage) {
                char usage[512];
                snprintf(usage, sizeof(usage),
                         "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\","
                         "\"system_fingerprint\":null,\"choices\":[],\"usage\":{\"prompt_tokens\":%lld,"
                         "\"completion_tokens\":%lld,\"total_tokens\":%lld}}\n\n",
                         j->id, (long long)j->created, j->model_id, (long long)j->stats.prompt_tokens,
                         (long long)j->stats.generated_tokens,
                         (long long)(j->stats.prompt_tokens + j->stats.generated_tokens));
                buffer_puts(&j->out, usage);
            }
        }
        buffer_puts(&j->out, "data: [DONE]\n\n");
    }
    j->started = 1;
    j->finished = 1;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
    job_release(j);

    pthread_mutex_lock(&s->lock);
    s->jobs--;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ------------------------------------------------------------ the handlers */

/* Per connection-request state (libmicrohttpd's con_cls). */
typedef struct request_state {
    g3n_http_endpoint endpoint;
    byte_buffer body;
    int too_large;
    double arrived;
    int key;              /* API key index (http_auth.h); -1: none */
    int refused;          /* answered at the headers (401, 429): the body is discarded */
    int holds_generation; /* a per-key generation slot, given back in on_completed */
    int streaming;          /* an SSE answer was queued: logged when it ends (200, or 499 if the client left) */
    char method[8], url[120];
} request_state;

/* Which requests need an API key: /v1/... and, unless declared open, /metrics. */
static int needs_key(const g3n_http_server *s, g3n_http_endpoint endpoint, const char *url)
{
    if (!s->options.auth || endpoint == G3N_ENDPOINT_HEALTH)
        return 0;
    if (endpoint == G3N_ENDPOINT_METRICS)
        return !g3n_http_auth_metrics_open(s->options.auth);
    return strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0;
}

/* At the headers: a missing or unknown key gets 401 (OpenAI's invalid_api_key),
 * a key over its requests per minute 429. Returns 1 when answered. */
static int refuse_at_headers(g3n_http_server *s, struct MHD_Connection *connection, const char *url,
                             request_state *st, enum MHD_Result *rc)
{
    st->key = -1;
    if (!needs_key(s, st->endpoint, url))
        return 0;
    g3n_http_error e;
    st->key = g3n_http_auth_identify(
        s->options.auth, MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
    if (st->key < 0) {
        g3n_http_error_set(&e, 401, "invalid_request_error", "invalid_api_key", NULL,
                           "Incorrect or missing API key: send the header 'Authorization: Bearer YOUR_KEY' with a "
                           "key this server was given (--api-key, --api-keys or G3N_API_KEY)");
        cJSON *json = g3n_http_error_object(&e);
        char *text = json ? cJSON_PrintUnformatted(json) : NULL;
        cJSON_Delete(json);
        size_t length = text ? strlen(text) : 0;
        struct MHD_Response *response =
            text ? MHD_create_response_from_buffer(length, text, MHD_RESPMEM_MUST_FREE) : NULL;
        if (!response) {
            free(text);
            *rc = MHD_NO;
        } else {
            MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
            MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"g3n\"");
            *rc = MHD_queue_response(connection, 401, response);
            MHD_destroy_response(response);
        }
        st->refused = 1;
        g3n_http_metrics_request(s->metrics, st->endpoint, 401);
        return 1;
    }
    int wait = g3n_http_auth_admit_request(s->options.auth, st->key);
    if (wait > 0) {
        g3n_http_error_set(&e, 429, "rate_limit_exceeded", "rate_limit_exceeded", NULL,
                           "the key '%s' is over its %s; retry in %d s", g3n_http_auth_key_name(s->options.auth, st->key),
                           "requests per minute (--rate-limit)", wait);
        *rc = g3n_http_send_error(connection, &e, wait);
        st->refused = 1;
        g3n_http_metrics_request(s->metrics, st->endpoint, 429);
        return 1;
    }
    return 0;
}

static void waitable_deadline(struct timespec *until, long milliseconds)
{
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_nsec += milliseconds * 1000000L;
    while (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
}

/* Stream reader: hands out the job's SSE bytes as they come; blocks (this is
 * the connection's own thread) and watches for the client going away. */
static ssize_t stream_reader(void *cls, uint64_t position, char *buffer, size_t max)
{
    (void)position;
    chat_job *j = cls;
    pthread_mutex_lock(&j->lock);
    while (j->read_position == j->out.length && !j->finished) {
        struct timespec until;
        waitable_deadline(&until, 100);
        if (pthread_cond_timedwait(&j->changed, &j->lock, &until) == ETIMEDOUT && j->server->stopping) {
            pthread_mutex_unlock(&j->lock);
            atomic_store(&j->cancelled, 1);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    if (j->read_position < j->out.length) {
        size_t n = j->out.length - j->read_position;
        if (n > max)
            n = max;
        memcpy(buffer, j->out.data + j->read_position, n);
        j->read_position += n;
        if (j->read_position == j->out.length)
            j->read_position = j->out.length = 0;
        pthread_mutex_unlock(&j->lock);
        return (ssize_t)n;
    }
    pthread_mutex_unlock(&j->lock);
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* The response is done with (sent, or the client went away): cancels a
 * generation still running, so its decoder session ends. */
static void stream_free(void *cls)
{
    chat_job *j = cls;
    atomic_store(&j->cancelled, 1);
    job_release(j);
}

static cJSON *usage_object(const chat_job *j)
{
    cJSON *usage = cJSON_CreateObject();
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)j->stats.prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", (double)j->stats.generated_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)(j->stats.prompt_tokens + j->stats.generated_tokens));
    return usage;
}

static enum MHD_Result answer_complete(g3n_http_server *s, struct MHD_Connection *connection, chat_job *j)
{
    (void)s; /* the answer names j->model_id */
    if (j->request.transcription) {
        if (j->request.response_text) {
            char *text = malloc(j->out.length + 2);
            if (!text)
                return MHD_NO;
            memcpy(text, j->out.data ? j->out.data : "", j->out.length);
            text[j->out.length] = '\n';
            text[j->out.length + 1] = '\0';
            return g3n_http_send_body(connection, 200, "text/plain; charset=utf-8", text, j->out.length + 1, 0);
        }
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "text", j->out.data ? j->out.data : "");
        cJSON *usage = cJSON_AddObjectToObject(root, "usage");
        cJSON_AddStringToObject(usage, "type", "tokens");
        cJSON_AddNumberToObject(usage, "input_tokens", (double)j->stats.prompt_tokens);
        cJSON_AddNumberToObject(usage, "output_tokens", (double)j->stats.generated_tokens);
        cJSON_AddNumberToObject(usage, "total_tokens", (double)(j->stats.prompt_tokens + j->stats.generated_tokens));
        return g3n_http_send_json(connection, 200, root, 0);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object", "chat.completion");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", j->model_id);
    cJSON_AddNullToObject(root, "system_fingerprint");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    cJSON *message = cJSON_AddObjectToObject(choice, "message");
    cJSON_AddStringToObject(message, "role", "assistant");
    cJSON_AddStringToObject(message, "content", j->out.data ? j->out.data : "");
    cJSON_AddNullToObject(choice, "logprobs");
    cJSON_AddStringToObject(choice, "finish_reason", finish_reason(j));
    cJSON_AddItemToArray(choices, choice);
    cJSON_AddItemToObject(root, "usage", usage_object(j));
    return g3n_http_send_json(connection, 200, root, 0);
}

/* Template, context check, admission, the job thread; then answers (waits for
 * the first token or the whole answer). */
static enum MHD_Result handle_generation(g3n_http_server *s, struct MHD_Connection *connection, request_state *st,
                                         int *status)
{
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    chat_job *j = calloc(1, sizeof(*j));
    if (!j) {
        g3n_http_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        *status = 500;
        return send_error(s, connection, &e);
    }
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancelled, 0);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->changed, NULL);
    j->server = s;
    j->endpoint = st->endpoint;
    j->arrived = st->arrived;
    j->created = time(NULL);
    g3n_http_limits limits = {s->allow_dir[0] ? s->allow_dir : NULL, s->options.max_media_bytes, 0, 0};
    int parsed;
    if (st->endpoint == G3N_ENDPOINT_CHAT) {
        parsed = g3n_http_parse_chat(st->body.data ? st->body.data : "", st->body.length, &limits, &j->request, &e);
    } else {
        const char *type = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        parsed = g3n_http_parse_transcription(type, (const uint8_t *)(st->body.data ? st->body.data : ""),
                                              st->body.length, &limits, &j->request, &e);
    }
    free(st->body.data); /* parsed requests own copies of what they need */
    memset(&st->body, 0, sizeof(st->body));
    if (parsed != G3N_OK)
        goto fail;
    if (resolve_model(s, j->request.model, j->model_id, sizeof(j->model_id), j->submodel) != G3N_OK) {
        g3n_http_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                           "the model '%.64s' does not exist: this server serves '%s'%s (GET /v1/models)",
                           j->request.model, s->model_name, s->submodel_count ? " and its sub-models" : "");
        goto fail;
    }
    if (g3n_stop_init(&j->stop, j->request.stops, j->request.stop_count, NULL) != G3N_OK) {
        g3n_http_error_set(&e, 400, "invalid_request_error", "invalid_value", "stop", "bad stop strings");
        goto fail;
    }
    g3n_chat_special_ids special;
    g3n_chat_special_ids_from_config(&special, s->config);
    g3n_error err;
    /* audio over 30 s: decoded here and cut into 30 s windows, each its own audio segment */
    if (g3n_pipeline_window_media(j->request.media, j->request.media_count, &j->windows, &err) != G3N_OK ||
        g3n_pipeline_expand_messages(j->request.messages, j->request.message_count, j->windows.segments,
                                     j->windows.input_count, &j->windowed_messages, &j->windowed_items,
                                     &err) != G3N_OK) {
        classify_error(err.message, &e);
        goto fail;
    }
    if (g3n_chat_template_apply(s->tokenizer, &special, j->windowed_messages, j->request.message_count, 1, &j->prompt,
                                &err) != G3N_OK) {
        g3n_http_error_set(&e, 400, "invalid_request_error", "invalid_messages", "messages", "%s", err.message);
        goto fail;
    }
    int64_t prompt_tokens = j->prompt.ids.count;
    if (prompt_tokens >= s->context) {
        g3n_http_error_set(&e, 400, "invalid_request_error", "context_length_exceeded", "messages",
                           "this model's maximum context length is %lld tokens; the messages are %lld tokens "
                           "(shorten them, or send fewer or smaller images and clips)",
                           (long long)s->context, (long long)prompt_tokens);
        goto fail;
    }
    int64_t room = s->context - prompt_tokens;
    if (j->request.max_tokens > 0 && j->request.max_tokens > room) {
        g3n_http_error_set(&e, 400, "invalid_request_error", "context_length_exceeded", "max_tokens",
                           "this model's maximum context length is %lld tokens; %lld in the messages plus "
                           "max_tokens %lld do not fit (at most %lld)",
                           (long long)s->context, (long long)prompt_tokens, (long long)j->request.max_tokens,
                           (long long)room);
        goto fail;
    }
    j->max_new_tokens = j->request.max_tokens > 0 ? j->request.max_tokens : s->options.max_tokens;
    if (j->max_new_tokens > s->options.max_tokens)
        j->max_new_tokens = s->options.max_tokens;
    if (j->max_new_tokens > room)
        j->max_new_tokens = room;
    /* sampling: the request's, else the server's defaults (generation_config.json) */
    j->sampling = s->options.sampling;
    if (j->request.has_temperature) {
        j->sampling.do_sample = j->request.temperature > 0.0;
        j->sampling.temperature = j->request.temperature > 0.0 ? (float)j->request.temperature : 1.0f;
    }
    if (j->request.top_p < 1.0)
        j->sampling.top_p = (float)j->request.top_p;
    if (j->request.top_k > 0)
        j->sampling.top_k = (int)j->request.top_k;
    if (j->request.min_p > 0.0)
        j->sampling.min_p = (float)j->request.min_p;
    uint64_t serial = atomic_fetch_add(&s->next_id, 1);
    j->sampling.seed = j->request.has_seed ? j->request.seed
                                           : (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ serial;
    /* 128 random bits, as live session ids: a completion's id tells nothing of the server's other requests */
    if (g3n_http_random_id(j->id, sizeof(j->id), j->request.transcription ? "trsc-" : "chatcmpl-") != G3N_OK) {
        g3n_http_error_set(&e, 500, "server_error", NULL, NULL, "no random bytes for the request's id");
        goto fail;
    }

    /* admission: a slot, or a place in the queue, or 429 */
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        g3n_http_metrics_rejected(s->metrics, 1);
        g3n_http_error_set(&e, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        goto fail;
    }
    if (s->active + s->queued >= s->options.max_sessions + s->options.queue) {
        int active = s->active, queued = s->queued;
        pthread_mutex_unlock(&s->lock);
        g3n_http_metrics_rejected(s->metrics, 0);
        g3n_http_error_set(&e, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                           "the server is at capacity: %d generations running and %d waiting (--max-sessions %d, "
                           "--queue %d); retry later",
                           active, queued, s->options.max_sessions, s->options.queue);
        goto fail;
    }
    s->queued++;
    s->jobs++;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&j->refs, 1); /* the job thread's */
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int created = pthread_create(&thread, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (created != 0) {
        pthread_mutex_lock(&s->lock);
        s->queued--;
        s->jobs--;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_sub(&j->refs, 1);
        g3n_http_error_set(&e, 503, "server_error", "service_unavailable", NULL, "cannot start a thread: %s",
                           strerror(created));
        goto fail;
    }

    /* wait: for the first token (stream) or the end; a client gone cancels */
    int fd = connection_fd(connection);
    pthread_mutex_lock(&j->lock);
    while (!(j->request.stream ? j->started : j->finished)) {
        struct timespec until;
        waitable_deadline(&until, 100);
        if (pthread_cond_timedwait(&j->changed, &j->lock, &until) == ETIMEDOUT &&
            (peer_gone(fd) || s->stopping)) {
            pthread_mutex_unlock(&j->lock);
            atomic_store(&j->cancelled, 1);
            job_release(j);
            *status = 499;
            return MHD_NO; /* close the connection */
        }
    }
    int plain_error = j->failed && (!j->request.stream || !j->token_seen); /* nothing streamed: an HTTP error */
    if (plain_error)
        e = j->error;
    pthread_mutex_unlock(&j->lock);
    if (plain_error) {
        job_release(j);
        *status = e.status;
        return send_error(s, connection, &e);
    }
    if (!j->request.stream) {
        enum MHD_Result rc = answer_complete(s, connection, j);
        job_release(j);
        *status = 200;
        return rc;
    }
    struct MHD_Response *response =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
    if (!response) {
        atomic_store(&j->cancelled, 1);
        job_release(j);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(response, "X-Accel-Buffering", "no");
    st->streaming = 1;
    enum MHD_Result rc = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response); /* the connection holds it (and our reference, freed in stream_free) */
    *status = 200;
    return rc;

fail:
    *status = e.status;
    job_release(j);
    return send_error(s, connection, &e);
}

static void gauges_now(g3n_http_server *s, g3n_http_gauges *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_lock(&s->lock);
    g->active = s->active;
    g->queued = s->queued;
    pthread_mutex_unlock(&s->lock);
    g3n_broker_stats stats;
    g3n_broker_get_stats(s->broker, &stats);
    for (int role = 0; role < G3N_ROLE_COUNT; role++)
        g->live_workers[role] = stats.live_workers[role];
}

static enum MHD_Result handle_health(g3n_http_server *s, struct MHD_Connection *connection, int *status)
{
    g3n_http_gauges g;
    gauges_now(s, &g);
    int ready = g.live_workers[G3N_ROLE_EMBEDDER] > 0 && g.live_workers[G3N_ROLE_DECODER] > 0 && !s->stopping;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", s->stopping ? "stopping" : ready ? "ok" : "unavailable");
    cJSON_AddStringToObject(root, "model", s->model_name);
    cJSON *workers = cJSON_AddObjectToObject(root, "workers");
    for (int role = 1; role < G3N_ROLE_COUNT; role++)
        if (role != G3N_ROLE_ORCHESTRATOR)
            cJSON_AddNumberToObject(workers, g3n_role_name(role), g.live_workers[role]);
    cJSON_AddNumberToObject(root, "active", g.active);
    cJSON_AddNumberToObject(root, "queued", g.queued);
    cJSON_AddNumberToObject(root, "max_sessions", s->options.max_sessions);
    cJSON_AddNumberToObject(root, "queue", s->options.queue);
    cJSON_AddNumberToObject(root, "context", (double)s->context);
    *status = ready ? 200 : 503;
    return g3n_http_send_json(connection, *status, root, ready ? 0 : s->options.retry_after_seconds);
}

/* A request's model: "" or model_name -> the full model; "model_name:<sub>" or "<sub>" -> that MatFormer
 * sub-model. Fills the id answers carry and the decoder's sub-model name ("" for the full model). */
static int resolve_model(const g3n_http_server *s, const char *requested, char *id, size_t id_size,
                         char submodel[64])
{
    submodel[0] = 0;
    snprintf(id, id_size, "%s", s->model_name);
    if (!requested[0] || strcmp(requested, s->model_name) == 0)
        return G3N_OK;
    const size_t base = strlen(s->model_name);
    const char *name = strncmp(requested, s->model_name, base) == 0 && requested[base] == ':' ? requested + base + 1
                                                                                               : requested;
    for (int i = 0; i < s->submodel_count; i++)
        if (strcmp(name, s->submodels[i]) == 0) {
            snprintf(submodel, 64, "%s", s->submodels[i]);
            snprintf(id, id_size, "%s:%s", s->model_name, s->submodels[i]);
            return G3N_OK;
        }
    return G3N_ERR;
}

static cJSON *model_object(g3n_http_server *s, const char *id, const char *submodel)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    if (submodel[0]) { /* MatFormer: runs on the same weights */
        cJSON_AddStringToObject(m, "parent", s->model_name);
        cJSON_AddStringToObject(m, "submodel", submodel);
    }
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->started);
    cJSON_AddStringToObject(m, "owned_by", "g3n");
    cJSON_AddNumberToObject(m, "max_model_len", (double)s->context);
    return m;
}

static enum MHD_Result handle_models(g3n_http_server *s, struct MHD_Connection *connection, const char *url,
                                     int *status)
{
    char id[200], submodel[64];
    if (strncmp(url, "/v1/models/", 11) == 0) {
        if (!url[11] || resolve_model(s, url + 11, id, sizeof(id), submodel) != G3N_OK) {
            g3n_http_error e;
            g3n_http_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                               "the model '%.64s' does not exist: this server serves '%s'", url + 11, s->model_name);
            *status = 404;
            return send_error(s, connection, &e);
        }
        *status = 200;
        return g3n_http_send_json(connection, 200, model_object(s, id, submodel), 0);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON_AddItemToArray(data, model_object(s, s->model_name, ""));
    for (int i = 0; i < s->submodel_count; i++) {
        snprintf(id, sizeof(id), "%s:%s", s->model_name, s->submodels[i]);
        cJSON_AddItemToArray(data, model_object(s, id, s->submodels[i]));
    }
    *status = 200;
    return g3n_http_send_json(connection, 200, root, 0);
}

static enum MHD_Result handle_metrics(g3n_http_server *s, struct MHD_Connection *connection, int *status)
{
    g3n_http_gauges g;
    gauges_now(s, &g);
    char *text;
    size_t size;
    if (g3n_http_metrics_render(s->metrics, &g, &text, &size, NULL) != G3N_OK)
        return MHD_NO;
    if (s->options.auth) { /* per-key counters, by key name */
        char *keys = g3n_http_auth_metrics(s->options.auth);
        char *joined = keys ? realloc(text, size + strlen(keys) + 1) : NULL;
        if (joined) {
            memcpy(joined + size, keys, strlen(keys) + 1);
            size += strlen(keys);
            text = joined;
        }
        free(keys);
    }
    if (s->options.prefix_cache && g3n_prefix_cache_append_metrics(s->options.prefix_cache, &text, &size) != G3N_OK) {
        free(text);
        return MHD_NO;
    }
    *status = 200;
    return g3n_http_send_body(connection, 200, "text/plain; version=0.0.4; charset=utf-8", text, size, 0);
}

static g3n_http_endpoint route(const char *url)
{
    if (strcmp(url, "/v1/chat/completions") == 0)
        return G3N_ENDPOINT_CHAT;
    if (strcmp(url, "/v1/audio/transcriptions") == 0)
        return G3N_ENDPOINT_TRANSCRIPTIONS;
    if (strcmp(url, "/v1/models") == 0 || strncmp(url, "/v1/models/", 11) == 0)
        return G3N_ENDPOINT_MODELS;
    if (strcmp(url, "/health") == 0)
        return G3N_ENDPOINT_HEALTH;
    if (strcmp(url, "/metrics") == 0)
        return G3N_ENDPOINT_METRICS;
    if (g3n_http_live_matches(url))
        return G3N_ENDPOINT_LIVE;
    return G3N_ENDPOINT_OTHER;
}

/* A generation (a chat, a transcription, a live question) takes one of its
 * key's slots for its whole request; over --max-generations-per-key, 429. */
static int generation_refused(g3n_http_server *s, struct MHD_Connection *connection, request_state *st,
                              const char *method, const char *url, int *status, enum MHD_Result *rc)
{
    if (!s->options.auth || st->key < 0 || strcmp(method, "POST") != 0)
        return 0;
    size_t n = strlen(url);
    int generation = st->endpoint == G3N_ENDPOINT_CHAT || st->endpoint == G3N_ENDPOINT_TRANSCRIPTIONS ||
                     (st->endpoint == G3N_ENDPOINT_LIVE && n > 4 && strcmp(url + n - 4, "/ask") == 0);
    if (!generation)
        return 0;
    if (g3n_http_auth_begin_generation(s->options.auth, st->key) == 0) {
        st->holds_generation = 1;
        return 0;
    }
    g3n_http_error e;
    g3n_http_error_set(&e, 429, "rate_limit_exceeded", "rate_limit_exceeded", NULL,
                       "the key '%s' is running its limit of generations at once (--max-generations-per-key); "
                       "retry when one ends",
                       g3n_http_auth_key_name(s->options.auth, st->key));
    *status = 429;
    *rc = g3n_http_send_error(connection, &e, s->options.retry_after_seconds);
    return 1;
}

/* ------------------------------------------------- connections and deadlines */

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    g3n_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        open_connection *c = calloc(1, sizeof(*c));
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!c || !info) {
            free(c);
            return;
        }
        c->fd = info->connect_fd;
        c->receiving = 1;
        c->deadline = now_seconds() + s->options.request_seconds;
        pthread_mutex_lock(&s->connections_lock);
        c->next = s->connections;
        if (s->connections)
            s->connections->previous = c;
        s->connections = c;
        pthread_mutex_unlock(&s->connections_lock);
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        open_connection *c = *socket_context;
        pthread_mutex_lock(&s->connections_lock);
        if (c->previous)
            c->previous->next = c->next;
        else
            s->connections = c->next;
        if (c->next)
            c->next->previous = c->previous;
        pthread_mutex_unlock(&s->connections_lock);
        free(c);
        *socket_context = NULL;
    }
}

/* The connection's request is in (answering: no deadline) or a new one may come (keep-alive). */
static void connection_receiving(g3n_http_server *s, struct MHD_Connection *connection, int receiving, int64_t body)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!info || !info->socket_context)
        return;
    open_connection *c = info->socket_context;
    pthread_mutex_lock(&s->connections_lock);
    c->receiving = receiving;
    if (receiving && body >= 0) /* the headers are in: the body's deadline, by its size */
        c->deadline = now_seconds() + s->options.request_seconds + (double)body / G3N_HTTP_MIN_BODY_RATE;
    else if (receiving) /* waiting for the next request on a kept-alive connection */
        c->deadline = now_seconds() + s->options.request_seconds;
    pthread_mutex_unlock(&s->connections_lock);
}

/* Every 200 ms: a connection still receiving its request past its deadline is
 * shut down (its thread's read ends, libmicrohttpd closes it). */
static void *reaper_main(void *arg)
{
    g3n_http_server *s = arg;
    while (!atomic_load(&s->reaper_stop)) {
        usleep(200000);
        const double now = now_seconds();
        pthread_mutex_lock(&s->connections_lock);
        for (open_connection *c = s->connections; c; c = c->next)
            if (c->receiving && now > c->deadline) {
                shutdown(c->fd, SHUT_RDWR);
                c->receiving = 0;
            }
        pthread_mutex_unlock(&s->connections_lock);
    }
    return NULL;
}

/* libmicrohttpd's %HH decoding, but a URL or argument holding %00 is left
 * undecoded: a NUL ended the C string early, so "ID%00junk" named session ID. */
static size_t unescape_refusing_nul(void *cls, struct MHD_Connection *connection, char *text)
{
    (void)cls;
    (void)connection;
    for (const char *p = text; (p = strchr(p, '%')) != NULL; p++)
        if (p[1] == '0' && p[2] == '0')
            return strlen(text);
    return MHD_http_unescape(text);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    g3n_http_server *s = cls;
    request_state *st = *con_cls;
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    if (!st) { /* first call: headers only */
        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        st->endpoint = route(url);
        st->arrived = now_seconds();
        *con_cls = st;
        enum MHD_Result refused_rc;
        if (refuse_at_headers(s, connection, url, st, &refused_rc))
            return refused_rc;
        const char *length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        connection_receiving(s, connection, 1, length ? strtoll(length, NULL, 10) : 0);
        /* a body over the limit by at most G3N_HTTP_DRAIN_BYTES is read and dropped, then answered 413: a
         * client that writes its whole body before reading (the openai client) saw its connection reset by
         * an early answer ("Connection error") and retried the upload; a larger one is refused at once */
        if (length && strtoll(length, NULL, 10) > s->options.max_body_bytes &&
            strtoll(length, NULL, 10) - s->options.max_body_bytes <= G3N_HTTP_DRAIN_BYTES) {
            st->too_large = 1;
            return MHD_YES;
        }
        if (length && strtoll(length, NULL, 10) > s->options.max_body_bytes) {
            st->too_large = 1;
            g3n_http_error_set(&e, 413, "invalid_request_error", "request_too_large", NULL,
                               "the request body is %s bytes; the limit is %lld (--max-body-mb)", length,
                               (long long)s->options.max_body_bytes);
            g3n_http_metrics_request(s->metrics, st->endpoint, 413);
            return send_error(s, connection, &e);
        }
        return MHD_YES;
    }
    if (st->refused) { /* answered at the headers: nothing of the body is kept */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) { /* a piece of the body */
        if (!st->too_large && (int64_t)(st->body.length + *upload_data_size) > s->options.max_body_bytes) {
            st->too_large = 1;
            free(st->body.data);
            memset(&st->body, 0, sizeof(st->body));
        }
        if (!st->too_large && buffer_append(&st->body, upload_data, *upload_data_size) != G3N_OK)
            st->too_large = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    connection_receiving(s, connection, 0, 0); /* the request is in: answering has no deadline here */
    int status = 500;
    enum MHD_Result rc;
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int is_post = strcmp(method, "POST") == 0;
    if (st->too_large) {
        g3n_http_error_set(&e, 413, "invalid_request_error", "request_too_large", NULL,
                           "the request body is over the limit of %lld bytes", (long long)s->options.max_body_bytes);
        status = 413;
        rc = send_error(s, connection, &e);
    } else if (st->endpoint == G3N_ENDPOINT_OTHER && g3n_http_static_find(url)) {
        rc = g3n_http_static_handle(connection, method, g3n_http_static_find(url), &status); /* the web page */
    } else if (st->endpoint == G3N_ENDPOINT_OTHER) {
        g3n_http_error_set(&e, 404, "invalid_request_error", "not_found", NULL,
                           "no such endpoint: %s %.200s (POST /v1/chat/completions, POST /v1/audio/transcriptions, "
                           "GET /v1/models, /health, /metrics, /v1/live/sessions)",
                           method, url);
        status = 404;
        rc = send_error(s, connection, &e);
    } else if (generation_refused(s, connection, st, method, url, &status, &rc)) {
        /* answered: the key has its generations at once */
    } else if (st->endpoint == G3N_ENDPOINT_LIVE) {
        if (s->options.live) {
            rc = g3n_http_live_handle_owned(s->options.live, connection, method, url,
                                            st->key >= 0 ? g3n_http_auth_key_name(s->options.auth, st->key) : NULL,
                                            st->body.data ? st->body.data : "", st->body.length, &status);
        } else {
            g3n_http_error_set(&e, 501, "invalid_request_error", "not_implemented", NULL,
                               "live sessions are off on this server (--live-sessions 0)");
            status = 501;
            rc = send_error(s, connection, &e);
        }
    } else if ((st->endpoint == G3N_ENDPOINT_CHAT || st->endpoint == G3N_ENDPOINT_TRANSCRIPTIONS) ? !is_post
                                                                                                    : !is_get) {
        g3n_http_error_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "%s is not allowed on %s",
                           method, url);
        status = 405;
        rc = send_error(s, connection, &e);
    } else if (st->endpoint == G3N_ENDPOINT_HEALTH) {
        rc = handle_health(s, connection, &status);
    } else if (st->endpoint == G3N_ENDPOINT_METRICS) {
        rc = handle_metrics(s, connection, &status);
    } else if (st->endpoint == G3N_ENDPOINT_MODELS) {
        rc = handle_models(s, connection, url, &status);
    } else {
        rc = handle_generation(s, connection, st, &status);
    }
    if (st->streaming && rc == MHD_YES) { /* counted and logged when the stream ends (on_completed) */
        snprintf(st->method, sizeof(st->method), "%s", method);
        snprintf(st->url, sizeof(st->url), "%s", url);
        return rc;
    }
    st->streaming = 0;
    g3n_http_metrics_request(s->metrics, st->endpoint, status);
    if (!s->options.quiet && st->endpoint != G3N_ENDPOINT_HEALTH && st->endpoint != G3N_ENDPOINT_METRICS)
        fprintf(stderr, "g3n serve: %s %s -> %d (%.3f s)\n", method, url, status, now_seconds() - st->arrived);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    g3n_http_server *s = cls;
    connection_receiving(cls, connection, 1, -1); /* kept alive: the next request's headers have a deadline */
    request_state *st = *con_cls;
    if (st && st->holds_generation)
        g3n_http_auth_end_generation(s->options.auth, st->key);
    if (st && st->streaming) { /* a client that left mid-stream is 499, not the 200 its headers said */
        const int status = code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 200 : 499;
        g3n_http_metrics_request(s->metrics, st->endpoint, status);
        if (!s->options.quiet)
            fprintf(stderr, "g3n serve: %s %s -> %d%s (%.3f s)\n", st->method, st->url, status,
                    status == 499 ? " (the client left mid-stream)" : "", now_seconds() - st->arrived);
    }
    if (st) {
        free(st->body.data);
        free(st);
        *con_cls = NULL;
    }
}

/* ------------------------------------------------------------- start / stop */

static int loopback_address(const struct sockaddr *address)
{
    if (address->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)address)->sin_addr.s_addr) >> 24) == 127;
    if (address->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)address)->sin6_addr);
    return 0;
}

/* HTTPS (libmicrohttpd's GnuTLS): the PEM texts are copied into s. */
static int tls_setup(g3n_http_server *s, const g3n_http_options *options, unsigned *flags, g3n_error *err)
{
    if (!options || (!options->tls_cert_pem && !options->tls_key_pem))
        return G3N_OK;
    if (!options->tls_cert_pem || !options->tls_key_pem)
        return g3n_error_set(err, "http: TLS needs both --tls-cert and --tls-key");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return g3n_error_set(err, "http: this libmicrohttpd was built without TLS (GnuTLS)");
    s->tls_cert = strdup(options->tls_cert_pem);
    s->tls_key = strdup(options->tls_key_pem);
    if (!s->tls_cert || !s->tls_key)
        return g3n_error_set(err, "http: out of memory");
    *flags |= MHD_USE_TLS;
    return G3N_OK;
}

int g3n_http_server_start(g3n_http_server **out, g3n_broker *broker, const g3n_model_config *config,
                          const g3n_tokenizer *tokenizer, const g3n_http_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return g3n_error_set(err, "http: out of memory");
    s->options = options ? *options : g3n_http_default_options();
    g3n_http_options d = g3n_http_default_options();
    if (!s->options.host)
        s->options.host = d.host;
    if (s->options.max_sessions <= 0)
        s->options.max_sessions = d.max_sessions;
    if (s->options.queue < 0)
        s->options.queue = 0;
    if (s->options.max_body_bytes <= 0)
        s->options.max_body_bytes = d.max_body_bytes;
    if (s->options.max_media_bytes <= 0)
        s->options.max_media_bytes = d.max_media_bytes;
    if (s->options.max_tokens <= 0)
        s->options.max_tokens = d.max_tokens;
    if (s->options.max_connections <= 0)
        s->options.max_connections = d.max_connections;
    if (s->options.retry_after_seconds <= 0)
        s->options.retry_after_seconds = d.retry_after_seconds;
    snprintf(s->model_name, sizeof(s->model_name), "%s",
             s->options.model_name && s->options.model_name[0] ? s->options.model_name : d.model_name);
    if (s->options.allow_dir)
        snprintf(s->allow_dir, sizeof(s->allow_dir), "%s", s->options.allow_dir);
    for (int i = 0; i < s->options.submodel_count && i < G3N_HTTP_MAX_SUBMODELS; i++)
        snprintf(s->submodels[s->submodel_count++], sizeof(s->submodels[0]), "%s", s->options.submodels[i]);
    s->options.submodels = NULL;
    s->options.host = NULL; /* borrowed strings are not kept */
    s->options.model_name = NULL;
    s->options.allow_dir = NULL;
    s->broker = broker;
    s->config = config;
    s->tokenizer = tokenizer;
    s->context = config->text.max_position_embeddings;
    if (s->options.max_context > 0 && s->options.max_context < s->context)
        s->context = s->options.max_context;
    s->started = time(NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    atomic_init(&s->stopping, 0);
    atomic_init(&s->next_id, 1);
    if (g3n_http_metrics_create(&s->metrics, err) != G3N_OK) {
        g3n_http_server_stop(s);
        return G3N_ERR;
    }

    const char *host = options && options->host ? options->host : d.host;
    struct addrinfo hints, *address = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof(port), "%d", options ? options->port : d.port);
    int gai = getaddrinfo(host, port, &hints, &address);
    if (gai != 0) {
        g3n_http_server_stop(s);
        return g3n_error_set(err, "http: cannot resolve --host %s: %s", host, gai_strerror(gai));
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    if (address->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls_setup(s, options, &flags, err) != G3N_OK) {
        freeaddrinfo(address);
        g3n_http_server_stop(s);
        return G3N_ERR;
    }
    if (!s->options.auth && !loopback_address(address->ai_addr))
        fprintf(stderr,
                "g3n: WARNING: the HTTP API listens on %s with no API key: anyone who can reach it can use it "
                "(give --api-key KEY, --api-keys FILE or G3N_API_KEY)\n",
                host);
    struct MHD_OptionItem tls_options[] = {
        {s->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    if (s->options.request_seconds <= 0)
        s->options.request_seconds = d.request_seconds;
    if (s->options.max_connections_per_address <= 0)
        s->options.max_connections_per_address = s->options.max_connections - s->options.max_connections / 4;
    if (s->options.max_connections_per_address < 1)
        s->options.max_connections_per_address = 1;
    pthread_mutex_init(&s->connections_lock, NULL);
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        freeaddrinfo(address);
        g3n_http_server_stop(s);
        return g3n_error_set(err, "http: cannot start a thread");
    }
    s->reaper_started = 1;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, address->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->options.max_connections,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->options.max_connections_per_address,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED,
                                 on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape_refusing_nul, NULL,
                                 MHD_OPTION_ARRAY, tls_options, MHD_OPTION_END);
    freeaddrinfo(address);
    if (!s->daemon) {
        int saved = errno;
        g3n_http_server_stop(s);
        return g3n_error_set(err, "http: cannot listen on %s:%s (%s)", host, port,
                             saved ? strerror(saved)
                             : flags & MHD_USE_TLS ? "libmicrohttpd refused: check that --tls-cert and --tls-key "
                                                     "are a PEM certificate and its key"
                                                   : "libmicrohttpd refused");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : (options ? options->port : d.port);
    *out = s;
    return G3N_OK;
}

int g3n_http_server_port(const g3n_http_server *s)
{
    return s->port;
}

void g3n_http_server_counts(g3n_http_server *s, int *active, int *queued, int *jobs)
{
    pthread_mutex_lock(&s->lock);
    if (active)
        *active = s->active;
    if (queued)
        *queued = s->queued;
    if (jobs)
        *jobs = s->jobs;
    pthread_mutex_unlock(&s->lock);
}

void g3n_http_server_stop(g3n_http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (s->daemon)
        MHD_stop_daemon(s->daemon); /* joins the connection threads (their waits see `stopping`) */
    if (s->reaper_started) {
        atomic_store(&s->reaper_stop, 1);
        pthread_join(s->reaper, NULL);
        pthread_mutex_destroy(&s->connections_lock);
    }
    pthread_mutex_lock(&s->lock);
    while (s->jobs > 0)
        pthread_cond_wait(&s->changed, &s->lock);
    pthread_mutex_unlock(&s->lock);
    g3n_http_metrics_free(s->metrics);
    free(s->tls_cert);
    if (s->tls_key)
        memset(s->tls_key, 0, strlen(s->tls_key));
    free(s->tls_key);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->changed);
    free(s);
}
