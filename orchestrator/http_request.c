/* http_request.c - OpenAI request bodies (http_request.h). */
#include "http_request.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "http_codec.h"
#include "http_multipart.h"

#define INVALID "invalid_request_error"

int g3n_http_error_set(g3n_http_error *e, int status, const char *type, const char *code, const char *param,
                       const char *format, ...)
{
    if (!e)
        return G3N_ERR;
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list args;
    va_start(args, format);
    vsnprintf(e->message, sizeof(e->message), format, args);
    va_end(args);
    return G3N_ERR;
}

void g3n_http_chat_request_free(g3n_http_chat_request *r)
{
    for (int i = 0; i < r->media_count; i++)
        free((void *)r->media[i].bytes);
    for (int i = 0; i < r->owned_text_count; i++)
        free(r->owned_texts[i]);
    free(r->owned_texts);
    free(r->media);
    free(r->items);
    free(r->messages);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

static g3n_http_limits limits_or_default(const g3n_http_limits *limits)
{
    g3n_http_limits l = {NULL, 32 << 20, 16, 256};
    if (limits) {
        l.allow_dir = limits->allow_dir;
        if (limits->max_media_bytes > 0)
            l.max_media_bytes = limits->max_media_bytes;
        if (limits->max_media > 0)
            l.max_media = limits->max_media;
        if (limits->max_messages > 0)
            l.max_messages = limits->max_messages;
    }
    return l;
}

/* Keeps a malloc'd string until the request is freed; returns it (NULL: out of memory). */
static char *own_text(g3n_http_chat_request *r, char *text)
{
    if (!text)
        return NULL;
    char **grown = realloc(r->owned_texts, sizeof(char *) * (size_t)(r->owned_text_count + 1));
    if (!grown) {
        free(text);
        return NULL;
    }
    r->owned_texts = grown;
    r->owned_texts[r->owned_text_count++] = text;
    return text;
}

static char *copy_text(const char *text, size_t length)
{
    char *s = malloc(length + 1);
    if (s) {
        memcpy(s, text, length);
        s[length] = '\0';
    }
    return s;
}

static int add_media(g3n_http_chat_request *r, const g3n_http_limits *l, g3n_media_kind kind, uint8_t *bytes,
                     size_t size,
                     const char *param, g3n_http_error *e)
{
    if (r->media_count >= l->max_media) {
        free(bytes);
        return g3n_http_error_set(e, 400, INVALID, "too_many_media", param,
                                  "%s: more than %d images and audio clips in one request", param, l->max_media);
    }
    r->media[r->media_count].kind = kind;
    r->media[r->media_count].bytes = bytes;
    r->media[r->media_count].size = size;
    r->media[r->media_count].name = g3n_media_traits_of(kind)->name;
    r->media_count++;
    return G3N_OK;
}

/* A local file under the allowed folder (realpath on both, so no ../ or link escapes). */
static int read_allowed_file(const char *path, const g3n_http_limits *l, const char *param, uint8_t **bytes,
                             size_t *size, g3n_http_error *e)
{
    if (!l->allow_dir)
        return g3n_http_error_set(e, 400, INVALID, "invalid_url", param,
                                  "%s: local paths are not allowed (send a data: URL, or start the server with "
                                  "--allow-dir DIR to allow files under DIR)",
                                  param);
    char root[PATH_MAX], real[PATH_MAX];
    if (!realpath(l->allow_dir, root))
        return g3n_http_error_set(e, 500, "server_error", NULL, param, "the allowed folder %s does not exist",
                                  l->allow_dir);
    /* one answer for missing, outside and not-a-file alike: different ones told a
     * client which paths exist outside the folder (an existence oracle) */
    size_t n = strlen(root);
    struct stat st;
    if (!realpath(path, real) || strncmp(real, root, n) != 0 || (real[n] != '/' && !(n == 1 && root[0] == '/')) ||
        stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        return g3n_http_error_set(e, 400, INVALID, "invalid_url", param,
                                  "%s: %s is not a file under the allowed folder (--allow-dir)", param, path);
    if (st.st_size > l->max_media_bytes)
        return g3n_http_error_set(e, 413, INVALID, "media_too_large", param, "%s: %s is %lld bytes (limit %lld)",
                                  param, path, (long long)st.st_size, (long long)l->max_media_bytes);
    FILE *f = fopen(real, "rb");
    if (!f)
        return g3n_http_error_set(e, 400, INVALID, "invalid_url", param, "%s: cannot read %s", param, path);
    *bytes = malloc((size_t)st.st_size + 1);
    *size = *bytes ? fread(*bytes, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!*bytes || *size != (size_t)st.st_size) {
        free(*bytes);
        *bytes = NULL;
        return g3n_http_error_set(e, 500, "server_error", NULL, param, "%s: reading %s failed", param, path);
    }
    return G3N_OK;
}

/* image_url / audio_url: a data: URL, or a local path (file:// or absolute) under --allow-dir. */
static int load_url(g3n_http_chat_request *r, const g3n_http_limits *l, const cJSON *value, g3n_media_kind kind,
                    const char *param, g3n_http_error *e)
{
    const cJSON *url = cJSON_IsObject(value) ? cJSON_GetObjectItemCaseSensitive(value, "url") : value;
    char where[128];
    snprintf(where, sizeof(where), "%s%s", param, cJSON_IsObject(value) ? ".url" : "");
    if (!cJSON_IsString(url) || !url->valuestring[0])
        return g3n_http_error_set(e, 400, INVALID, "invalid_value", where, "%s must be a non-empty string", where);
    const char *u = url->valuestring;
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (strncasecmp(u, "data:", 5) == 0) {
        g3n_error err;
        char mime[64];
        if (g3n_data_url_decode(u, l->max_media_bytes, where, mime, sizeof(mime), &bytes, &size, &err) != G3N_OK)
            return g3n_http_error_set(e, strstr(err.message, "limit") ? 413 : 400, INVALID, "invalid_data_url", where,
                                      "%s", err.message);
        if (size == 0) {
            free(bytes);
            return g3n_http_error_set(e, 400, INVALID, kind == G3N_MEDIA_AUDIO ? "invalid_audio" : "invalid_image", where,
                                      "%s: the data: URL holds no bytes", where);
        }
    } else if (strncasecmp(u, "file://", 7) == 0 || u[0] == '/') {
        if (read_allowed_file(u[0] == '/' ? u : u + 7, l, where, &bytes, &size, e) != G3N_OK)
            return G3N_ERR;
    } else {
        return g3n_http_error_set(e, 400, INVALID, "invalid_url", where,
                                  "%s: only data: URLs are accepted (and local paths under --allow-dir); this server "
                                  "does not fetch '%.40s...'",
                                  where, u);
    }
    return add_media(r, l, kind, bytes, size, where, e);
}

static int known_audio_format(const char *format)
{
    static const char *const formats[] = {"wav", "mp3", "flac", "ogg", "opus", "m4a", "aac", "webm", "mp4", "mpeg",
                                          "mpga", "oga", "wave"};
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcasecmp(format, formats[i]) == 0)
            return 1;
    return 0;
}

static int load_input_audio(g3n_http_chat_request *r, const g3n_http_limits *l, const cJSON *value,
                            const char *param, g3n_http_error *e)
{
    char where[128];
    if (!cJSON_IsObject(value))
        return g3n_http_error_set(e, 400, INVALID, "invalid_value", param,
                                  "%s must be an object {\"data\": base64, \"format\": \"wav\"|\"mp3\"|...}", param);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(value, "data");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(value, "format");
    snprintf(where, sizeof(where), "%s.format", param);
    if (format && !cJSON_IsNull(format)) {
        if (!cJSON_IsString(format))
            return g3n_http_error_set(e, 400, INVALID, "invalid_value", where, "%s must be a string", where);
        if (!known_audio_format(format->valuestring))
            return g3n_http_error_set(e, 400, INVALID, "invalid_value", where,
                                      "%s: unsupported audio format '%.32s' (wav, mp3, flac, ogg, opus, m4a, aac, "
                                      "webm, mp4)",
                                      where, format->valuestring);
    }
    snprintf(where, sizeof(where), "%s.data", param);
    if (!cJSON_IsString(data) || !data->valuestring[0])
        return g3n_http_error_set(e, 400, INVALID, "invalid_value", where, "%s must be a non-empty base64 string",
                                  where);
    uint8_t *bytes;
    size_t size;
    g3n_error err;
    if (g3n_base64_decode(data->valuestring, strlen(data->valuestring), l->max_media_bytes, where, &bytes, &size,
                          &err) != G3N_OK)
        return g3n_http_error_set(e, strstr(err.message, "limit") ? 413 : 400, INVALID, "invalid_base64", where, "%s",
                                  err.message);
    return add_media(r, l, 1, bytes, size, where, e);
}

/* One message's content -> items (and media). */
static int parse_content(g3n_http_chat_request *r, const g3n_http_limits *l, int index, const cJSON *content,
                         int system, g3n_chat_message *message, g3n_http_error *e)
{
    char param[96];
    snprintf(param, sizeof(param), "messages[%d].content", index);
    message->items = &r->items[r->item_count];
    message->item_count = 0;
    if (!content || cJSON_IsNull(content) || cJSON_IsString(content)) {
        r->items[r->item_count++] = (g3n_chat_item){G3N_CHAT_TEXT, cJSON_IsString(content) ? content->valuestring : ""};
        message->item_count = 1;
        return G3N_OK;
    }
    if (!cJSON_IsArray(content))
        return g3n_http_error_set(e, 400, INVALID, "invalid_type", param, "%s must be a string or an array of parts",
                                  param);
    int parts = cJSON_GetArraySize(content);
    if (system) { /* the template takes one text: join the parts */
        size_t total = 1;
        const cJSON *part;
        int j = 0;
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text))
                return g3n_http_error_set(e, 400, INVALID, "invalid_content", param,
                                          "%s[%d]: a system message may hold only text parts", param, j);
            total += strlen(text->valuestring) + 1;
            j++;
        }
        char *joined = own_text(r, malloc(total));
        if (!joined)
            return g3n_http_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        joined[0] = '\0';
        cJSON_ArrayForEach(part, content)
        {
            if (joined[0])
                strcat(joined, "\n");
            strcat(joined, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
        }
        r->items[r->item_count++] = (g3n_chat_item){G3N_CHAT_TEXT, joined};
        message->item_count = 1;
        return G3N_OK;
    }
    if (parts == 0) {
        r->items[r->item_count++] = (g3n_chat_item){G3N_CHAT_TEXT, ""};
        message->item_count = 1;
        return G3N_OK;
    }
    int j = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        char where[128];
        snprintf(where, sizeof(where), "%s[%d]", param, j);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return g3n_http_error_set(e, 400, INVALID, "invalid_content", where,
                                      "%s must be an object with a string \"type\"", where);
        const char *t = type->valuestring;
        char field[160];
        snprintf(field, sizeof(field), "%s.%s", where, t);
        if (strcmp(t, "text") == 0) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(text))
                return g3n_http_error_set(e, 400, INVALID, "invalid_value", field, "%s must be a string", field);
            r->items[r->item_count++] = (g3n_chat_item){G3N_CHAT_TEXT, text->valuestring};
        } else if (strcmp(t, "image_url") == 0 || strcmp(t, "audio_url") == 0) {
            g3n_media_kind kind = t[0] == 'a' ? G3N_MEDIA_AUDIO : G3N_MEDIA_IMAGE;
            if (load_url(r, l, cJSON_GetObjectItemCaseSensitive(part, t), kind, field, e) != G3N_OK)
                return G3N_ERR;
            r->items[r->item_count++] = (g3n_chat_item){g3n_media_traits_of(kind)->item, NULL};
        } else if (strcmp(t, "input_audio") == 0) {
            if (load_input_audio(r, l, cJSON_GetObjectItemCaseSensitive(part, t), field, e) != G3N_OK)
                return G3N_ERR;
            r->items[r->item_count++] = (g3n_chat_item){G3N_CHAT_AUDIO, NULL};
        } else {
            return g3n_http_error_set(e, 400, INVALID, "unsupported_content_type", where,
                                      "%s: unknown content part type '%.40s' (supported: text, image_url, "
                                      "input_audio, audio_url)",
                                      where, t);
        }
        message->item_count++;
        j++;
    }
    return G3N_OK;
}

