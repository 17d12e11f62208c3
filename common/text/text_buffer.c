/* text_buffer.c - growable text and Replace rules (text_buffer.h). */
#include "text_buffer.h"

#include <stdlib.h>
#include <string.h>

int g3n_text_buffer_reserve(g3n_text_buffer *b, size_t extra, g3n_error *err)
{
    if (b->length + extra + 1 <= b->capacity)
        return G3N_OK;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < b->length + extra + 1)
        capacity *= 2;
    char *data = realloc(b->data, capacity);
    if (!data)
        return g3n_error_set(err, "out of memory for %zu bytes of text", capacity);
    b->data = data;
    b->capacity = capacity;
    return G3N_OK;
}

int g3n_text_buffer_append(g3n_text_buffer *b, const char *data, size_t length, g3n_error *err)
{
    if (g3n_text_buffer_reserve(b, length, err) != G3N_OK)
        return G3N_ERR;
    memcpy(b->data + b->length, data, length);
    b->length += length;
    b->data[b->length] = '\0';
    return G3N_OK;
}

/* Appends data with every rule applied in turn (String patterns, all
 * non-overlapping occurrences, left to right). */
int g3n_text_buffer_append_replaced(g3n_text_buffer *b, const char *data, size_t length,
                                    const g3n_replace_rule *rules, int rule_count, g3n_text_buffer *scratch,
                                    g3n_error *err)
{
    if (rule_count == 0)
        return g3n_text_buffer_append(b, data, length, err);
    const char *source = data;
    size_t source_length = length;
    g3n_text_buffer stage[2] = {{0}, {0}};
    if (scratch) {
        stage[0] = scratch[0];
        stage[1] = scratch[1];
    }
    int status = G3N_OK;
    for (int r = 0; r < rule_count && status == G3N_OK; r++) {
        const g3n_replace_rule *rule = &rules[r];
        g3n_text_buffer *target = (r == rule_count - 1) ? b : &stage[r & 1];
        if (target != b)
            target->length = 0;
        size_t i = 0;
        while (i < source_length && status == G3N_OK) {
            const char *hit = NULL;
            if (rule->pattern_length > 0 && rule->pattern_length <= source_length - i) {
                const char *found = memchr(source + i, rule->pattern[0], source_length - i - rule->pattern_length + 1);
                while (found) {
                    if (memcmp(found, rule->pattern, rule->pattern_length) == 0) {
                        hit = found;
                        break;
                    }
                    size_t from = (size_t)(found - source) + 1;
                    if (from + rule->pattern_length > source_length)
                        break;
                    found = memchr(source + from, rule->pattern[0], source_length - from - rule->pattern_length + 1);
                }
            }
            size_t end = hit ? (size_t)(hit - source) : source_length;
            status = g3n_text_buffer_append(target, source + i, end - i, err);
            if (hit && status == G3N_OK) {
                status = g3n_text_buffer_append(target, rule->content, rule->content_length, err);
                i = end + rule->pattern_length;
            } else {
                i = end;
            }
        }
        if (target != b) {
            source = target->data ? target->data : "";
            source_length = target->length;
        }
    }
    if (scratch) {
        scratch[0] = stage[0];
        scratch[1] = stage[1];
    } else {
        free(stage[0].data);
        free(stage[1].data);
    }
    return status;
}
