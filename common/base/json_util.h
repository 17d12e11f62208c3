/* json_util.h - small helpers over cJSON (Debian's libcjson). */
#ifndef G3N_JSON_UTIL_H
#define G3N_JSON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct cJSON;

/* Reads a whole file into a NUL-terminated malloc'd buffer (caller frees). */
int g3n_read_file(const char *path, char **data, size_t *size, g3n_error *err);
/* Parses a JSON file; the caller owns *out (cJSON_Delete). */
int g3n_json_load_file(const char *path, struct cJSON **out, g3n_error *err);

/* Typed lookups; `fallback` when absent or null; error when present with the wrong type. */
int g3n_json_get_int(const struct cJSON *obj, const char *key, int64_t fallback, int64_t *out, g3n_error *err);
int g3n_json_get_double(const struct cJSON *obj, const char *key, double fallback, double *out, g3n_error *err);
int g3n_json_get_bool(const struct cJSON *obj, const char *key, int fallback, int *out, g3n_error *err);
/* Borrowed string or fallback. */
const char *g3n_json_get_string(const struct cJSON *obj, const char *key, const char *fallback);

#endif
