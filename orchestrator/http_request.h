/* http_request.h - OpenAI request bodies -> what the pipeline needs.
 *
 *   POST /v1/chat/completions  JSON: messages (system/developer, user,
 *       assistant; content a string or parts: text, image_url, input_audio,
 *       audio_url) and the sampling parameters.
 *   POST /v1/audio/transcriptions  multipart: file, model, prompt, language,
 *       response_format, temperature.
 *
 * Every problem becomes a g3n_http_error: the HTTP status and OpenAI's error
 * object (message, type, param, code), so the server can answer it as is.
 *
 * Ownership: a parsed request owns everything it points to (the cJSON tree
 * that message texts borrow from, joined texts, decoded media bytes); free it
 * with g3n_http_chat_request_free. */
#ifndef G3N_HTTP_REQUEST_H
#define G3N_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "http_stop.h"
#include "pipeline.h"
#include "status.h"

struct cJSON;

typedef struct g3n_http_error {
    int status;        /* HTTP status: 400, 404, 413, 429, 500, 503, ... */
    const char *type;  /* OpenAI error type: invalid_request_error, server_error, ... (static string) */
    const char *code;  /* machine-readable code or NULL (static string) */
    char param[96];    /* the request field at fault, "" when none */
    char message[1024];
} g3n_http_error;

/* Fills e; returns G3N_ERR (so parsers can `return g3n_http_error_set(...)`). */
int g3n_http_error_set(g3n_http_error *e, int status, const char *type, const char *code, const char *param,
                       const char *format, ...) G3N_PRINTF(6, 7);

typedef struct g3n_http_limits {
    const char *allow_dir;    /* local image/audio paths only under this folder; NULL: none */
    int64_t max_media_bytes;  /* one decoded image or clip (default 32 MiB) */
    int max_media;            /* media items in one request (default 16) */
    int max_messages;         /* default 256 */
} g3n_http_limits;

typedef struct g3n_http_chat_request {
    struct cJSON *json;           /* the parsed body: texts borrow from it */
    g3n_chat_message *messages;   /* roles normalized for the template ("system", "user", "model") */
    int message_count;
    g3n_chat_item *items;         /* every message's items, in order */
    int item_count;
    g3n_media_file *media;        /* images and clips in prompt order; bytes owned */
    int media_count;
    char **owned_texts;           /* joined system texts, transcription prompts */
    int owned_text_count;

    const char *model;            /* "" when absent */
    int stream;
    int include_usage;            /* stream_options.include_usage */
    int64_t max_tokens;           /* max_completion_tokens or max_tokens; -1: not given */
    int has_temperature;
    double temperature;
    double top_p;                 /* 1: off */
    int64_t top_k;                /* 0: off */
    double min_p;                 /* 0: off */
    int has_seed;
    uint64_t seed;
    const char *stops[G3N_STOP_MAX];
    int stop_count;
    int transcription;            /* 1: from /v1/audio/transcriptions */
    int response_text;            /* transcription response_format=text */
} g3n_http_chat_request;

/* Parses a chat completion body (JSON text, not NUL-terminated). */
int g3n_http_parse_chat(const char *body, size_t size, const g3n_http_limits *limits, g3n_http_chat_request *out,
                        g3n_http_error *e);

/* Parses a transcription upload into the model's transcription prompt: one
 * user turn holding the clip and "Transcribe this audio[ into LANGUAGE]."
 * (plus the client's prompt as context). */
int g3n_http_parse_transcription(const char *content_type, const uint8_t *body, size_t size,
                                 const g3n_http_limits *limits, g3n_http_chat_request *out, g3n_http_error *e);

void g3n_http_chat_request_free(g3n_http_chat_request *request); /* accepts a zeroed struct */

#endif