static int get_number(const cJSON *root, const char *key, double low, double high, int *present, double *out,
                      g3n_http_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *present = 0;
    if (!v || cJSON_IsNull(v))
        return G3N_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return g3n_http_error_set(e, 400, INVALID, "invalid_type", key, "%s must be a number", key);
    if (v->valuedouble < low || v->valuedouble > high)
        return g3n_http_error_set(e, 400, INVALID, "invalid_value", key, "%s must be between %g and %g (got %g)", key,
                                  low, high, v->valuedouble);
    *present = 1;
    *out = v->valuedouble;
    return G3N_OK;
}

static int get_integer(const cJSON *root, const char *key, double low, double high, int *present, int64_t *out,
                       g3n_http_error *e)
{
    double d = 0;
    if (get_number(root, key, low, high, present, &d, e) != G3N_OK)
        return G3N_ERR;
    if (*present && d != floor(d))
        return g3n_http_error_set(e, 400, INVALID, "invalid_type", key, "%s must be an integer (got %g)", key, d);
    if (*present)
        *out = (int64_t)d;
    return G3N_OK;
}

static int parse_parameters(const cJSON *root, g3n_http_chat_request *r, g3n_http_error *e)
{
    int present;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model))
        return g3n_http_error_set(e, 400, INVALID, "invalid_type", "model", "model must be a string");
    r->model = cJSON_IsString(model) ? model->valuestring : "";
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (stream && !cJSON_IsNull(stream) && !cJSON_IsBool(stream))
        return g3n_http_error_set(e, 400, INVALID, "invalid_type", "stream", "stream must be true or false");
    r->stream = cJSON_IsTrue(stream);
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (cJSON_IsObject(options))
        r->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(options, "include_usage"));
    r->max_tokens = -1;
    int64_t v;
    if (get_integer(root, "max_tokens", 1, 1e9, &present, &v, e) != G3N_OK)
        return G3N_ERR;
    if (present)
        r->max_tokens = v;
    if (get_integer(root, "max_completion_tokens", 1, 1e9, &present, &v, e) != G3N_OK)
        return G3N_ERR;
    if (present)
        r->max_tokens = v;
    if (get_number(root, "temperature", 0, 2, &r->has_temperature, &r->temperature, e) != G3N_OK)
        return G3N_ERR;
    r->top_p = 1.0;
    if (get_number(root, "top_p", 0, 1, &present, &r->top_p, e) != G3N_OK)
        return G3N_ERR;
    if (present && r->top_p <= 0.0)
        return g3n_http_error_set(e, 400, INVALID, "invalid_value", "top_p", "top_p must be greater than 0");
    r->top_k = 0;
    if (get_integer(root, "top_k", -1, 1e9, &present, &r->top_k, e) != G3N_OK)
        return G3N_ERR;
    if (r->top_k < 0)
        r->top_k = 0; /* -1: off, as in vLLM */
    if (get_number(root, "min_p", 0, 1, &present, &r->min_p, e) != G3N_OK)
        return G3N_ERR;
    int64_t seed = 0;
    if (get_integer(root, "seed", -9.2e18, 9.2e18, &r->has_seed, &seed, e) != G3N_OK)
        return G3N_ERR;
    r->seed = (uint64_t)seed;
    int64_t n = 1;
    if (get_integer(root, "n", 1, 1e9, &present, &n, e) != G3N_OK)
        return G3N_ERR;
    if (n != 1)
        return g3n_http_error_set(e, 400, INVALID, "invalid_value", "n", "only n = 1 is supported (got %lld)",
                                  (long long)n);
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (cJSON_IsString(stop)) {
        if (stop->valuestring[0])
            r->stops[r->stop_count++] = stop->valuestring;
    } else if (cJSON_IsArray(stop)) {
        if (cJSON_GetArraySize(stop) > G3N_STOP_MAX)
            return g3n_http_error_set(e, 400, INVALID, "invalid_value", "stop", "at most %d stop strings",
                                      G3N_STOP_MAX);
        const cJSON *s;
        cJSON_ArrayForEach(s, stop)
        {
            if (!cJSON_IsString(s))
                return g3n_http_error_set(e, 400, INVALID, "invalid_type", "stop", "stop must hold strings");
            if (s->valuestring[0])
                r->stops[r->stop_count++] = s->valuestring;
        }
    } else if (stop && !cJSON_IsNull(stop)) {
        return g3n_http_error_set(e, 400, INVALID, "invalid_type", "stop", "stop must be a string or an array");
    }
    static const char *const unsupported[] = {"tools", "functions", "logprobs", "response_format"};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, unsupported[i]);
        if (u && !cJSON_IsNull(u) && !cJSON_IsFalse(u) &&
            !(cJSON_IsArray(u) && cJSON_GetArraySize(u) == 0) &&
            !(strcmp(unsupported[i], "response_format") == 0 && cJSON_IsObject(u) &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(u, "type")) &&
              strcmp(cJSON_GetObjectItemCaseSensitive(u, "type")->valuestring, "text") == 0))
            return g3n_http_error_set(e, 400, INVALID, "unsupported_parameter", unsupported[i],
                                      "%s is not supported by this server", unsupported[i]);
    }
    return G3N_OK;
}

