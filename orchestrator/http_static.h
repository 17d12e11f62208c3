/* http_static.h - the web page (web/ in the repository: chat and live views,
 * issue 20) served at `/` by g3n serve and g3n-orchestrator --http.
 *
 * The files are compiled into the binary (cmake/embed_web.cmake generates the
 * table g3n_web_assets at build time), so the server needs nothing installed
 * beside it and the page loads nothing from elsewhere: its Content-Security-
 * Policy allows only this origin (scripts, styles, fetch) and blob:/data: for
 * the user's own images and recordings. The page uses relative URLs, so it
 * works behind HTTPS and under the same API key as the API. */
#ifndef G3N_HTTP_STATIC_H
#define G3N_HTTP_STATIC_H

#include <microhttpd.h>
#include <stddef.h>

typedef struct g3n_web_asset {
    const char *path;         /* "/index.html" */
    const char *content_type; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t size;
} g3n_web_asset;

/* The generated table; ends with an entry whose path is NULL. */
extern const g3n_web_asset g3n_web_assets[];

/* The asset for a request path ("/" is "/index.html"); NULL: none. The query
 * string is not part of url (libmicrohttpd strips it). */
const g3n_web_asset *g3n_http_static_find(const char *url);

/* Answers GET/HEAD with the asset (405 for other methods). *status: the HTTP
 * status sent. */
enum MHD_Result g3n_http_static_handle(struct MHD_Connection *connection, const char *method,
                                       const g3n_web_asset *asset, int *status);

#endif
