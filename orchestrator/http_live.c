/* http_live.c - the live-session endpoints (http_live.h). */
#define _GNU_SOURCE
#include "http_live.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audio_decode.h"
#include "http_codec.h"
#include "http_reply.h"
#include "http_request.h"
#include "http_auth.h"
#include "live_pipeline.h"
#include "ops.h"
#include "pipeline.h"

#define ID_SIZE 48

/* One session of the table. `busy` (not a mutex: a streamed answer ends on
 * another thread than the request that started it) makes requests on it run
 * one at a time; refs counts the requests holding or waiting for it. */
typedef struct live_entry {
    char id[ID_SIZE];
    g3n_live_pipeline *session;
    int refs;       /* guarded by live->lock */
    int busy;       /* guarded by live->lock */
    int removed;    /* deleted or expired: no longer in the table */
    time_t created;
    double last_used;
    int64_t context;
    char owner[64]; /* the API key name that made it ("" without keys): only it sees and uses it */
} live_entry;

/* 1 when a request made with the key `owner` (NULL: keys are off) may see e. */
static int owned_by(const live_entry *e, const char *owner)
{
    return !owner || strcmp(e->owner, owner) == 0;
}

struct g3n_http_live {
    const g3n_model_config *config;
    g3n_broker *broker;         /* each request thread opens its own client of it */
    const g3n_tokenizer *tokenizer;
    g3n_http_live_options options;
    char model_name[128];
    char preprocessor[1024];
    int has_vision, has_audio;

    pthread_mutex_t lock;       /* the table, refs, busy */
    pthread_cond_t changed;
    live_entry **entries;
    int count;
    int reserved;               /* sessions being made (counted against the limit) */
    atomic_uint_fast64_t next_id;
    atomic_int stopping;
    pthread_t reaper;
    int reaper_started;
    int streams;                /* streamed answers still running (guarded by lock) */
};

g3n_http_live_options g3n_http_live_default_options(void)
{
    g3n_http_live_options o;
    memset(&o, 0, sizeof(o));
    o.max_sessions = 4;
    o.idle_seconds = 600;
    o.max_media_bytes = 16LL << 20;
    o.max_tokens = 256;
    o.sampling = g3n_sampling_default_params();
    o.sampling.do_sample = 0;
    return o;
}

int g3n_http_live_matches(const char *url)
{
    return strcmp(url, "/v1/live/sessions") == 0 || strncmp(url, "/v1/live/", 9) == 0;
}

/* ------------------------------------------------------------- responses */

static enum MHD_Result send_error(struct MHD_Connection *connection, const g3n_http_error *e, int *status)
{
    *status = e->status;
    return g3n_http_send_error(connection, e, 0);
}

#define INVALID "invalid_request_error"

/* ------------------------------------------------------------- the table */

/* Frees the session; its decoder session and audio stream are ended through a client of this thread. */
static void entry_free(g3n_http_live *live, live_entry *e)
{
    if (!e)
        return;
    g3n_client *client = NULL;
    g3n_error err;
    if (e->session && g3n_client_open(&client, live->broker, &err) != G3N_OK)
        client = NULL; /* then the decoder's idle timeout ends it */
    g3n_live_pipeline_free(e->session, client);
    g3n_client_close(client);
    free(e);
}

/* Drops entry i from the table (lock held); frees it when no request holds it. */
static void remove_at(g3n_http_live *live, int i)
{
    live_entry *e = live->entries[i];
    live->entries[i] = live->entries[--live->count];
    e->removed = 1;
    if (e->refs == 0)
        entry_free(live, e);
}

/* Frees the sessions idle longer than idle_seconds (lock held). */
static void expire_idle(g3n_http_live *live)
{
    double now = g3n_now_seconds();
    for (int i = live->count - 1; i >= 0; i--) {
        live_entry *e = live->entries[i];
        if (e->refs == 0 && now - e->last_used > live->options.idle_seconds)
            remove_at(live, i);
    }
}

static void *reaper_main(void *arg)
{
    g3n_http_live *live = arg;
    pthread_mutex_lock(&live->lock);
    while (!atomic_load(&live->stopping)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&live->changed, &live->lock, &until);
        expire_idle(live);
    }
    pthread_mutex_unlock(&live->lock);
    return NULL;
}

/* Finds the session and waits until no other request runs on it. NULL: unknown (404 in e). */
static live_entry *acquire(g3n_http_live *live, const char *id, const char *owner, g3n_http_error *e)
{
    pthread_mutex_lock(&live->lock);
    live_entry *found = NULL;
    for (int i = 0; i < live->count && !found; i++)
        if (strcmp(live->entries[i]->id, id) == 0 && owned_by(live->entries[i], owner))
            found = live->entries[i]; /* another key's session is as unknown as a missing one: 404 */
    if (found) {
        found->refs++;
        while (found->busy && !found->removed)
            pthread_cond_wait(&live->changed, &live->lock);
        if (found->removed) {
            if (--found->refs == 0)
                entry_free(live, found);
            found = NULL;
        } else {
            found->busy = 1;
        }
    }
    pthread_mutex_unlock(&live->lock);
    if (!found)
        g3n_http_error_set(e, 404, INVALID, "session_not_found", NULL,
                           "no live session '%.64s' (it was deleted, expired after %.0f s idle, or never existed)", id,
                           live->options.idle_seconds);
    return found;
}

static void release(g3n_http_live *live, live_entry *e)
{
    pthread_mutex_lock(&live->lock);
    e->busy = 0;
    e->last_used = g3n_now_seconds();
    int gone = --e->refs == 0 && e->removed;
    pthread_cond_broadcast(&live->changed);
    pthread_mutex_unlock(&live->lock);
    if (gone)
        entry_free(live, e);
}

/* ------------------------------------------------------------- state */

