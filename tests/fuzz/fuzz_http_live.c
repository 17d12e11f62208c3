/* fuzz_http_live.c - the live endpoints' bodies, queries and content types
 * (orchestrator/http_live.c) with the demo model (scripts/demo-config.json,
 * synthetic weights, the real tokenizer; its roles as threads over
 * inproc://, as g3n serve runs them): POST /v1/live/sessions, and on a
 * fresh session .../frames, .../audio, .../ask, GET and DELETE.
 *
 * libmicrohttpd's connection is replaced by this file: it defines the six
 * MHD_* functions the module calls (the program's own definitions win over
 * the shared library's), so a request is a function call and a streamed
 * answer (SSE) is read to its end right away; no socket, no server thread.
 *
 * Input: piece 0 (pieces separated by "\n--g3n--\n"): byte 0 the action,
 * byte 1 the Content-Type, the rest the query string ("seconds=1&end=1");
 * piece 1: the body. Every answer must be a status in 200..599 (500 only
 * with a message), and a streamed answer must end within 60 s. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "fuzz_util.h"
#include "http_live.h"
#include "pipeline.h"
#include "tokenizer.h"
#include "weights.h"

/* ---- the fake connection ---- */

struct MHD_Response {
    char *body;
    size_t size;
    MHD_ContentReaderCallback reader;
    void *reader_cls;
    MHD_ContentReaderFreeCallback reader_free;
};

typedef struct fake_request {
    const char *content_type;
    char query[1024]; /* "k=v&k=v" */
    unsigned status;
    char *answer; /* the last queued body (owned) */
    size_t answer_size;
} fake_request;

static fake_request request; /* the requests run one at a time, on the fuzzer's thread */

const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind, const char *key)
{
    (void)connection;
    if (kind == MHD_HEADER_KIND)
        return strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0 ? request.content_type : NULL;
    if (kind != MHD_GET_ARGUMENT_KIND)
        return NULL;
    static char value[1024];
    size_t key_length = strlen(key);
    for (const char *p = request.query; *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > key_length && strncmp(p, key, key_length) == 0 && p[key_length] == '=') {
            snprintf(value, sizeof(value), "%.*s", (int)(n - key_length - 1), p + key_length + 1);
            return value;
        }
        p += n + (end ? 1 : 0);
    }
    return NULL;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->body = malloc(size + 1);
    if (!r->body)
        abort();
    if (size)
        memcpy(r->body, buffer, size);
    r->body[size] = '\0';
    r->size = size;
    if (mode == MHD_RESPMEM_MUST_FREE)
        free(buffer);
    return r;
}

struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block_size,
                                                       MHD_ContentReaderCallback crc, void *crc_cls,
                                                       MHD_ContentReaderFreeCallback crfc)
{
    (void)size;
    (void)block_size;
    struct MHD_Response *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->reader = crc;
    r->reader_cls = crc_cls;
    r->reader_free = crfc;
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *response, const char *header, const char *content)
{
    (void)response;
    return header && content ? MHD_YES : MHD_NO;
}

void MHD_destroy_response(struct MHD_Response *response)
{
    if (!response)
        return;
    if (response->reader_free)
        response->reader_free(response->reader_cls);
    free(response->body);
    free(response);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
                                   struct MHD_Response *response)
{
    (void)connection;
    request.status = status_code;
    free(request.answer);
    request.answer = NULL;
    request.answer_size = 0;
    if (!response->reader) {
        request.answer = malloc(response->size + 1);
        memcpy(request.answer, response->body, response->size + 1);
        request.answer_size = response->size;
        return MHD_YES;
    }
    /* a stream: read it to its end, as a client would */
    size_t capacity = 1 << 16;
    request.answer = malloc(capacity);
    time_t start = time(NULL);
    for (;;) {
        char block[4096];
        ssize_t n = response->reader(response->reader_cls, request.answer_size, block, sizeof(block));
        if (n == MHD_CONTENT_READER_END_OF_STREAM || n == MHD_CONTENT_READER_END_WITH_ERROR)
            break;
        if (n < 0)
            abort();
        if (request.answer_size + (size_t)n + 1 > capacity) {
            capacity = 2 * (request.answer_size + (size_t)n + 1);
            request.answer = realloc(request.answer, capacity);
        }
        memcpy(request.answer + request.answer_size, block, (size_t)n);
        request.answer_size += (size_t)n;
        if (time(NULL) - start > 60) {
            fprintf(stderr, "fuzz_http_live: a streamed answer did not end within 60 s\n");
            abort();
        }
    }
    request.answer[request.answer_size] = '\0';
    return MHD_YES;
}

