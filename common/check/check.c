#include "check.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json_util.h"

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *g3n_check_case_file(const g3n_check_case *c, const char *file_name, char *buffer, size_t size)
{
    snprintf(buffer, size, "%s/%s", c->case_dir, file_name);
    return buffer;
}

int g3n_check_case_open(g3n_check_case *c, const char *case_dir, const char *fixtures_dir, g3n_error *err)
{
    memset(c, 0, sizeof(*c));
    c->out = stdout;
    snprintf(c->case_dir, sizeof(c->case_dir), "%s", case_dir);
    size_t length = strlen(c->case_dir);
    while (length > 1 && c->case_dir[length - 1] == '/')
        c->case_dir[--length] = '\0';
    if (fixtures_dir) {
        snprintf(c->fixtures_dir, sizeof(c->fixtures_dir), "%s", fixtures_dir);
    } else { /* default: the parent of the case folder */
        snprintf(c->fixtures_dir, sizeof(c->fixtures_dir), "%s", c->case_dir);
        char *slash = strrchr(c->fixtures_dir, '/');
        if (slash && slash != c->fixtures_dir)
            *slash = '\0';
        else if (slash)
            slash[1] = '\0';
        else
            snprintf(c->fixtures_dir, sizeof(c->fixtures_dir), ".");
    }
    char path[2048];
    if (g3n_json_load_file(g3n_check_case_file(c, "case.json", path, sizeof(path)), &c->case_json, err) != G3N_OK)
        return G3N_ERR;
    c->kind = g3n_json_get_string(c->case_json, "kind", NULL);
    if (!c->kind) {
        g3n_check_case_close(c);
        return g3n_error_set(err, "%s: no \"kind\"", path);
    }
    g3n_check_case_file(c, "golden.safetensors", path, sizeof(path));
    if (file_exists(path) && g3n_safetensors_open(&c->golden, path, err) != G3N_OK) {
        g3n_check_case_close(c);
        return G3N_ERR;
    }
    g3n_check_case_file(c, "config.json", path, sizeof(path));
    if (file_exists(path)) {
        cJSON *json;
        if (g3n_json_load_file(path, &json, err) != G3N_OK) {
            g3n_check_case_close(c);
            return G3N_ERR;
        }
        int empty = cJSON_IsObject(json) && json->child == NULL;
        cJSON_Delete(json);
        if (!empty) {
            if (g3n_config_load(&c->config, path, err) != G3N_OK) {
                g3n_check_case_close(c);
                return G3N_ERR;
            }
            c->has_config = 1;
        }
    }
    return G3N_OK;
}

void g3n_check_case_close(g3n_check_case *c)
{
    cJSON_Delete(c->case_json);
    g3n_safetensors_close(c->golden);
    if (c->has_config)
        g3n_config_free(&c->config);
    c->case_json = NULL;
    c->golden = NULL;
    c->has_config = 0;
}

int g3n_check_seed(const g3n_check_case *c, uint64_t *seed, g3n_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(c->case_json, "seed");
    if (!cJSON_IsNumber(item) || item->valuedouble < 0)
        return g3n_error_set(err, "%s/case.json: no \"seed\"", c->case_dir);
    *seed = (uint64_t)item->valuedouble;
    return G3N_OK;
}

double g3n_check_tolerance(const g3n_check_case *c, const char *key, double fallback)
{
    const cJSON *tolerance = cJSON_GetObjectItemCaseSensitive(c->case_json, "tolerance");
    const cJSON *item = tolerance ? cJSON_GetObjectItemCaseSensitive(tolerance, key) : NULL;
    return cJSON_IsNumber(item) ? item->valuedouble : fallback;
}

int g3n_check_golden(const g3n_check_case *c, const char *name, g3n_tensor *view, g3n_error *err)
{
    if (!c->golden)
        return g3n_error_set(err, "%s: no golden.safetensors", c->case_dir);
    return g3n_safetensors_get(c->golden, name, view, err);
}

int g3n_check_resolve_reference(const g3n_check_case *c, const char *reference, g3n_tensor *out, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *colon = strchr(reference, ':');
    if (!colon)
        return g3n_error_set(err, "reference '%s' is not 'FILE: TENSOR'", reference);
    char file[1024], path[2200];
    size_t length = (size_t)(colon - reference);
    if (length >= sizeof(file))
        return g3n_error_set(err, "reference '%s' too long", reference);
    memcpy(file, reference, length);
    file[length] = '\0';
    const char *tensor = colon + 1;
    while (*tensor == ' ')
        tensor++;
    if (strstr(file, ".."))
        return g3n_error_set(err, "reference '%s' leaves the fixtures folder", reference);
    snprintf(path, sizeof(path), "%s/%s", c->fixtures_dir, file);
    g3n_safetensors_file *st;
    if (g3n_safetensors_open(&st, path, err) != G3N_OK)
        return G3N_ERR;
    g3n_tensor view;
    int status = g3n_safetensors_get(st, tensor, &view, err);
    if (status == G3N_OK)
        status = g3n_tensor_to_f32(&view, out, err);
    g3n_safetensors_close(st);
    return status;
}