static cJSON *session_json(g3n_http_live *live, const live_entry *e)
{
    g3n_live_pipeline_stats s = g3n_live_pipeline_get_stats(e->session);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", e->id);
    cJSON_AddStringToObject(root, "object", "live.session");
    cJSON_AddNumberToObject(root, "created", (double)e->created);
    cJSON_AddNumberToObject(root, "idle_expires_in", live->options.idle_seconds);
    cJSON_AddNumberToObject(root, "frames", s.frames);
    cJSON_AddNumberToObject(root, "audio_segments", s.audio_segments);
    cJSON_AddNumberToObject(root, "audio_seconds", (double)s.audio_samples / 16000.0);
    cJSON_AddNumberToObject(root, "questions", s.questions);
    cJSON_AddNumberToObject(root, "positions", (double)s.positions);
    cJSON_AddNumberToObject(root, "pending_positions", (double)s.pending);
    cJSON_AddNumberToObject(root, "context", (double)e->context);
    cJSON_AddNumberToObject(root, "context_used", e->context > 0 ? (double)s.positions / (double)e->context : 0.0);
    cJSON_AddStringToObject(root, "context_policy", "drop_oldest_media_and_reprefill");
    cJSON_AddNumberToObject(root, "dropped_items", s.dropped_items);
    cJSON_AddNumberToObject(root, "compactions", s.compactions);
    cJSON_AddNumberToObject(root, "prefilled_tokens", (double)s.prefilled_tokens);
    cJSON_AddNumberToObject(root, "rebuilds", s.rebuilds); /* times its decoder was lost and it was prefilled again */
    cJSON_AddStringToObject(root, "decoder", s.decoder);
    cJSON *t = cJSON_AddObjectToObject(root, "seconds");
    cJSON_AddNumberToObject(t, "vision", s.vision_seconds);
    cJSON_AddNumberToObject(t, "audio", s.audio_seconds);
    cJSON_AddNumberToObject(t, "prefill", s.prefill_seconds);
    cJSON_AddNumberToObject(t, "last_question_prefill", s.question_seconds);
    cJSON_AddNumberToObject(root, "last_question_positions", (double)s.question_positions);
    return root;
}

/* ------------------------------------------------------------- create, list, delete */

static enum MHD_Result handle_create(g3n_http_live *live, struct MHD_Connection *connection, const char *owner,
                                     const char *body,
                                     size_t length, int *status)
{
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    const char *system = NULL;
    int64_t context = live->options.context;
    cJSON *root = NULL;
    if (length > 0) {
        root = cJSON_ParseWithLength(body, length);
        if (!root || !cJSON_IsObject(root)) {
            cJSON_Delete(root);
            g3n_http_error_set(&e, 400, INVALID, "invalid_json", NULL,
                               "the body is not a JSON object (give {} or {\"system\": ..., \"context\": N})");
            return send_error(connection, &e, status);
        }
        const cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system");
        if (sys && !cJSON_IsNull(sys)) {
            if (!cJSON_IsString(sys)) {
                cJSON_Delete(root);
                g3n_http_error_set(&e, 400, INVALID, "invalid_type", "system", "system must be a string");
                return send_error(connection, &e, status);
            }
            system = sys->valuestring;
        }
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
        if (ctx && !cJSON_IsNull(ctx)) {
            if (!cJSON_IsNumber(ctx) || ctx->valuedouble < 1024 || ctx->valuedouble > (double)live->options.context ||
                ctx->valuedouble != floor(ctx->valuedouble)) {
                cJSON_Delete(root);
                g3n_http_error_set(&e, 400, INVALID, "invalid_value", "context",
                                   "context must be a whole number from 1024 to %lld (--live-context)",
                                   (long long)live->options.context);
                return send_error(connection, &e, status);
            }
            context = (int64_t)ctx->valuedouble;
        }
    }
    /* room in the table (the idle ones go first) */
    pthread_mutex_lock(&live->lock);
    expire_idle(live);
    int full = live->count + live->reserved >= live->options.max_sessions;
    if (!full)
        live->reserved++; /* the slot is held while the session is made */
    pthread_mutex_unlock(&live->lock);
    if (full) {
        cJSON_Delete(root);
        g3n_http_error_set(&e, 429, INVALID, "too_many_sessions", NULL,
                           "%d live sessions are open (the limit, --live-sessions): DELETE one, or wait until an "
                           "idle one expires (%.0f s)",
                           live->options.max_sessions, live->options.idle_seconds);
        return send_error(connection, &e, status);
    }
    live_entry *entry = calloc(1, sizeof(*entry));
    g3n_error err = {{0}};
    int ok = entry != NULL;
    if (!ok)
        g3n_error_set(&err, "out of memory");
    if (ok) {
        g3n_live_pipeline_params params = g3n_live_pipeline_default_params(live->config);
        params.max_positions = context;
        params.system = system;
        params.preprocessor_config = live->preprocessor[0] ? live->preprocessor : NULL;
        if (g3n_live_pipeline_create(&entry->session, live->config, live->tokenizer, &params, &err) != G3N_OK)
            ok = 0;
    }
    cJSON_Delete(root);
    pthread_mutex_lock(&live->lock);
    live->reserved--;
    if (ok) {
        /* 128 random bits: an id is not guessable from another */
        if (g3n_http_random_id(entry->id, sizeof(entry->id), "live-") != G3N_OK)
            snprintf(entry->id, sizeof(entry->id), "live-%llx%06llx", (unsigned long long)time(NULL),
                     (unsigned long long)atomic_fetch_add(&live->next_id, 1));
        snprintf(entry->owner, sizeof(entry->owner), "%s", owner ? owner : "");
        entry->created = time(NULL);
        entry->last_used = g3n_now_seconds();
        entry->context = context;
        live->entries[live->count++] = entry;
    }
    pthread_mutex_unlock(&live->lock);
    if (!ok) {
        if (entry)
            entry_free(live, entry);
        g3n_http_error_set(&e, 500, "server_error", NULL, NULL, "cannot start a live session: %s", err.message);
        return send_error(connection, &e, status);
    }
    pthread_mutex_lock(&live->lock);
    cJSON *json = session_json(live, entry);
    pthread_mutex_unlock(&live->lock);
    *status = 200;
    return g3n_http_send_json(connection, 200, json, 0);
}