/* ---- the harness ---- */

static g3n_model_config config;
static g3n_weights *weights;
static g3n_tokenizer *tokenizer;
static g3n_http_live *live;
static g3n_broker *broker;
static g3n_local_roles roles;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_error err;
    if (g3n_config_load(&config, G3N_FUZZ_FIXTURES "/../../scripts/demo-config.json", &err) != G3N_OK ||
        g3n_weights_open_synth(&weights, 1, G3N_DTYPE_BF16, &err) != G3N_OK ||
        g3n_tokenizer_load(&tokenizer, G3N_FUZZ_FIXTURES "/tokenizer/tokenizer.json", &err) != G3N_OK) {
        fprintf(stderr, "fuzz_http_live: %s\n", err.message);
        abort();
    }
    g3n_http_live_options options = g3n_http_live_default_options();
    options.max_sessions = 2;
    options.max_tokens = 4;
    options.max_media_bytes = 1 << 20;
    const char *endpoint = "inproc://g3n-fuzz-http-live";
    g3n_transport_options transport = g3n_transport_default_options();
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    if (g3n_broker_start(&broker, &endpoint, 1, &transport, &err) != G3N_OK ||
        g3n_local_roles_start(&roles, broker, endpoint, weights, &config, &ro, 0xffffffffu, &transport, &err) !=
            G3N_OK ||
        g3n_broker_wait_workers(broker, G3N_ROLE_DECODER, 1, 10000, &err) != G3N_OK ||
        g3n_http_live_create(&live, broker, &config, tokenizer, &options, &err) != G3N_OK) {
        fprintf(stderr, "fuzz_http_live: %s\n", err.message);
        abort();
    }
    return 0;
}

static void call(const char *method, const char *url, const char *body, size_t length)
{
    int status = 0;
    request.status = 0;
    enum MHD_Result rc = g3n_http_live_handle(live, (struct MHD_Connection *)&request, method, url, body, length,
                                              &status);
    if (rc != MHD_YES || request.status < 200 || request.status > 599 || (int)request.status != status ||
        (request.status >= 500 && (!request.answer || !strstr(request.answer, "\"message\"")))) {
        fprintf(stderr, "fuzz_http_live: %s %s answered %u (told %d): %.300s\n", method, url, request.status, status,
                request.answer ? request.answer : "");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"application/json", "image/png", "audio/wav", "audio/pcm", NULL,
                                        "application/json; charset=utf-8", "text/plain"};
    const uint8_t *control, *body;
    size_t control_size, body_size;
    if (!g3n_fuzz_piece(data, size, 0, &control, &control_size) || control_size < 2)
        return 0;
    if (!g3n_fuzz_piece(data, size, 1, &body, &body_size)) {
        body = (const uint8_t *)"";
        body_size = 0;
    }
    int action = control[0] % 6;
    snprintf(request.query, sizeof(request.query), "%.*s", (int)(control_size - 2), (const char *)control + 2);
    /* a body in a buffer of its own size, so that a read past it is an ASan report */
    char *copy = malloc(body_size ? body_size : 1);
    if (body_size)
        memcpy(copy, body, body_size);
    if (action == 0) { /* create, with the fuzzed body */
        request.content_type = types[control[1] % 7];
        call("POST", "/v1/live/sessions", copy, body_size);
    } else {
        request.content_type = "application/json";
        call("POST", "/v1/live/sessions", "{}", 2);
    }
    /* the session's id, from the answer to the create */
    char url[256] = "";
    cJSON *json = request.status == 200 ? cJSON_Parse(request.answer) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(json, "id");
    if (cJSON_IsString(id))
        snprintf(url, sizeof(url), "/v1/live/sessions/%s", id->valuestring);
    cJSON_Delete(json);
    if (action == 0 && request.status == 200 && !url[0])
        abort(); /* a session without an id */
    if (url[0] && action != 0) {
        char target[300];
        static const char *const actions[] = {"", "frames", "audio", "ask", "", ""};
        snprintf(target, sizeof(target), "%s%s%s", url, actions[action][0] ? "/" : "", actions[action]);
        request.content_type = types[control[1] % 7];
        call(action == 4 ? "GET" : action == 5 ? "DELETE" : "POST", target, copy, body_size);
    }
    if (url[0]) {
        request.query[0] = '\0';
        call("DELETE", url, NULL, 0);
    }
    free(copy);
    free(request.answer);
    request.answer = NULL;
    return 0;
}
