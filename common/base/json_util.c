#include "json_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int g3n_read_file(const char *path, char **data, size_t *size, g3n_error *err)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return g3n_error_set(err, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return g3n_error_set(err, "%s: cannot seek", path);
    }
    long length = ftell(f);
    if (length < 0) {
        fclose(f);
        return g3n_error_set(err, "%s: cannot tell size", path);
    }
    rewind(f);
    char *buffer = malloc((size_t)length + 1);
    if (!buffer) {
        fclose(f);
        return g3n_error_set(err, "%s: out of memory (%ld bytes)", path, length);
    }
    size_t got = fread(buffer, 1, (size_t)length, f);
    fclose(f);
    if (got != (size_t)length) {
        free(buffer);
        return g3n_error_set(err, "%s: short read", path);
    }
    buffer[length] = '\0';
    *data = buffer;
    if (size)
        *size = (size_t)length;
    return G3N_OK;
}

int g3n_json_load_file(const char *path, cJSON **out, g3n_error *err)
{
    char *text;
    size_t size;
    *out = NULL;
    if (g3n_read_file(path, &text, &size, err) != G3N_OK)
        return G3N_ERR;
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, size, &end, 0);
    if (!json) {
        long offset = end ? (long)(end - text) : -1;
        free(text);
        return g3n_error_set(err, "%s: invalid JSON near byte %ld", path, offset);
    }
    free(text);
    *out = json;
    return G3N_OK;
}

int g3n_json_get_int(const cJSON *obj, const char *key, int64_t fallback, int64_t *out, g3n_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
        *out = fallback;
        return G3N_OK;
    }
    if (!cJSON_IsNumber(item))
        return g3n_error_set(err, "\"%s\" must be a number", key);
    double v = item->valuedouble;
    /* range first: converting a double outside int64_t (or NaN) is undefined behaviour */
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != (double)(int64_t)v)
        return g3n_error_set(err, "\"%s\" must be an integer (64-bit), got %g", key, v);
    *out = (int64_t)v;
    return G3N_OK;
}

int g3n_json_get_double(const cJSON *obj, const char *key, double fallback, double *out, g3n_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
        *out = fallback;
        return G3N_OK;
    }
    if (!cJSON_IsNumber(item))
        return g3n_error_set(err, "\"%s\" must be a number", key);
    *out = item->valuedouble;
    return G3N_OK;
}

int g3n_json_get_bool(const cJSON *obj, const char *key, int fallback, int *out, g3n_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
        *out = fallback;
        return G3N_OK;
    }
    if (!cJSON_IsBool(item))
        return g3n_error_set(err, "\"%s\" must be true or false", key);
    *out = cJSON_IsTrue(item);
    return G3N_OK;
}

const char *g3n_json_get_string(const cJSON *obj, const char *key, const char *fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : fallback;
}
