/* http_reply.c - answers on a libmicrohttpd connection (http_reply.h). */
#include "http_reply.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result g3n_http_send_body(struct MHD_Connection *connection, int status, const char *content_type,
                                   char *body, size_t length, int retry_after_seconds)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(length, body, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (retry_after_seconds > 0) {
        char seconds[16];
        snprintf(seconds, sizeof(seconds), "%d", retry_after_seconds);
        MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    enum MHD_Result rc = MHD_queue_response(connection, (unsigned)status, response);
    MHD_destroy_response(response);
    return rc;
}

enum MHD_Result g3n_http_send_json(struct MHD_Connection *connection, int status, cJSON *json,
                                   int retry_after_seconds)
{
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    if (!text)
        return MHD_NO;
    size_t n = strlen(text);
    char *body = realloc(text, n + 2); /* a trailing newline, as curl users like */
    if (!body) {
        free(text);
        return MHD_NO;
    }
    body[n] = '\n';
    body[n + 1] = '\0';
    return g3n_http_send_body(connection, status, "application/json", body, n + 1, retry_after_seconds);
}

cJSON *g3n_http_error_object(const g3n_http_error *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *error = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(error, "message", e->message);
    cJSON_AddStringToObject(error, "type", e->type ? e->type : "server_error");
    if (e->param[0])
        cJSON_AddStringToObject(error, "param", e->param);
    else
        cJSON_AddNullToObject(error, "param");
    if (e->code)
        cJSON_AddStringToObject(error, "code", e->code);
    else
        cJSON_AddNullToObject(error, "code");
    return root;
}

char *g3n_http_error_event(const g3n_http_error *e)
{
    cJSON *error = g3n_http_error_object(e);
    char *json = cJSON_PrintUnformatted(error);
    cJSON_Delete(error);
    if (!json)
        return NULL;
    size_t n = strlen(json);
    char *event = malloc(n + 9);
    if (event)
        snprintf(event, n + 9, "data: %s\n\n", json);
    free(json);
    return event;
}

enum MHD_Result g3n_http_send_error(struct MHD_Connection *connection, const g3n_http_error *e,
                                    int retry_after_seconds)
{
    return g3n_http_send_json(connection, e->status, g3n_http_error_object(e), retry_after_seconds);
}
