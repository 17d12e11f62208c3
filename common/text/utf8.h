/* utf8.h - UTF-8 as the tokenizer reads and writes it: one sequence decoded or
 * encoded, and validation (no overlongs, no surrogates, <= U+10FFFF).
 * Lengths are in bytes. */
#ifndef G3N_UTF8_H
#define G3N_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the UTF-8 sequence at s (n >= 1 bytes available) and its code
 * point in *code_point; 0 if invalid. */
size_t g3n_utf8_decode(const uint8_t *s, size_t n, uint32_t *code_point);
/* Writes code point cp (<= U+10FFFF) to out (room for 4 bytes); its length. */
size_t g3n_utf8_encode(uint32_t cp, char *out);
/* Byte offset of the first invalid sequence, or length if all valid. */
size_t g3n_utf8_valid_prefix(const char *bytes, size_t length);
/* 1 if bytes[0..length) is valid UTF-8. */
int g3n_utf8_valid(const char *bytes, size_t length);

#endif