static enum MHD_Result handle_list(g3n_http_live *live, struct MHD_Connection *connection, const char *owner,
                                   int *status)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    pthread_mutex_lock(&live->lock);
    for (int i = 0; i < live->count; i++)
        if (!owned_by(live->entries[i], owner))
            continue; /* only one's own */
        else if (!live->entries[i]->busy)
            cJSON_AddItemToArray(data, session_json(live, live->entries[i]));
        else {
            cJSON *busy = cJSON_CreateObject();
            cJSON_AddStringToObject(busy, "id", live->entries[i]->id);
            cJSON_AddStringToObject(busy, "object", "live.session");
            cJSON_AddBoolToObject(busy, "busy", 1);
            cJSON_AddItemToArray(data, busy);
        }
    cJSON_AddNumberToObject(root, "max_sessions", live->options.max_sessions);
    pthread_mutex_unlock(&live->lock);
    *status = 200;
    return g3n_http_send_json(connection, 200, root, 0);
}

static enum MHD_Result handle_delete(g3n_http_live *live, struct MHD_Connection *connection, live_entry *entry,
                                     int *status)
{
    char id[ID_SIZE];
    snprintf(id, sizeof(id), "%s", entry->id);
    pthread_mutex_lock(&live->lock);
    for (int i = 0; i < live->count; i++)
        if (live->entries[i] == entry) {
            live->entries[i] = live->entries[--live->count];
            break;
        }
    entry->removed = 1;
    pthread_mutex_unlock(&live->lock);
    release(live, entry); /* frees it (and wakes requests waiting for it: they get 404) */
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", "live.session.deleted");
    cJSON_AddBoolToObject(root, "deleted", 1);
    *status = 200;
    return g3n_http_send_json(connection, 200, root, 0);
}

/* ------------------------------------------------------------- media */

static const char *header(struct MHD_Connection *connection, const char *name)
{
    return MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
}

static const char *query(struct MHD_Connection *connection, const char *name)
{
    return MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, name);
}

static int is_json(struct MHD_Connection *connection)
{
    const char *type = header(connection, MHD_HTTP_HEADER_CONTENT_TYPE);
    return type && strncasecmp(type, "application/json", 16) == 0;
}

static int truthy(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* The JSON body of a media request, or NULL (400 in e). */
static cJSON *parse_object(const char *body, size_t length, g3n_http_error *e)
{
    cJSON *root = cJSON_ParseWithLength(body, length);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        g3n_http_error_set(e, 400, INVALID, "invalid_json", NULL, "the body is not a JSON object");
        return NULL;
    }
    return root;
}

static int too_large(g3n_http_live *live, size_t length, const char *what, g3n_http_error *e)
{
    if ((int64_t)length > live->options.max_media_bytes)
        return g3n_http_error_set(e, 413, INVALID, "request_too_large", NULL,
                                  "the %s is %zu bytes; the limit is %lld (--live-max-media-mb)", what, length,
                                  (long long)live->options.max_media_bytes);
    return G3N_OK;
}

/* A failed media or question call of the session: the client's media (400), the roles gone (503), the
 * session's state (409: its context, a question over media still arriving), else a server fault (500). */
static int session_failed(const char *what, const char *param, const char *message, g3n_http_error *e)
{
    const char *cause = message; /* "live session ID: " then the pipeline's message */
    if (strncmp(cause, "live session ", 13) == 0 && strstr(cause, ": "))
        cause = strstr(cause, ": ") + 2;
    const int code = g3n_pipeline_error_code(cause);
    if (code == G3N__ERROR_CODE__ERROR_BAD_REQUEST)
        return g3n_http_error_set(e, 400, INVALID, strcmp(what, "frame") == 0   ? "invalid_image"
                                                   : strcmp(what, "audio") == 0 ? "invalid_audio"
                                                                                : "invalid_value",
                                  param, "the %s was not added: %s", what, message);
    if (code == G3N__ERROR_CODE__ERROR_NO_WORKER || code == G3N__ERROR_CODE__ERROR_WORKER_LOST)
        return g3n_http_error_set(e, 503, "server_error", "service_unavailable", NULL, "the %s was not added: %s",
                                  what, message);
    if (strstr(message, "internal error") || strstr(message, "bad reply") || strstr(message, "out of memory"))
        return g3n_http_error_set(e, 500, "server_error", NULL, NULL, "the %s was not added: %s", what, message);
    return g3n_http_error_set(e, 409, INVALID, "session_state", param, "the %s was not added: %s", what, message);
}

