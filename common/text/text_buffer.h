/* text_buffer.h - growable text (always NUL-terminated after its length) and
 * the tokenizer's Replace rules (String pattern -> content) applied while
 * appending. Lengths are in bytes. */
#ifndef G3N_TEXT_BUFFER_H
#define G3N_TEXT_BUFFER_H

#include <stddef.h>

#include "status.h"

/* Zero-initialize; data is owned by the buffer (free(data) when done). */
typedef struct g3n_text_buffer {
    char *data;
    size_t length, capacity;
} g3n_text_buffer;

/* One Replace step: every non-overlapping occurrence of pattern, left to
 * right, becomes content. Both strings are owned by whoever holds the rule. */
typedef struct g3n_replace_rule {
    char *pattern;
    size_t pattern_length;
    char *content;
    size_t content_length;
} g3n_replace_rule;

/* Room for extra more bytes and the NUL. */
int g3n_text_buffer_reserve(g3n_text_buffer *b, size_t extra, g3n_error *err);
int g3n_text_buffer_append(g3n_text_buffer *b, const char *data, size_t length, g3n_error *err);
/* Appends data with every rule applied in turn. scratch (two buffers, may be
 * NULL) holds the intermediate stages so that repeated calls do not allocate;
 * the caller frees scratch[0..1].data. */
int g3n_text_buffer_append_replaced(g3n_text_buffer *b, const char *data, size_t length,
                                    const g3n_replace_rule *rules, int rule_count, g3n_text_buffer *scratch,
                                    g3n_error *err);

#endif