int g3n_http_parse_chat(const char *body, size_t size, const g3n_http_limits *limits, g3n_http_chat_request *r,
                        g3n_http_error *e)
{
    memset(r, 0, sizeof(*r));
    g3n_http_limits l = limits_or_default(limits);
    if (size == 0)
        return g3n_http_error_set(e, 400, INVALID, "invalid_json", NULL,
                                  "the request body is empty (expected a JSON object)");
    const char *end = NULL;
    r->json = cJSON_ParseWithLengthOpts(body, size, &end, 0);
    if (!r->json) {
        size_t offset = end && end >= body && end <= body + size ? (size_t)(end - body) : 0;
        return g3n_http_error_set(e, 400, INVALID, "invalid_json", NULL,
                                  "the request body is not valid JSON (error at byte %zu of %zu)", offset, size);
    }
    if (end && (size_t)(end - body) < size) {
        size_t i = (size_t)(end - body);
        while (i < size && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
            i++;
        if (i < size) {
            g3n_http_chat_request_free(r);
            return g3n_http_error_set(e, 400, INVALID, "invalid_json", NULL,
                                      "the request body has data after its JSON value (at byte %zu)", i);
        }
    }
    const cJSON *root = r->json;
    if (!cJSON_IsObject(root)) {
        g3n_http_chat_request_free(r);
        return g3n_http_error_set(e, 400, INVALID, "invalid_json", NULL, "the request body must be a JSON object");
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    int rc = G3N_ERR;
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        g3n_http_error_set(e, 400, INVALID, "invalid_value", "messages", "messages must be a non-empty array");
        goto done;
    }
    int count = cJSON_GetArraySize(messages);
    if (count > l.max_messages) {
        g3n_http_error_set(e, 400, INVALID, "invalid_value", "messages", "at most %d messages (got %d)",
                           l.max_messages, count);
        goto done;
    }
    int total_items = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        total_items += cJSON_IsArray(content) && cJSON_GetArraySize(content) > 0 ? cJSON_GetArraySize(content) : 1;
    }
    r->messages = calloc((size_t)count, sizeof(*r->messages));
    r->items = calloc((size_t)total_items, sizeof(*r->items));
    r->media = calloc((size_t)l.max_media, sizeof(*r->media));
    if (!r->messages || !r->items || !r->media) {
        g3n_http_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    int i = 0;
    cJSON_ArrayForEach(m, messages)
    {
        char param[64];
        snprintf(param, sizeof(param), "messages[%d].role", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            g3n_http_error_set(e, 400, INVALID, "invalid_value", param, "messages[%d] must be an object with a role",
                               i);
            goto done;
        }
        const char *name = role->valuestring;
        int system = 0;
        if (strcmp(name, "system") == 0 || strcmp(name, "developer") == 0) {
            if (i != 0) {
                g3n_http_error_set(e, 400, INVALID, "invalid_value", param,
                                   "messages[%d]: a %s message is only allowed first", i, name);
                goto done;
            }
            system = 1;
            r->messages[i].role = "system";
        } else if (strcmp(name, "user") == 0) {
            r->messages[i].role = "user";
        } else if (strcmp(name, "assistant") == 0 || strcmp(name, "model") == 0) {
            r->messages[i].role = "model";
        } else {
            g3n_http_error_set(e, 400, INVALID, "invalid_value", param,
                               "messages[%d]: unsupported role '%.32s' (system, developer, user, assistant)", i,
                               name);
            goto done;
        }
        if (parse_content(r, &l, i, cJSON_GetObjectItemCaseSensitive(m, "content"), system, &r->messages[i], e) !=
            G3N_OK)
            goto done;
        i++;
    }
    r->message_count = count;
    if (parse_parameters(root, r, e) != G3N_OK)
        goto done;
    rc = G3N_OK;
done:
    if (rc != G3N_OK)
        g3n_http_chat_request_free(r);
    return rc;
}

/* Reads a multipart text field into an owned string ("" when absent). */
static const char *form_text(g3n_http_chat_request *r, const g3n_multipart *form, const char *name)
{
    const g3n_multipart_part *p = g3n_multipart_find(form, name);
    if (!p)
        return "";
    char *s = own_text(r, copy_text((const char *)p->data, p->size));
    return s ? s : "";
}

int g3n_http_parse_transcription(const char *content_type, const uint8_t *body, size_t size,
                                 const g3n_http_limits *limits, g3n_http_chat_request *r, g3n_http_error *e)
{
    memset(r, 0, sizeof(*r));
    g3n_http_limits l = limits_or_default(limits);
    g3n_multipart form;
    g3n_error err;
    if (g3n_multipart_parse(content_type, body, size, &form, &err) != G3N_OK)
        return g3n_http_error_set(e, 400, INVALID, "invalid_multipart", NULL, "%s", err.message);
    const g3n_multipart_part *file = g3n_multipart_find(&form, "file");
    if (!file)
        return g3n_http_error_set(e, 400, INVALID, "invalid_value", "file",
                                  "the upload has no 'file' field (multipart/form-data with the audio clip)");
    if (file->size == 0)
        return g3n_http_error_set(e, 400, INVALID, "invalid_audio", "file", "the uploaded file is empty");
    if ((int64_t)file->size > l.max_media_bytes)
        return g3n_http_error_set(e, 413, INVALID, "media_too_large", "file", "file: %zu bytes (limit %lld)",
                                  file->size, (long long)l.max_media_bytes);
    r->messages = calloc(1, sizeof(*r->messages));
    r->items = calloc(2, sizeof(*r->items));
    r->media = calloc(1, sizeof(*r->media));
    uint8_t *bytes = malloc(file->size);
    if (!r->messages || !r->items || !r->media || !bytes) {
        free(bytes);
        g3n_http_chat_request_free(r);
        return g3n_http_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    memcpy(bytes, file->data, file->size);
    add_media(r, &l, 1, bytes, file->size, "file", e);
    r->model = form_text(r, &form, "model");
    const char *language = form_text(r, &form, "language");
    const char *prompt = form_text(r, &form, "prompt");
    const char *format = form_text(r, &form, "response_format");
    const char *temperature = form_text(r, &form, "temperature");
    if (format[0] && strcmp(format, "json") != 0 && strcmp(format, "text") != 0) {
        g3n_http_error_set(e, 400, INVALID, "invalid_value", "response_format",
                           "response_format '%.32s' is not supported (json, text)", format);
        g3n_http_chat_request_free(r); /* after the message: format lives in r */
        return G3N_ERR;
    }
    r->response_text = strcmp(format, "text") == 0;
    if (temperature[0]) {
        char *end;
        double t = strtod(temperature, &end);
        if (*end || !(t >= 0.0 && t <= 2.0)) {
            g3n_http_chat_request_free(r);
            return g3n_http_error_set(e, 400, INVALID, "invalid_value", "temperature",
                                      "temperature must be a number between 0 and 2");
        }
        r->has_temperature = 1;
        r->temperature = t;
    }
    if (strlen(language) > 32 || strlen(prompt) > 4096) {
        g3n_http_error_set(e, 400, INVALID, "invalid_value", strlen(language) > 32 ? "language" : "prompt",
                           "language (at most 32 bytes) or prompt (4096 bytes) too long");
        g3n_http_chat_request_free(r);
        return G3N_ERR;
    }
    /* the model's transcription prompt (as vLLM's Gemma 3n): the clip, then the instruction */
    size_t n = strlen(prompt) + strlen(language) + 64;
    char *instruction = own_text(r, malloc(n));
    if (!instruction) {
        g3n_http_chat_request_free(r);
        return g3n_http_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    snprintf(instruction, n, "%s%sTranscribe this audio%s%s.", prompt, prompt[0] ? "\n" : "",
             language[0] ? " into " : "", language);
    r->items[0] = (g3n_chat_item){G3N_CHAT_AUDIO, NULL};
    r->items[1] = (g3n_chat_item){G3N_CHAT_TEXT, instruction};
    r->item_count = 2;
    r->messages[0] = (g3n_chat_message){"user", r->items, 2};
    r->message_count = 1;
    r->max_tokens = -1;
    r->top_p = 1.0;
    r->transcription = 1;
    return G3N_OK;
}