static int push_frame(g3n_http_live *live, struct MHD_Connection *connection, g3n_client *client, live_entry *entry,
                      const char *body, size_t length, g3n_http_error *e)
{
    if (!live->has_vision)
        return g3n_http_error_set(e, 400, INVALID, "unsupported", NULL, "this model has no vision tower");
    uint8_t *decoded = NULL;
    size_t size = length;
    const void *bytes = body;
    double seconds = -1.0;
    const char *at = query(connection, "seconds");
    if (at) {
        char *end = NULL;
        seconds = strtod(at, &end);
        if (end == at || *end != '\0' || !isfinite(seconds) || seconds < 0.0)
            return g3n_http_error_set(e, 400, INVALID, "invalid_value", "seconds",
                                      "seconds must be a finite number >= 0 (the frame's time in the stream)");
    }
    if (is_json(connection)) {
        cJSON *root = parse_object(body, length, e);
        if (!root)
            return G3N_ERR;
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(root, "image_url");
        if (cJSON_IsObject(url))
            url = cJSON_GetObjectItemCaseSensitive(url, "url");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "seconds");
        if (cJSON_IsNumber(ts))
            seconds = ts->valuedouble;
        if (cJSON_IsNumber(ts) && (!isfinite(seconds) || seconds < 0.0)) {
            cJSON_Delete(root);
            return g3n_http_error_set(e, 400, INVALID, "invalid_value", "seconds",
                                      "seconds must be a finite number >= 0 (the frame's time in the stream)");
        }
        if (!cJSON_IsString(url) || strncmp(url->valuestring, "data:", 5) != 0) {
            cJSON_Delete(root);
            return g3n_http_error_set(e, 400, INVALID, "invalid_image", "image_url",
                                      "image_url must be a data: URL (data:image/png;base64,...) or {\"url\": ...}");
        }
        char mime[128];
        g3n_error err = {{0}};
        int rc = g3n_data_url_decode(url->valuestring, live->options.max_media_bytes, "image_url", mime, sizeof(mime),
                                     &decoded, &size, &err);
        cJSON_Delete(root);
        if (rc != G3N_OK)
            return g3n_http_error_set(e, strstr(err.message, "limit") ? 413 : 400, INVALID, "invalid_image",
                                      "image_url", "%s", err.message);
        bytes = decoded;
    }
    if (size == 0) {
        free(decoded);
        return g3n_http_error_set(e, 400, INVALID, "invalid_image", NULL,
                                  "no image: send its bytes (Content-Type image/...) or JSON {\"image_url\": ...}");
    }
    if (too_large(live, size, "image", e) != G3N_OK) {
        free(decoded);
        return G3N_ERR;
    }
    if (seconds < 0) { /* no timestamp: the stream's audio time so far */
        g3n_live_pipeline_stats s = g3n_live_pipeline_get_stats(entry->session);
        seconds = (double)s.audio_samples / 16000.0;
    }
    /* decoded and preprocessed by the vision encoder */
    g3n_error err = {{0}};
    int rc = g3n_live_pipeline_add_image(entry->session, client, seconds, bytes, size, &err);
    free(decoded);
    if (rc != G3N_OK)
        return session_failed("frame", NULL, err.message, e);
    return G3N_OK;
}

