/* http_multipart.c - multipart/form-data (http_multipart.h). */
#include "http_multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* memmem without relying on _GNU_SOURCE being visible everywhere. */
static const uint8_t *find_bytes(const uint8_t *haystack, size_t size, const uint8_t *needle, size_t length)
{
    if (length == 0 || size < length)
        return NULL;
    for (size_t i = 0; i + length <= size; i++) {
        const uint8_t *p = memchr(haystack + i, needle[0], size - length - i + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, length) == 0)
            return p;
        i = (size_t)(p - haystack);
    }
    return NULL;
}

/* Copies the value of `key=` (quoted or not) from a header's parameters. */
static int header_param(const char *header, size_t length, const char *key, char *out, size_t out_size)
{
    size_t key_length = strlen(key);
    for (size_t i = 0; i + key_length < length; i++) {
        if ((i == 0 || header[i - 1] == ';' || header[i - 1] == ' ' || header[i - 1] == '\t') &&
            strncasecmp(header + i, key, key_length) == 0 && header[i + key_length] == '=') {
            size_t j = i + key_length + 1, n = 0;
            int quoted = j < length && header[j] == '"';
            if (quoted)
                j++;
            while (j < length && (quoted ? header[j] != '"' : header[j] != ';' && header[j] != ' ')) {
                if (quoted && header[j] == '\\' && j + 1 < length)
                    j++;
                if (n + 1 < out_size)
                    out[n++] = header[j];
                j++;
            }
            out[n] = '\0';
            return 1;
        }
    }
    return 0;
}

int g3n_multipart_parse(const char *content_type, const uint8_t *body, size_t size, g3n_multipart *out,
                        g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0)
        return g3n_error_set(err, "Content-Type must be multipart/form-data (got '%s')",
                             content_type ? content_type : "");
    char boundary[128];
    if (!header_param(content_type, strlen(content_type), "boundary", boundary, sizeof(boundary)) || !boundary[0])
        return g3n_error_set(err, "multipart/form-data without a boundary parameter");
    if (strlen(boundary) > 70)
        return g3n_error_set(err, "multipart boundary longer than 70 characters");
    uint8_t delimiter[80];
    size_t delimiter_length = (size_t)snprintf((char *)delimiter, sizeof(delimiter), "--%s", boundary);
    /* the first delimiter may follow a preamble */
    const uint8_t *p = find_bytes(body, size, delimiter, delimiter_length);
    if (!p)
        return g3n_error_set(err, "multipart body does not contain its boundary '%s'", boundary);
    const uint8_t *end = body + size;
    for (;;) {
        p += delimiter_length;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return G3N_OK; /* the close delimiter */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return g3n_error_set(err, "multipart part %d: no CRLF after the boundary", out->count + 1);
        p += 2;
        const uint8_t *headers_end = find_bytes(p, (size_t)(end - p), (const uint8_t *)"\r\n\r\n", 4);
        if (!headers_end && end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            headers_end = p - 2; /* no headers at all */
        if (!headers_end)
            return g3n_error_set(err, "multipart part %d: headers do not end (no blank line)", out->count + 1);
        if (out->count == G3N_MULTIPART_MAX_PARTS)
            return g3n_error_set(err, "multipart body has more than %d parts", G3N_MULTIPART_MAX_PARTS);
        g3n_multipart_part *part = &out->parts[out->count];
        int has_disposition = 0;
        for (const uint8_t *line = p; line < headers_end;) {
            const uint8_t *line_end = find_bytes(line, (size_t)(headers_end + 2 - line), (const uint8_t *)"\r\n", 2);
            if (!line_end)
                line_end = headers_end;
            const char *h = (const char *)line;
            size_t length = (size_t)(line_end - line);
            if (length > 20 && strncasecmp(h, "Content-Disposition:", 20) == 0) {
                has_disposition = 1;
                header_param(h + 20, length - 20, "name", part->name, sizeof(part->name));
                header_param(h + 20, length - 20, "filename", part->filename, sizeof(part->filename));
            } else if (length > 13 && strncasecmp(h, "Content-Type:", 13) == 0) {
                size_t i = 13;
                while (i < length && (h[i] == ' ' || h[i] == '\t'))
                    i++;
                size_t n = length - i < sizeof(part->content_type) - 1 ? length - i : sizeof(part->content_type) - 1;
                memcpy(part->content_type, h + i, n);
                part->content_type[n] = '\0';
            }
            line = line_end + 2;
        }
        if (!has_disposition || !part->name[0])
            return g3n_error_set(err, "multipart part %d has no Content-Disposition name", out->count + 1);
        const uint8_t *data = headers_end + 4;
        if (data > end)
            data = end;
        /* the part ends at CRLF + delimiter */
        uint8_t closing[84];
        closing[0] = '\r';
        closing[1] = '\n';
        memcpy(closing + 2, delimiter, delimiter_length);
        const uint8_t *next = find_bytes(data, (size_t)(end - data), closing, delimiter_length + 2);
        if (!next)
            return g3n_error_set(err, "multipart part '%s' is not closed by its boundary (truncated body?)",
                                 part->name);
        part->data = data;
        part->size = (size_t)(next - data);
        out->count++;
        p = next + 2;
    }
}

const g3n_multipart_part *g3n_multipart_find(const g3n_multipart *form, const char *name)
{
    for (int i = 0; i < form->count; i++)
        if (strcmp(form->parts[i].name, name) == 0)
            return &form->parts[i];
    return NULL;
}
