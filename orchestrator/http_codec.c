/* http_codec.c - base64 and data: URLs (http_codec.h). */
#include "http_codec.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 0..63, or -1 for a character outside both alphabets. */
static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int g3n_base64_decode(const char *text, size_t length, int64_t max_bytes, const char *what, uint8_t **out,
                      size_t *out_size, g3n_error *err)
{
    *out = NULL;
    *out_size = 0;
    size_t capacity = length / 4 * 3 + 3;
    if (max_bytes > 0 && (int64_t)(length / 4 * 3) > max_bytes + 3)
        return g3n_error_set(err, "%s: %zu base64 characters decode to more than the limit of %lld bytes", what,
                             length, (long long)max_bytes);
    uint8_t *bytes = malloc(capacity ? capacity : 1);
    if (!bytes)
        return g3n_error_set(err, "%s: out of memory for %zu bytes", what, capacity);
    size_t n = 0;
    uint32_t accumulator = 0;
    int bits = 0, padding = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            padding++;
            continue;
        }
        int v = base64_value(c);
        if (v < 0 || padding) {
            free(bytes);
            if (v < 0)
                return g3n_error_set(err, "%s: not base64: character 0x%02x at offset %zu", what, c, i);
            return g3n_error_set(err, "%s: not base64: data after '=' padding at offset %zu", what, i);
        }
        accumulator = (accumulator << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[n++] = (uint8_t)(accumulator >> bits);
        }
    }
    /* a lone trailing character carries 6 bits: not a whole byte */
    if (bits >= 6 || padding > 2) {
        free(bytes);
        return g3n_error_set(err, "%s: not base64: truncated (its length is not a whole number of bytes)", what);
    }
    if (max_bytes > 0 && (int64_t)n > max_bytes) {
        free(bytes);
        return g3n_error_set(err, "%s: %zu bytes, over the limit of %lld", what, n, (long long)max_bytes);
    }
    *out = bytes;
    *out_size = n;
    return G3N_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int g3n_data_url_decode(const char *url, int64_t max_bytes, const char *what, char *mime, size_t mime_size,
                        uint8_t **out, size_t *out_size, g3n_error *err)
{
    *out = NULL;
    *out_size = 0;
    if (mime_size)
        mime[0] = '\0';
    if (strncasecmp(url, "data:", 5) != 0)
        return g3n_error_set(err, "%s: not a data: URL", what);
    const char *header = url + 5;
    const char *comma = strchr(header, ',');
    if (!comma)
        return g3n_error_set(err, "%s: data: URL without ',' before its payload", what);
    size_t header_length = (size_t)(comma - header);
    size_t mime_length = strcspn(header, ";,");
    if (mime_size) {
        size_t m = mime_length < mime_size - 1 ? mime_length : mime_size - 1;
        memcpy(mime, header, m);
        mime[m] = '\0';
    }
    int is_base64 = header_length >= 7 && strncasecmp(comma - 7, ";base64", 7) == 0;
    const char *payload = comma + 1;
    size_t payload_length = strlen(payload);
    if (is_base64)
        return g3n_base64_decode(payload, payload_length, max_bytes, what, out, out_size, err);
    /* percent-encoded */
    uint8_t *bytes = malloc(payload_length + 1);
    if (!bytes)
        return g3n_error_set(err, "%s: out of memory", what);
    size_t n = 0;
    for (size_t i = 0; i < payload_length; i++) {
        if (payload[i] == '%') {
            int hi = i + 2 < payload_length ? hex_value(payload[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(payload[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(bytes);
                return g3n_error_set(err, "%s: bad percent escape at offset %zu of the data: URL payload", what, i);
            }
            bytes[n++] = (uint8_t)(hi * 16 + lo);
            i += 2;
        } else {
            bytes[n++] = (uint8_t)payload[i];
        }
    }
    if (max_bytes > 0 && (int64_t)n > max_bytes) {
        free(bytes);
        return g3n_error_set(err, "%s: %zu bytes, over the limit of %lld", what, n, (long long)max_bytes);
    }
    *out = bytes;
    *out_size = n;
    return G3N_OK;
}