void g3n_compare_stats(const float *actual, const float *expected, int64_t count, double *rel_l2, double *max_abs,
                       double *mean_abs)
{
    double diff_sq = 0.0, ref_sq = 0.0, max = 0.0, sum_abs = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double d = (double)actual[i] - (double)expected[i];
        if (isnan(d))
            d = INFINITY;
        diff_sq += d * d;
        ref_sq += (double)expected[i] * (double)expected[i];
        double a = fabs(d);
        if (a > max)
            max = a;
        sum_abs += a;
    }
    if (rel_l2)
        *rel_l2 = ref_sq > 0 ? sqrt(diff_sq) / sqrt(ref_sq) : sqrt(diff_sq);
    if (max_abs)
        *max_abs = max;
    if (mean_abs)
        *mean_abs = count ? sum_abs / (double)count : 0.0;
}

static void record(g3n_check_case *c, int pass)
{
    if (pass)
        c->passed++;
    else
        c->failed++;
}

void g3n_check_record(g3n_check_case *c, const char *name, int pass, const char *detail_format, ...)
{
    char detail[512] = "";
    if (detail_format) {
        va_list args;
        va_start(args, detail_format);
        vsnprintf(detail, sizeof(detail), detail_format, args);
        va_end(args);
    }
    fprintf(c->out ? c->out : stdout, "%s %s%s%s\n", name, detail, detail[0] ? " " : "", pass ? "PASS" : "FAIL");
    fflush(c->out ? c->out : stdout);
    record(c, pass);
}

/* golden as f32, or NULL with a FAIL line when its size is wrong */
static float *golden_f32(g3n_check_case *c, const char *name, int64_t count, const g3n_tensor *golden)
{
    int64_t n = g3n_tensor_numel(golden);
    if (n != count) {
        g3n_check_record(c, name, 0, "size %lld != golden %lld", (long long)count, (long long)n);
        return NULL;
    }
    float *expected = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!expected) {
        g3n_check_record(c, name, 0, "out of memory");
        return NULL;
    }
    g3n_tensor contiguous = *golden;
    g3n_convert_to_f32(contiguous.dtype, contiguous.data, expected, n);
    return expected;
}

int g3n_check_compare_f32(g3n_check_case *c, const char *name, const float *actual, int64_t count,
                          const g3n_tensor *golden, double rel_l2_limit, double max_abs_limit)
{
    float *expected = golden_f32(c, name, count, golden);
    if (!expected)
        return 0;
    double rel_l2, max_abs;
    g3n_compare_stats(actual, expected, count, &rel_l2, &max_abs, NULL);
    free(expected);
    int pass = (rel_l2_limit < 0 || rel_l2 <= rel_l2_limit) && (max_abs_limit < 0 || max_abs <= max_abs_limit);
    g3n_check_record(c, name, pass, "rel_l2=%.3e max_abs=%.3e", rel_l2, max_abs);
    return pass;
}

int g3n_check_compare_mean_abs(g3n_check_case *c, const char *name, const float *actual, int64_t count,
                               const g3n_tensor *golden, double mean_abs_limit, double max_abs_limit)
{
    float *expected = golden_f32(c, name, count, golden);
    if (!expected)
        return 0;
    double rel_l2, max_abs, mean_abs;
    g3n_compare_stats(actual, expected, count, &rel_l2, &max_abs, &mean_abs);
    free(expected);
    int pass = (mean_abs_limit < 0 || mean_abs <= mean_abs_limit) && (max_abs_limit < 0 || max_abs <= max_abs_limit);
    g3n_check_record(c, name, pass, "mean_abs=%.3e max_abs=%.3e rel_l2=%.3e", mean_abs, max_abs, rel_l2);
    return pass;
}

int g3n_check_compare_exact(g3n_check_case *c, const char *name, const int64_t *actual, int64_t count,
                            const g3n_tensor *golden)
{
    int64_t n = g3n_tensor_numel(golden);
    if (n != count) {
        g3n_check_record(c, name, 0, "size %lld != golden %lld", (long long)count, (long long)n);
        return 0;
    }
    int64_t mismatches = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t expected;
        switch (golden->dtype) {
        case G3N_DTYPE_I32:
            expected = ((const int32_t *)golden->data)[i];
            break;
        case G3N_DTYPE_I64:
            expected = ((const int64_t *)golden->data)[i];
            break;
        case G3N_DTYPE_U8:
            expected = ((const uint8_t *)golden->data)[i];
            break;
        default: {
            float v;
            g3n_convert_to_f32(golden->dtype, (const char *)golden->data + (size_t)i * g3n_dtype_size(golden->dtype),
                               &v, 1);
            expected = (int64_t)v;
        }
        }
        if (actual[i] != expected) {
            if (first < 0)
                first = i;
            mismatches++;
        }
    }
    int pass = mismatches == 0;
    if (pass)
        g3n_check_record(c, name, 1, "exact (%lld values)", (long long)n);
    else
        g3n_check_record(c, name, 0, "%lld of %lld differ, first at %lld", (long long)mismatches, (long long)n,
                         (long long)first);
    return pass;
}
