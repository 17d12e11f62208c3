/* http_codec.h - the encodings an OpenAI request carries media in: base64
 * (RFC 4648, standard or URL-safe alphabet, padding optional, white space
 * ignored) and data: URLs (RFC 2397, base64 or percent-encoded). */
#ifndef G3N_HTTP_CODEC_H
#define G3N_HTTP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Decodes text[0..length); *out is malloc'd (caller frees), *out_size its
 * bytes. At most max_bytes decoded bytes (<= 0: no limit). Errors name the
 * offending character's offset. `what` names the field in messages. */
int g3n_base64_decode(const char *text, size_t length, int64_t max_bytes, const char *what, uint8_t **out,
                      size_t *out_size, g3n_error *err);

/* Parses "data:[<mime>][;params][;base64],<payload>" and decodes the payload.
 * mime receives the media type ("" when absent). */
int g3n_data_url_decode(const char *url, int64_t max_bytes, const char *what, char *mime, size_t mime_size,
                        uint8_t **out, size_t *out_size, g3n_error *err);

#endif