/* Raw PCM -> f32 samples. */
static int pcm_samples(const void *bytes, size_t size, const char *format, float **out, int64_t *count,
                       g3n_http_error *e)
{
    int f32 = strcasecmp(format, "f32le") == 0 || strcasecmp(format, "pcm_f32le") == 0;
    int s16 = strcasecmp(format, "s16le") == 0 || strcasecmp(format, "pcm_s16le") == 0 ||
              strcasecmp(format, "pcm") == 0;
    if (!f32 && !s16)
        return g3n_http_error_set(e, 400, INVALID, "invalid_audio", "format",
                                  "unknown PCM format '%.32s' (s16le or f32le, 16 kHz mono)", format);
    size_t width = f32 ? 4 : 2;
    if (size % width != 0)
        return g3n_http_error_set(e, 400, INVALID, "invalid_audio", NULL,
                                  "%zu bytes is not a whole number of %s samples", size, f32 ? "f32le" : "s16le");
    *count = (int64_t)(size / width);
    *out = malloc(sizeof(float) * (size_t)(*count ? *count : 1));
    if (!*out)
        return g3n_http_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    const uint8_t *p = bytes;
    for (int64_t i = 0; i < *count; i++) {
        if (f32) {
            float v;
            memcpy(&v, p + 4 * i, 4);
            if (!isfinite(v)) {
                free(*out);
                *out = NULL;
                return g3n_http_error_set(e, 400, INVALID, "invalid_audio", NULL, "sample %lld is not finite",
                                          (long long)i);
            }
            (*out)[i] = v;
        } else {
            int16_t v = (int16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            (*out)[i] = (float)v / 32768.0f;
        }
    }
    return G3N_OK;
}

static int push_audio(g3n_http_live *live, struct MHD_Connection *connection, g3n_client *client, live_entry *entry,
                      const char *body, size_t length, g3n_http_error *e)
{
    if (!live->has_audio)
        return g3n_http_error_set(e, 400, INVALID, "unsupported", NULL, "this model has no audio tower");
    const char *type = header(connection, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *format = query(connection, "format");
    int end = truthy(query(connection, "end"));
    uint8_t *decoded = NULL;
    const void *bytes = body;
    size_t size = length;
    char json_format[32] = "";
    if (is_json(connection)) {
        cJSON *root = parse_object(body, length, e);
        if (!root)
            return G3N_ERR;
        const cJSON *audio = cJSON_GetObjectItemCaseSensitive(root, "input_audio");
        const cJSON *data = cJSON_IsObject(audio) ? cJSON_GetObjectItemCaseSensitive(audio, "data") : NULL;
        const cJSON *fmt = cJSON_IsObject(audio) ? cJSON_GetObjectItemCaseSensitive(audio, "format") : NULL;
        const cJSON *end_item = cJSON_GetObjectItemCaseSensitive(root, "end");
        if (cJSON_IsTrue(end_item))
            end = 1;
        if (audio && !cJSON_IsString(data)) {
            cJSON_Delete(root);
            return g3n_http_error_set(e, 400, INVALID, "invalid_audio", "input_audio.data",
                                      "input_audio needs data (base64) and format (wav, mp3, pcm_s16le, pcm_f32le)");
        }
        if (cJSON_IsString(fmt))
            snprintf(json_format, sizeof(json_format), "%s", fmt->valuestring);
        size = 0;
        if (data) {
            g3n_error err = {{0}};
            int rc = g3n_base64_decode(data->valuestring, strlen(data->valuestring), live->options.max_media_bytes,
                                       "input_audio.data", &decoded, &size, &err);
            if (rc != G3N_OK) {
                cJSON_Delete(root);
                return g3n_http_error_set(e, strstr(err.message, "limit") ? 413 : 400, INVALID, "invalid_audio",
                                          "input_audio.data", "%s", err.message);
            }
        }
        cJSON_Delete(root);
        bytes = decoded;
        if (json_format[0] && strncasecmp(json_format, "pcm", 3) == 0)
            format = json_format;
    } else if (!format && type && strncasecmp(type, "audio/pcm", 9) == 0) {
        format = "s16le";
    }
    if (size == 0 && !end) {
        free(decoded);
        return g3n_http_error_set(e, 400, INVALID, "invalid_audio", NULL,
                                  "no audio: send a clip (Content-Type audio/...), raw PCM (?format=s16le|f32le), "
                                  "JSON {\"input_audio\": ...}, or ?end=1");
    }
    if (too_large(live, size, "audio piece", e) != G3N_OK) {
        free(decoded);
        return G3N_ERR;
    }
    const char *rate = query(connection, "rate");
    if (format && rate && atoi(rate) != 16000) {
        free(decoded);
        return g3n_http_error_set(e, 400, INVALID, "invalid_audio", "rate",
                                  "raw PCM must be 16000 Hz mono (got rate=%.16s); send an encoded clip (WAV, ...) to "
                                  "have it resampled",
                                  rate);
    }
    float *samples = NULL;
    int64_t count = 0;
    g3n_error err = {{0}};
    if (size > 0) {
        if (format) {
            if (pcm_samples(bytes, size, format, &samples, &count, e) != G3N_OK) {
                free(decoded);
                return G3N_ERR;
            }
        } else if (g3n_audio_decode_memory(bytes, size, "audio", 16000, &samples, &count, &err) != G3N_OK) {
            free(decoded);
            return g3n_http_error_set(e, 400, INVALID, "invalid_audio", NULL, "the audio could not be decoded: %s",
                                      err.message);
        }
    }
    free(decoded);
    int rc = G3N_OK;
    if (count > 0)
        rc = g3n_live_pipeline_add_audio(entry->session, client, samples, count, &err);
    if (rc == G3N_OK && end)
        rc = g3n_live_pipeline_end_audio(entry->session, client, &err);
    free(samples);
    if (rc != G3N_OK)
        return session_failed("audio", NULL, err.message, e);
    return G3N_OK;
}

/* ------------------------------------------------------------- questions */

typedef struct ask_job {
    g3n_http_live *live;
    live_entry *entry;
    atomic_int refs;
    char id[96];
    char session_id[ID_SIZE];
    time_t created;
    int stream, include_usage;
    int64_t max_tokens;
    g3n_sampling_params sampling;
    g3n_detokenizer detokenizer;
    atomic_int cancelled;

    pthread_mutex_t lock; /* guards out, finished */
    pthread_cond_t changed;
    char *out;
    size_t length, capacity, read;
    int finished;
    int failed;
    char error[1024];
    g3n_http_error http_error; /* failed: the status and message to answer */
    char *question;
    int64_t generated, question_positions;
    double question_seconds, first_token, started;
    int stopped_on_eos;
} ask_job;

static int out_append(ask_job *j, const char *text, size_t n)
{
    if (j->length + n + 1 > j->capacity) {
        size_t capacity = j->capacity ? j->capacity : 1024;
        while (capacity < j->length + n + 1)
            capacity *= 2;
        char *grown = realloc(j->out, capacity);
        if (!grown)
            return G3N_ERR;
        j->out = grown;
        j->capacity = capacity;
    }
    memcpy(j->out + j->length, text, n);
    j->length += n;
    j->out[j->length] = '\0';
    return G3N_OK;
}

/* One SSE chunk as /v1/chat/completions sends them (lock held). */
static int out_chunk(ask_job *j, const char *role, const char *text, size_t n, const char *finish)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", j->live->model_name);
    cJSON_AddNullToObject(root, "system_fingerprint");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    cJSON *delta = cJSON_AddObjectToObject(choice, "delta");
    if (role)
        cJSON_AddStringToObject(delta, "role", role);
    if (text) {
        char *copy = strndup(text, n);
        cJSON_AddStringToObject(delta, "content", copy ? copy : "");
        free(copy);
    }
    cJSON_AddNullToObject(choice, "logprobs");
    if (finish)
        cJSON_AddStringToObject(choice, "finish_reason", finish);
    else
        cJSON_AddNullToObject(choice, "finish_reason");
    cJSON_AddItemToArray(choices, choice);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json)
        return G3N_ERR;
    int rc = out_append(j, "data: ", 6) | out_append(j, json, strlen(json)) | out_append(j, "\n\n", 2);
    free(json);
    return rc ? G3N_ERR : G3N_OK;
}

static void job_text(ask_job *j, const char *text, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&j->lock);
    int rc = j->stream ? out_chunk(j, NULL, text, n, NULL) : out_append(j, text, n);
    if (rc != G3N_OK)
        atomic_store(&j->cancelled, 1);
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
}

static int job_on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    (void)token;
    (void)logits;
    (void)vocab;
    ask_job *j = user;
    j->generated = step + 1;
    if (step == 0)
        j->first_token = g3n_now_seconds() - j->started;
    return atomic_load(&j->cancelled) || atomic_load(&j->live->stopping);
}

static int job_on_text(void *user, const char *text, size_t length)
{
    ask_job *j = user;
    job_text(j, text, length);
    return atomic_load(&j->cancelled) || atomic_load(&j->live->stopping);
}

static void job_release(ask_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    g3n_detokenizer_free(&j->detokenizer);
    free(j->question);
    free(j->out);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->changed);
    free(j);
}

/* The question and its answer through the roles (on this thread's own
 * client); ends the SSE stream when streaming. */
