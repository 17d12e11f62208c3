/* http_reply.h - answers on a libmicrohttpd connection, shared by the
 * OpenAI-compatible API (http_server.c) and the live sessions (http_live.c):
 * a body, a JSON document (one line and a trailing newline), and OpenAI's
 * error object {"error": {"message", "type", "param", "code"}}.
 *
 * Every send queues the response on the connection (MHD_queue_response) and
 * returns its result; MHD_NO when the response could not be made.
 * Ownership: the sends take what they are given (the malloc'd body, the
 * cJSON tree) and free it, also when they fail. The error is only read. */
#ifndef G3N_HTTP_REPLY_H
#define G3N_HTTP_REPLY_H

#include <microhttpd.h>
#include <stddef.h>

#include "http_request.h"

struct cJSON;

/* body: malloc'd, length bytes; retry_after_seconds > 0 adds a Retry-After header. */
enum MHD_Result g3n_http_send_body(struct MHD_Connection *connection, int status, const char *content_type,
                                   char *body, size_t length, int retry_after_seconds);

/* json printed unformatted as application/json. */
enum MHD_Result g3n_http_send_json(struct MHD_Connection *connection, int status, struct cJSON *json,
                                   int retry_after_seconds);

/* {"error": {...}} for e (param and code null when absent; type server_error
 * when absent); the caller owns the tree. */
struct cJSON *g3n_http_error_object(const g3n_http_error *e);

/* "data: {error object}\n\n": e as a server-sent event, for a stream that
 * fails after its first chunk. malloc'd (caller frees); NULL when out of memory. */
char *g3n_http_error_event(const g3n_http_error *e);

/* e's error object with e's HTTP status. */
enum MHD_Result g3n_http_send_error(struct MHD_Connection *connection, const g3n_http_error *e,
                                    int retry_after_seconds);

#endif
