/* http_static.c - the web page's files (http_static.h). */
#include "http_static.h"

#include <string.h>

#include "http_reply.h"

/* Only this origin; the user's images and recordings are blob:/data: URLs;
 * no framing (clickjacking), no inline script (model text never becomes
 * markup, and this is the second line of defence). */
#define CONTENT_SECURITY_POLICY                                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: " \
    "data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "       \
    "frame-ancestors 'none'"

const g3n_web_asset *g3n_http_static_find(const char *url)
{
    if (!url)
        return NULL;
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    for (const g3n_web_asset *a = g3n_web_assets; a->path; a++)
        if (strcmp(a->path, url) == 0)
            return a;
    return NULL;
}

enum MHD_Result g3n_http_static_handle(struct MHD_Connection *connection, const char *method,
                                       const g3n_web_asset *asset, int *status)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        g3n_http_error e;
        g3n_http_error_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                           "%s is not allowed on %s (the web page: GET)", method, asset->path);
        *status = 405;
        return g3n_http_send_error(connection, &e, 0);
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer(asset->size, (void *)asset->data, MHD_RESPMEM_PERSISTENT);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, asset->content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(response, "X-Frame-Options", "DENY");
    MHD_add_response_header(response, "Content-Security-Policy", CONTENT_SECURITY_POLICY);
    MHD_add_response_header(response, "Permissions-Policy", "camera=(self), microphone=(self)");
    enum MHD_Result rc = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    *status = 200;
    return rc;
}