static void job_answer(ask_job *j)
{
    g3n_http_live *live = j->live;
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(live->config);
    params.max_new_tokens = j->max_tokens;
    params.sampling = j->sampling;
    params.on_token = job_on_token;
    params.user = j;
    g3n_pipeline_stats stats;
    memset(&stats, 0, sizeof(stats));
    g3n_error err = {{0}};
    g3n_client *client = NULL;
    int rc = g3n_client_open(&client, live->broker, &err);
    if (rc == G3N_OK && atomic_load(&j->cancelled))
        rc = g3n_error_set(&err, "the request was cancelled");
    else if (rc == G3N_OK)
        rc = g3n_live_pipeline_ask(j->entry->session, client, j->question, &params, job_on_text, j, &stats, &err);
    g3n_client_close(client);
    const int64_t produced = stats.generated_tokens - (stats.stopped_on_eos ? 1 : 0);
    g3n_live_pipeline_stats state = g3n_live_pipeline_get_stats(j->entry->session);
    pthread_mutex_lock(&j->lock);
    j->question_positions = state.question_positions;
    j->question_seconds = state.question_seconds;
    j->generated = produced;
    j->stopped_on_eos = stats.stopped_on_eos;
    if (rc != G3N_OK) {
        j->failed = 1;
        snprintf(j->error, sizeof(j->error), "%s", err.message);
        session_failed("question", "question", err.message, &j->http_error);
    }
    if (j->stream) {
        if (rc != G3N_OK) {
            char *event = g3n_http_error_event(&j->http_error);
            if (event) {
                out_append(j, event, strlen(event));
                free(event);
            }
        } else {
            out_chunk(j, NULL, NULL, 0, j->stopped_on_eos ? "stop" : "length");
            if (j->include_usage) {
                char usage[512];
                snprintf(usage, sizeof(usage),
                         "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\","
                         "\"choices\":[],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                         "\"total_tokens\":%lld}}\n\n",
                         j->id, (long long)j->created, live->model_name, (long long)j->question_positions,
                         (long long)produced, (long long)(j->question_positions + produced));
                out_append(j, usage, strlen(usage));
            }
        }
        out_append(j, "data: [DONE]\n\n", 14);
    }
    j->finished = 1;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
    release(live, j->entry);
    j->entry = NULL;
}

static void *job_main(void *arg)
{
    ask_job *j = arg;
    g3n_http_live *live = j->live;
    job_answer(j);
    job_release(j);
    pthread_mutex_lock(&live->lock);
    live->streams--;
    pthread_cond_broadcast(&live->changed);
    pthread_mutex_unlock(&live->lock);
    return NULL;
}

static ssize_t stream_reader(void *cls, uint64_t position, char *buffer, size_t max)
{
    (void)position;
    ask_job *j = cls;
    pthread_mutex_lock(&j->lock);
    while (j->read == j->length && !j->finished) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->changed, &j->lock, &until);
    }
    if (j->read < j->length) {
        size_t n = j->length - j->read;
        if (n > max)
            n = max;
        memcpy(buffer, j->out + j->read, n);
        j->read += n;
        pthread_mutex_unlock(&j->lock);
        return (ssize_t)n;
    }
    pthread_mutex_unlock(&j->lock);
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls)
{
    ask_job *j = cls;
    atomic_store(&j->cancelled, 1); /* the client went away: the answer stops */
    job_release(j);
}

