/* json_scanner.h - a focused JSON scanner over a document in memory, for
 * tokenizer.json (33 MB): the vocabulary and merges are read value by value
 * without building a tree; small sections are cut out and handed to cJSON.
 * Every failure sets s->err naming the file (s->name), the place (`where`, a
 * JSON path such as "model.vocab") and the byte offset. */
#ifndef G3N_JSON_SCANNER_H
#define G3N_JSON_SCANNER_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "status.h"
#include "text_buffer.h"

typedef struct g3n_json_scanner {
    const char *begin, *p, *end; /* the document (borrowed) and the read position */
    const char *name;            /* file name for messages */
    g3n_error *err;
    g3n_text_buffer string;      /* the last string read (owned: free(string.data)) */
} g3n_json_scanner;

/* The value of the 4 hex digits at p in *out; 0 (and *out untouched) if one is not hex. */
int g3n_json_hex4(const char *p, uint32_t *out);
/* Sets the error for what was expected at the read position; returns G3N_ERR. */
int g3n_json_scan_fail(g3n_json_scanner *s, const char *where, const char *what);
void g3n_json_scan_space(g3n_json_scanner *s);
/* Expects character c (after white space). */
int g3n_json_scan_char(g3n_json_scanner *s, char c, const char *where);
/* Reads a JSON string into s->string (decoded, valid UTF-8, NUL-terminated). */
int g3n_json_scan_string(g3n_json_scanner *s, const char *where);
int g3n_json_scan_int(g3n_json_scanner *s, const char *where, int64_t *out);
/* Skips one value (validating its structure); depth-limited. */
int g3n_json_scan_skip_value(g3n_json_scanner *s, const char *where, int depth);
/* Skips one value and parses it with cJSON into *out (replacing what it held). */
int g3n_json_scan_cjson_value(g3n_json_scanner *s, const char *where, cJSON **out);

/* Reads one member's value; the key is in s->string. */
typedef int (*g3n_json_member_reader)(g3n_json_scanner *s, void *target, void *context);
/* Calls on_member(s, target, context) for each member of an object. */
int g3n_json_scan_object(g3n_json_scanner *s, const char *where, void *target, g3n_json_member_reader on_member,
                         void *context);

#endif
