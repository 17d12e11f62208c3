/* fuzz_http_multipart.c - a POST /v1/audio/transcriptions upload: the
 * Content-Type header (boundary) and the multipart/form-data body
 * (orchestrator/http_multipart.c), then the transcription request built from
 * it (orchestrator/http_request.c). Input: the header, "\n--g3n--\n", the body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http_multipart.h"
#include "http_request.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *header, *body;
    size_t header_size, body_size;
    if (!g3n_fuzz_piece(data, size, 0, &header, &header_size) || !g3n_fuzz_piece(data, size, 1, &body, &body_size))
        return 0;
    char *content_type = g3n_fuzz_string(header, header_size);
    /* the body in a buffer of its own size, so that a read past it is an ASan report */
    uint8_t *copy = malloc(body_size ? body_size : 1);
    if (!copy)
        abort();
    if (body_size)
        memcpy(copy, body, body_size);
    g3n_multipart *form = calloc(1, sizeof(*form));
    if (!form)
        abort();
    g3n_error err;
    if (g3n_multipart_parse(content_type, copy, body_size, form, &err) == G3N_OK) {
        for (int i = 0; i < form->count; i++) {
            const g3n_multipart_part *p = &form->parts[i];
            if (p->data < copy || p->data + p->size > copy + body_size)
                abort(); /* a part outside the body */
            sink += g3n_fuzz_touch(p->data, p->size) + strlen(p->name) + strlen(p->filename);
            if (g3n_multipart_find(form, p->name) == NULL)
                abort();
        }
    }
    free(form);
    g3n_http_limits limits = {NULL, 1 << 20, 4, 16};
    g3n_http_chat_request request;
    memset(&request, 0, sizeof(request));
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    if (g3n_http_parse_transcription(content_type, copy, body_size, &limits, &request, &e) == G3N_OK) {
        for (int i = 0; i < request.media_count; i++)
            sink += g3n_fuzz_touch(request.media[i].bytes, request.media[i].size);
    } else if (e.status < 400 || e.status > 599 || !e.message[0]) {
        fprintf(stderr, "an error without a status or message: %d\n", e.status);
        abort();
    }
    g3n_http_chat_request_free(&request);
    free(copy);
    free(content_type);
    return 0;
}