static enum MHD_Result handle_ask(g3n_http_live *live, struct MHD_Connection *connection, live_entry *entry,
                                  const char *body, size_t length, int *status)
{
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    cJSON *root = parse_object(body, length, &e);
    if (!root) {
        release(live, entry);
        return send_error(connection, &e, status);
    }
    ask_job *j = calloc(1, sizeof(*j));
    if (!j) {
        cJSON_Delete(root);
        release(live, entry);
        g3n_http_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        return send_error(connection, &e, status);
    }
    j->live = live;
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancelled, 0);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->changed, NULL);
    j->created = time(NULL);
    snprintf(j->id, sizeof(j->id), "chatcmpl-%s-%d", entry->id, g3n_live_pipeline_get_stats(entry->session).questions);
    snprintf(j->session_id, sizeof(j->session_id), "%s", entry->id);
    j->max_tokens = live->options.max_tokens;
    j->sampling = live->options.sampling;
    g3n_detokenizer_init(&j->detokenizer, live->tokenizer, 1);
    const cJSON *question = cJSON_GetObjectItemCaseSensitive(root, "question");
    const cJSON *max_tokens = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if (!max_tokens || cJSON_IsNull(max_tokens))
        max_tokens = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    const cJSON *temperature = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    const cJSON *top_p = cJSON_GetObjectItemCaseSensitive(root, "top_p");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (!cJSON_IsString(question) || !question->valuestring[0])
        g3n_http_error_set(&e, 400, INVALID, "missing_field", "question", "question must be a non-empty string");
    else if (max_tokens && !cJSON_IsNull(max_tokens) &&
             (!cJSON_IsNumber(max_tokens) || max_tokens->valuedouble < 1 ||
              max_tokens->valuedouble > (double)live->options.max_tokens))
        g3n_http_error_set(&e, 400, INVALID, "invalid_value", "max_tokens",
                           "max_tokens must be a whole number from 1 to %lld (--max-tokens)",
                           (long long)live->options.max_tokens);
    else if (stream && !cJSON_IsNull(stream) && !cJSON_IsBool(stream))
        g3n_http_error_set(&e, 400, INVALID, "invalid_type", "stream", "stream must be true or false");
    else if (temperature && !cJSON_IsNull(temperature) &&
             (!cJSON_IsNumber(temperature) || temperature->valuedouble < 0 || temperature->valuedouble > 2))
        g3n_http_error_set(&e, 400, INVALID, "invalid_value", "temperature", "temperature must be from 0 to 2");
    else if (top_p && !cJSON_IsNull(top_p) &&
             (!cJSON_IsNumber(top_p) || top_p->valuedouble <= 0 || top_p->valuedouble > 1))
        g3n_http_error_set(&e, 400, INVALID, "invalid_value", "top_p", "top_p must be in (0, 1]");
    if (e.status) {
        cJSON_Delete(root);
        release(live, entry);
        job_release(j);
        return send_error(connection, &e, status);
    }
    if (cJSON_IsNumber(max_tokens))
        j->max_tokens = (int64_t)max_tokens->valuedouble;
    j->stream = cJSON_IsTrue(stream);
    j->include_usage = cJSON_IsObject(options) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(options,
                                                                                                "include_usage"));
    if (cJSON_IsNumber(temperature)) {
        j->sampling.do_sample = temperature->valuedouble > 0;
        if (temperature->valuedouble > 0)
            j->sampling.temperature = (float)temperature->valuedouble;
    }
    if (cJSON_IsNumber(top_p))
        j->sampling.top_p = (float)top_p->valuedouble;
    if (cJSON_IsNumber(seed))
        j->sampling.seed = (uint64_t)(int64_t)seed->valuedouble;

    j->started = g3n_now_seconds();
    j->question = strdup(question->valuestring);
    cJSON_Delete(root);
    if (!j->question) {
        release(live, entry);
        job_release(j);
        g3n_http_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        return send_error(connection, &e, status);
    }
    j->entry = entry; /* the job releases it when the answer is done */

    if (!j->stream) {
        job_answer(j);
        if (j->failed) {
            e = j->http_error;
            job_release(j);
            return send_error(connection, &e, status);
        }
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "id", j->id);
        cJSON_AddStringToObject(out, "object", "chat.completion");
        cJSON_AddNumberToObject(out, "created", (double)j->created);
        cJSON_AddStringToObject(out, "model", live->model_name);
        cJSON_AddNullToObject(out, "system_fingerprint");
        cJSON *choices = cJSON_AddArrayToObject(out, "choices");
        cJSON *choice = cJSON_CreateObject();
        cJSON_AddNumberToObject(choice, "index", 0);
        cJSON *message = cJSON_AddObjectToObject(choice, "message");
        cJSON_AddStringToObject(message, "role", "assistant");
        cJSON_AddStringToObject(message, "content", j->out ? j->out : "");
        cJSON_AddNullToObject(message, "refusal");
        cJSON_AddNullToObject(choice, "logprobs");
        cJSON_AddStringToObject(choice, "finish_reason", j->stopped_on_eos ? "stop" : "length");
        cJSON_AddItemToArray(choices, choice);
        cJSON *usage = cJSON_AddObjectToObject(out, "usage");
        cJSON_AddNumberToObject(usage, "prompt_tokens", (double)j->question_positions);
        cJSON_AddNumberToObject(usage, "completion_tokens", (double)j->generated);
        cJSON_AddNumberToObject(usage, "total_tokens", (double)(j->question_positions + j->generated));
        cJSON *timing = cJSON_AddObjectToObject(out, "live");
        cJSON_AddStringToObject(timing, "session", j->session_id);
        cJSON_AddNumberToObject(timing, "question_positions", (double)j->question_positions);
        cJSON_AddNumberToObject(timing, "question_prefill_seconds", j->question_seconds);
        cJSON_AddNumberToObject(timing, "first_token_seconds", j->first_token);
        cJSON_AddNumberToObject(timing, "answer_seconds", g3n_now_seconds() - j->started);
        job_release(j);
        *status = 200;
        return g3n_http_send_json(connection, 200, out, 0);
    }

    /* stream: the first chunk now, the answer on its own thread */
    pthread_mutex_lock(&j->lock);
    out_chunk(j, "assistant", "", 0, NULL);
    pthread_mutex_unlock(&j->lock);
    atomic_fetch_add(&j->refs, 1); /* the thread's */
    pthread_mutex_lock(&live->lock);
    live->streams++;
    pthread_mutex_unlock(&live->lock);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int created = pthread_create(&thread, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (created != 0) {
        pthread_mutex_lock(&live->lock);
        live->streams--;
        pthread_mutex_unlock(&live->lock);
        atomic_fetch_sub(&j->refs, 1);
        atomic_store(&j->cancelled, 1);
        job_answer(j); /* closes the turn at once (cancelled), releases the session */
        job_release(j);
        g3n_http_error_set(&e, 503, "server_error", "service_unavailable", NULL, "cannot start a thread: %s",
                           strerror(created));
        return send_error(connection, &e, status);
    }
    struct MHD_Response *response =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
    if (!response) {
        stream_free(j);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result result = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    *status = 200;
    return result;
}

/* ------------------------------------------------------------- routing */

enum MHD_Result g3n_http_live_handle(g3n_http_live *live, struct MHD_Connection *connection, const char *method,
                                     const char *url, const char *body, size_t length, int *status)
{
    return g3n_http_live_handle_owned(live, connection, method, url, NULL, body, length, status);
}

enum MHD_Result g3n_http_live_handle_owned(g3n_http_live *live, struct MHD_Connection *connection, const char *method,
                                           const char *url, const char *owner, const char *body, size_t length,
                                           int *status)
{
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int is_post = strcmp(method, "POST") == 0, is_delete = strcmp(method, "DELETE") == 0;
    const char *prefix = "/v1/live/sessions";
    size_t prefix_length = strlen(prefix);
    if (strncmp(url, prefix, prefix_length) != 0 || (url[prefix_length] && url[prefix_length] != '/')) {
        g3n_http_error_set(&e, 404, INVALID, "not_found", NULL,
                           "no such endpoint: %s %.200s (live sessions are under /v1/live/sessions)", method, url);
        return send_error(connection, &e, status);
    }
    const char *rest = url + prefix_length;
    if (*rest == '/')
        rest++;
    if (!*rest) { /* /v1/live/sessions */
        if (is_post)
            return handle_create(live, connection, owner, body, length, status);
        if (is_get)
            return handle_list(live, connection, owner, status);
        g3n_http_error_set(&e, 405, INVALID, "method_not_allowed", NULL,
                           "%s is not allowed on %s (POST creates a session, GET lists them)", method, url);
        return send_error(connection, &e, status);
    }
    char id[ID_SIZE];
    const char *slash = strchr(rest, '/');
    size_t id_length = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *action = slash ? slash + 1 : "";
    if (id_length == 0 || id_length >= sizeof(id)) {
        g3n_http_error_set(&e, 404, INVALID, "session_not_found", NULL, "no live session '%.*s'",
                           (int)(id_length < 64 ? id_length : 64), rest);
        return send_error(connection, &e, status);
    }
    memcpy(id, rest, id_length);
    id[id_length] = '\0';
    int known_action = !*action || strcmp(action, "frames") == 0 || strcmp(action, "audio") == 0 ||
                       strcmp(action, "ask") == 0;
    if (!known_action) {
        g3n_http_error_set(&e, 404, INVALID, "not_found", NULL,
                           "no such endpoint: %s %.200s (a session has /frames, /audio and /ask)", method, url);
        return send_error(connection, &e, status);
    }
    if (*action ? !is_post : !(is_get || is_delete)) {
        g3n_http_error_set(&e, 405, INVALID, "method_not_allowed", NULL, "%s is not allowed on %.200s", method, url);
        return send_error(connection, &e, status);
    }
    live_entry *entry = acquire(live, id, owner, &e);
    if (!entry)
        return send_error(connection, &e, status);
    if (!*action && is_delete)
        return handle_delete(live, connection, entry, status);
    if (strcmp(action, "ask") == 0)
        return handle_ask(live, connection, entry, body, length, status); /* releases entry */
    int rc = G3N_OK;
    g3n_client *client = NULL; /* this thread's own (transport.h: one client per thread) */
    if (*action) {
        g3n_error err = {{0}};
        if (g3n_client_open(&client, live->broker, &err) != G3N_OK)
            rc = g3n_http_error_set(&e, 503, "server_error", "service_unavailable", NULL, "%s", err.message);
    }
    if (rc == G3N_OK && strcmp(action, "frames") == 0)
        rc = push_frame(live, connection, client, entry, body, length, &e);
    else if (rc == G3N_OK && strcmp(action, "audio") == 0)
        rc = push_audio(live, connection, client, entry, body, length, &e);
    g3n_client_close(client);
    if (rc != G3N_OK) {
        release(live, entry);
        return send_error(connection, &e, status);
    }
    cJSON *json = session_json(live, entry);
    release(live, entry);
    *status = 200;
    return g3n_http_send_json(connection, 200, json, 0);
}

/* ------------------------------------------------------------- lifetime */

int g3n_http_live_create(g3n_http_live **out, g3n_broker *broker, const g3n_model_config *config,
                         const g3n_tokenizer *tokenizer, const g3n_http_live_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_http_live *live = calloc(1, sizeof(*live));
    if (!live)
        return g3n_error_set(err, "live: out of memory");
    g3n_http_live_options d = g3n_http_live_default_options();
    live->options = options ? *options : d;
    if (live->options.max_sessions <= 0)
        live->options.max_sessions = d.max_sessions;
    if (live->options.context <= 0 || live->options.context > config->text.max_position_embeddings)
        live->options.context = config->text.max_position_embeddings;
    if (!(live->options.idle_seconds > 0))
        live->options.idle_seconds = d.idle_seconds;
    if (live->options.max_media_bytes <= 0)
        live->options.max_media_bytes = d.max_media_bytes;
    if (live->options.max_tokens <= 0)
        live->options.max_tokens = d.max_tokens;
    snprintf(live->model_name, sizeof(live->model_name), "%s",
             live->options.model_name && live->options.model_name[0] ? live->options.model_name : "gemma-3n");
    if (live->options.preprocessor_config)
        snprintf(live->preprocessor, sizeof(live->preprocessor), "%s", live->options.preprocessor_config);
    live->options.model_name = NULL;
    live->options.preprocessor_config = NULL;
    live->config = config;
    live->broker = broker;
    live->has_vision = config->vision_json != NULL;
    live->has_audio = config->audio_json != NULL;
    live->tokenizer = tokenizer;
    live->entries = calloc((size_t)live->options.max_sessions, sizeof(*live->entries));
    pthread_mutex_init(&live->lock, NULL);
    pthread_cond_init(&live->changed, NULL);
    atomic_init(&live->next_id, 1);
    if (!live->entries || pthread_create(&live->reaper, NULL, reaper_main, live) != 0) {
        g3n_http_live_free(live);
        return g3n_error_set(err, "live: cannot start (out of memory or threads)");
    }
    live->reaper_started = 1;
    *out = live;
    return G3N_OK;
}

int g3n_http_live_count(g3n_http_live *live)
{
    pthread_mutex_lock(&live->lock);
    int n = live->count;
    pthread_mutex_unlock(&live->lock);
    return n;
}

void g3n_http_live_free(g3n_http_live *live)
{
    if (!live)
        return;
    pthread_mutex_lock(&live->lock);
    atomic_store(&live->stopping, 1);
    pthread_cond_broadcast(&live->changed);
    while (live->streams > 0) /* streamed answers stop at their next token */
        pthread_cond_wait(&live->changed, &live->lock);
    pthread_mutex_unlock(&live->lock);
    if (live->reaper_started)
        pthread_join(live->reaper, NULL);
    for (int i = 0; i < live->count; i++)
        entry_free(live, live->entries[i]);
    free(live->entries);
    pthread_mutex_destroy(&live->lock);
    pthread_cond_destroy(&live->changed);
    free(live);
}
