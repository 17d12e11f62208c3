#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[G3N_DTYPE_COUNT] = {
    [G3N_DTYPE_F32] = {"F32", 4}, [G3N_DTYPE_BF16] = {"BF16", 2}, [G3N_DTYPE_F16] = {"F16", 2},
    [G3N_DTYPE_I32] = {"I32", 4}, [G3N_DTYPE_I64] = {"I64", 8},   [G3N_DTYPE_U8] = {"U8", 1},
};

size_t g3n_dtype_size(g3n_dtype dtype)
{
    return (unsigned)dtype < G3N_DTYPE_COUNT ? dtype_info[dtype].size : 0;
}

const char *g3n_dtype_name(g3n_dtype dtype)
{
    return (unsigned)dtype < G3N_DTYPE_COUNT ? dtype_info[dtype].name : NULL;
}

int g3n_dtype_from_name(const char *name, g3n_dtype *out)
{
    for (int i = 0; i < G3N_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (g3n_dtype)i;
            return G3N_OK;
        }
    }
    return G3N_ERR;
}

int64_t g3n_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

int64_t g3n_tensor_numel(const g3n_tensor *t)
{
    return g3n_shape_numel(t->ndim, t->shape);
}

void g3n_shape_format(int ndim, const int64_t *shape, char *buffer, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buffer[0] = '\0';
    used += (size_t)snprintf(buffer + used, size - used, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buffer + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < size)
        snprintf(buffer + used, size - used, "]");
}

static void set_contiguous_strides(g3n_tensor *t)
{
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = stride;
        stride *= t->shape[i];
    }
}

/* Blocks of 2 MiB and more (activation buffers, packed tower weights) sit on
 * 2 MiB boundaries and ask for transparent huge pages: one page fault per
 * 2 MiB instead of 512 (a fresh 10 MB buffer cost ~2,500 faults, ~5 % of an
 * audio encode on a VM), and fewer TLB misses when the GEMMs stream them. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

void *g3n_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    const int huge = bytes >= HUGE_PAGE_BYTES;
    if (posix_memalign(&p, huge ? HUGE_PAGE_BYTES : 64, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (huge) /* (advice only: where THP is off nothing changes) */
        (void)madvise(p, bytes & ~(HUGE_PAGE_BYTES - 1), MADV_HUGEPAGE);
#endif
    return p;
}

void g3n_aligned_free(void *p)
{
    free(p);
}

int g3n_tensor_alloc(g3n_tensor *t, g3n_dtype dtype, int ndim, const int64_t *shape, g3n_error *err)
{
    memset(t, 0, sizeof(*t));
    if (ndim < 0 || ndim > G3N_MAX_DIMS)
        return g3n_error_set(err, "tensor rank %d out of range", ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return g3n_error_set(err, "negative tensor dimension");
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    set_contiguous_strides(t);
    size_t bytes = (size_t)g3n_tensor_numel(t) * g3n_dtype_size(dtype);
    t->owned = g3n_aligned_alloc(bytes);
    if (!t->owned)
        return g3n_error_set(err, "out of memory allocating %zu bytes", bytes);
    memset(t->owned, 0, bytes);
    t->data = t->owned;
    return G3N_OK;
}

void g3n_tensor_view(g3n_tensor *t, g3n_dtype dtype, int ndim, const int64_t *shape, void *data)
{
    memset(t, 0, sizeof(*t));
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    set_contiguous_strides(t);
    t->data = data;
}

void g3n_tensor_free(g3n_tensor *t)
{
    if (!t)
        return;
    g3n_aligned_free(t->owned);
    memset(t, 0, sizeof(*t));
}

int g3n_tensor_is_contiguous(const g3n_tensor *t)
{
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != stride)
            return 0;
        stride *= t->shape[i];
    }
    return 1;
}

int g3n_tensor_has_shape(const g3n_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return 0;
    return 1;
}

uint16_t g3n_f32_to_bf16(float f)
{
    union { uint32_t u; float f; } x;
    x.f = f;
    if ((x.u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a quiet NaN */
        return (uint16_t)((x.u >> 16) | 0x40);
    uint32_t rounding = 0x7fffu + ((x.u >> 16) & 1u);
    return (uint16_t)((x.u + rounding) >> 16);
}

float g3n_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    union { uint32_t u; float f; } x;
    if (exponent == 0) {
        if (mantissa == 0) {
            x.u = sign;
            return x.f;
        }
        /* subnormal: value = mantissa * 2^-24 */
        float v = (float)mantissa * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exponent == 31)
        x.u = sign | 0x7f800000u | (mantissa << 13);
    else
        x.u = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    return x.f;
}

uint16_t g3n_f32_to_f16(float f)
{
    union { uint32_t u; float f; } x;
    x.f = f;
    uint32_t sign = (x.u >> 16) & 0x8000u;
    uint32_t abs = x.u & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (abs >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (abs < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float v = fabsf(f) * 16777216.0f; /* units of 2^-24 */
        uint32_t m = (uint32_t)nearbyintf(v);
        return (uint16_t)(sign | m);
    }
    uint32_t exponent = (abs >> 23) - 112u;
    uint32_t mantissa = abs & 0x7fffffu;
    uint32_t half = (exponent << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
        half++;
    return (uint16_t)(sign | half);
}

void g3n_convert_to_f32(g3n_dtype src_dtype, const void *src, float *dst, int64_t count)
{
    switch (src_dtype) {
    case G3N_DTYPE_F32:
        memmove(dst, src, (size_t)count * sizeof(float));
        break;
    case G3N_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < count; i++)
            dst[i] = g3n_bf16_to_f32(s[i]);
        break;
    }
    case G3N_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < count; i++)
            dst[i] = g3n_f16_to_f32(s[i]);
        break;
    }
    case G3N_DTYPE_I32: {
        const int32_t *s = src;
        for (int64_t i = 0; i < count; i++)
            dst[i] = (float)s[i];
        break;
    }
    case G3N_DTYPE_I64: {
        const int64_t *s = src;
        for (int64_t i = 0; i < count; i++)
            dst[i] = (float)s[i];
        break;
    }
    case G3N_DTYPE_U8: {
        const uint8_t *s = src;
        for (int64_t i = 0; i < count; i++)
            dst[i] = (float)s[i];
        break;
    }
    default:
        for (int64_t i = 0; i < count; i++)
            dst[i] = NAN;
        break;
    }
}

int g3n_tensor_to_f32(const g3n_tensor *src, g3n_tensor *dst, g3n_error *err)
{
    if (g3n_tensor_alloc(dst, G3N_DTYPE_F32, src->ndim, src->shape, err) != G3N_OK)
        return G3N_ERR;
    int64_t n = g3n_tensor_numel(src);
    if (g3n_tensor_is_contiguous(src)) {
        g3n_convert_to_f32(src->dtype, src->data, dst->data, n);
        return G3N_OK;
    }
    size_t element = g3n_dtype_size(src->dtype);
    int64_t index[G3N_MAX_DIMS] = {0};
    float *out = dst->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t offset = 0;
        for (int d = 0; d < src->ndim; d++)
            offset += index[d] * src->strides[d];
        g3n_convert_to_f32(src->dtype, (const char *)src->data + offset * (int64_t)element, out + i, 1);
        for (int d = src->ndim - 1; d >= 0; d--) {
            if (++index[d] < src->shape[d])
                break;
            index[d] = 0;
        }
    }
    return G3N_OK;
}
