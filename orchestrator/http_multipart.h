/* http_multipart.h - a multipart/form-data body (RFC 7578) split into its
 * parts, as an OpenAI /v1/audio/transcriptions upload sends it.
 *
 * The whole body is in memory (the server bounds its size first); parts
 * borrow their data from it. */
#ifndef G3N_HTTP_MULTIPART_H
#define G3N_HTTP_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define G3N_MULTIPART_MAX_PARTS 32

typedef struct g3n_multipart_part {
    char name[128];          /* the form field's name */
    char filename[256];      /* "" unless a file */
    char content_type[128];  /* "" when absent */
    const uint8_t *data;     /* borrowed from the body */
    size_t size;
} g3n_multipart_part;

typedef struct g3n_multipart {
    g3n_multipart_part parts[G3N_MULTIPART_MAX_PARTS];
    int count;
} g3n_multipart;

/* content_type: the request's Content-Type header (must be multipart/form-data
 * with a boundary). Errors say what is malformed. */
int g3n_multipart_parse(const char *content_type, const uint8_t *body, size_t size, g3n_multipart *out,
                        g3n_error *err);

/* The first part named `name`, or NULL. */
const g3n_multipart_part *g3n_multipart_find(const g3n_multipart *form, const char *name);

#endif
