#include "weights.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"

typedef struct cached_tensor {
    char *name;
    g3n_tensor tensor; /* owned */
    struct cached_tensor *next;
} cached_tensor;

struct g3n_weights {
    g3n_checkpoint *checkpoint; /* NULL for synth */
    uint64_t seed;
    g3n_dtype synth_dtype;
    char description[1100];
    pthread_mutex_t lock;
    cached_tensor *synth_cache; /* synth tensors in synth_dtype */
    cached_tensor *f32_cache;   /* f32 copies */
    uint64_t allocated_bytes;
};

static int weights_new(g3n_weights **out, g3n_error *err)
{
    g3n_weights *w = calloc(1, sizeof(*w));
    if (!w)
        return g3n_error_set(err, "out of memory");
    pthread_mutex_init(&w->lock, NULL);
    *out = w;
    return G3N_OK;
}

int g3n_weights_open_checkpoint(g3n_weights **out, const char *path, g3n_error *err)
{
    *out = NULL;
    g3n_weights *w = NULL;
    if (weights_new(&w, err) != G3N_OK)
        return G3N_ERR;
    if (g3n_checkpoint_open(&w->checkpoint, path, err) != G3N_OK) {
        g3n_weights_close(w);
        return G3N_ERR;
    }
    snprintf(w->description, sizeof(w->description), "checkpoint %s", path);
    *out = w;
    return G3N_OK;
}

int g3n_weights_open_synth(g3n_weights **out, uint64_t seed, g3n_dtype dtype, g3n_error *err)
{
    *out = NULL;
    if (dtype != G3N_DTYPE_BF16 && dtype != G3N_DTYPE_F32)
        return g3n_error_set(err, "synth weights are BF16 or F32, not %s", g3n_dtype_name(dtype));
    g3n_weights *w = NULL;
    if (weights_new(&w, err) != G3N_OK)
        return G3N_ERR;
    w->seed = seed;
    w->synth_dtype = dtype;
    snprintf(w->description, sizeof(w->description), "synth seed %llu", (unsigned long long)seed);
    *out = w;
    return G3N_OK;
}

static void free_cache(cached_tensor *c)
{
    while (c) {
        cached_tensor *next = c->next;
        free(c->name);
        g3n_tensor_free(&c->tensor);
        free(c);
        c = next;
    }
}

void g3n_weights_close(g3n_weights *w)
{
    if (!w)
        return;
    g3n_checkpoint_close(w->checkpoint);
    free_cache(w->synth_cache);
    free_cache(w->f32_cache);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

const char *g3n_weights_describe(const g3n_weights *w)
{
    return w->description;
}

const g3n_checkpoint *g3n_weights_checkpoint(const g3n_weights *w)
{
    return w->checkpoint;
}

uint64_t g3n_weights_allocated_bytes(const g3n_weights *w)
{
    return w->allocated_bytes;
}

int g3n_weights_has(g3n_weights *w, const char *name)
{
    return w->checkpoint ? g3n_checkpoint_find(w->checkpoint, name) != NULL : 1;
}

static cached_tensor *cache_find(cached_tensor *c, const char *name)
{
    for (; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static int shape_error(const char *name, int ndim, const int64_t *shape, const g3n_tensor *t, g3n_error *err)
{
    char want[128], have[128];
    g3n_shape_format(ndim, shape, want, sizeof(want));
    g3n_shape_format(t->ndim, t->shape, have, sizeof(have));
    return g3n_error_set(err, "tensor '%s' has shape %s, expected %s", name, have, want);
}

/* Caller holds the lock. */
static int get_locked(g3n_weights *w, const char *name, int ndim, const int64_t *shape, g3n_tensor *out,
                      g3n_error *err)
{
    if (w->checkpoint) {
        if (g3n_checkpoint_get(w->checkpoint, name, out, NULL) != G3N_OK)
            return g3n_error_set(err, "%s: missing tensor '%s'", w->description, name);
        if (!g3n_tensor_has_shape(out, ndim, shape))
            return shape_error(name, ndim, shape, out, err);
        if (out->dtype != G3N_DTYPE_F32 && out->dtype != G3N_DTYPE_BF16 && out->dtype != G3N_DTYPE_F16)
            return g3n_error_set(err, "tensor '%s' has dtype %s; weights must be F32, BF16 or F16", name,
                                 g3n_dtype_name(out->dtype));
        return G3N_OK;
    }
    cached_tensor *c = cache_find(w->synth_cache, name);
    if (c) {
        if (!g3n_tensor_has_shape(&c->tensor, ndim, shape))
            return shape_error(name, ndim, shape, &c->tensor, err);
        *out = c->tensor;
        out->owned = NULL;
        return G3N_OK;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return g3n_error_set(err, "out of memory");
    c->name = strdup(name);
    if (!c->name || g3n_tensor_alloc(&c->tensor, w->synth_dtype, ndim, shape, err) != G3N_OK) {
        free(c->name);
        free(c);
        return g3n_error_prefix(err, "synth tensor '%s'", name);
    }
    int64_t n = g3n_shape_numel(ndim, shape);
    if (w->synth_dtype == G3N_DTYPE_BF16)
        g3n_synth_fill_bf16(name, ndim, shape, w->seed, 0, n, c->tensor.data);
    else
        g3n_synth_fill_f32(name, ndim, shape, w->seed, 0, n, c->tensor.data);
    w->allocated_bytes += (uint64_t)n * g3n_dtype_size(w->synth_dtype);
    c->next = w->synth_cache;
    w->synth_cache = c;
    *out = c->tensor;
    out->owned = NULL;
    return G3N_OK;
}

int g3n_weights_get(g3n_weights *w, const char *name, int ndim, const int64_t *shape, g3n_tensor *out, g3n_error *err)
{
    pthread_mutex_lock(&w->lock);
    int status = get_locked(w, name, ndim, shape, out, err);
    pthread_mutex_unlock(&w->lock);
    return status;
}

int g3n_weights_get_f32(g3n_weights *w, const char *name, int ndim, const int64_t *shape, const float **out,
                        g3n_error *err)
{
    *out = NULL;
    pthread_mutex_lock(&w->lock);
    int status = G3N_OK;
    cached_tensor *c = cache_find(w->f32_cache, name);
    if (c) {
        if (!g3n_tensor_has_shape(&c->tensor, ndim, shape))
            status = shape_error(name, ndim, shape, &c->tensor, err);
        else
            *out = c->tensor.data;
        pthread_mutex_unlock(&w->lock);
        return status;
    }
    g3n_tensor stored;
    if (w->checkpoint == NULL) {
        /* synth straight into f32, without keeping a stored-dtype copy */
        c = calloc(1, sizeof(*c));
        if (!c || !(c->name = strdup(name)) ||
            g3n_tensor_alloc(&c->tensor, G3N_DTYPE_F32, ndim, shape, err) != G3N_OK) {
            if (c)
                free(c->name);
            free(c);
            pthread_mutex_unlock(&w->lock);
            return g3n_error_set(err, "out of memory for tensor '%s'", name);
        }
        g3n_synth_fill_f32(name, ndim, shape, w->seed, 0, g3n_shape_numel(ndim, shape), c->tensor.data);
    } else {
        status = get_locked(w, name, ndim, shape, &stored, err);
        if (status == G3N_OK) {
            c = calloc(1, sizeof(*c));
            if (!c || !(c->name = strdup(name)) || g3n_tensor_to_f32(&stored, &c->tensor, err) != G3N_OK) {
                if (c)
                    free(c->name);
                free(c);
                pthread_mutex_unlock(&w->lock);
                return g3n_error_set(err, "out of memory for tensor '%s'", name);
            }
        }
    }
    if (status == G3N_OK) {
        w->allocated_bytes += (uint64_t)g3n_shape_numel(ndim, shape) * sizeof(float);
        c->next = w->f32_cache;
        w->f32_cache = c;
        *out = c->tensor.data;
    }
    pthread_mutex_unlock(&w->lock);
    return status;
}

int g3n_parse_synth_spec(const char *spec, char *config_path, size_t config_path_size, uint64_t *seed, g3n_error *err)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || colon[1] == '\0')
        return g3n_error_set(err, "--synth wants CONFIG:SEED (e.g. config.json:41), got '%s'", spec);
    char *end;
    unsigned long long value = strtoull(colon + 1, &end, 10);
    if (*end != '\0')
        return g3n_error_set(err, "--synth: seed '%s' is not a number", colon + 1);
    size_t length = (size_t)(colon - spec);
    if (length + 1 > config_path_size)
        return g3n_error_set(err, "--synth: config path too long");
    memcpy(config_path, spec, length);
    config_path[length] = '\0';
    *seed = value;
    return G3N_OK;
}
