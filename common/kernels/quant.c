/* quant.c - int8/int4 block formats: quantisation, the portable kernel, the
 * activation quantiser and the mmappable cache file (layout in quant.h). */
#define _GNU_SOURCE
#include "quant.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops.h"

/* ------------------------------------------------------------------ formats */

int g3n_weight_format_parse(const char *text, g3n_weight_format *out, g3n_error *err)
{
    if (strcmp(text, "f32") == 0 || strcmp(text, "exact") == 0)
        *out = G3N_WEIGHTS_EXACT;
    else if (strcmp(text, "bf16") == 0)
        *out = G3N_WEIGHTS_BF16;
    else if (strcmp(text, "q8") == 0)
        *out = G3N_WEIGHTS_Q8;
    else if (strcmp(text, "q4") == 0)
        *out = G3N_WEIGHTS_Q4;
    else
        return g3n_error_set(err, "--weights: unknown format '%s' (want f32, bf16, q8 or q4)", text);
    return G3N_OK;
}

const char *g3n_weight_format_name(g3n_weight_format format)
{
    switch (format) {
    case G3N_WEIGHTS_BF16:
        return "bf16";
    case G3N_WEIGHTS_Q8:
        return "q8";
    case G3N_WEIGHTS_Q4:
        return "q4";
    default:
        return "f32";
    }
}

int g3n_weight_format_dtype(g3n_weight_format format)
{
    if (format == G3N_WEIGHTS_Q8)
        return (int)G3N_DTYPE_Q8;
    if (format == G3N_WEIGHTS_Q4)
        return (int)G3N_DTYPE_Q4;
    return -1;
}

static int is_quant(g3n_dtype dtype)
{
    return dtype == G3N_DTYPE_Q8 || dtype == G3N_DTYPE_Q4;
}

/* For messages (matrix_format.c, which names every format, sits above this file). */
static const char *dtype_name(g3n_dtype dtype)
{
    const char *name = dtype == G3N_DTYPE_Q8 ? "Q8" : dtype == G3N_DTYPE_Q4 ? "Q4" : g3n_dtype_name(dtype);
    return name ? name : "?";
}

static size_t round_up(size_t value, size_t to)
{
    return (value + to - 1) / to * to;
}

int g3n_quant_supported(g3n_dtype dtype, int64_t cols)
{
    return is_quant(dtype) && cols > 0 && cols % G3N_QUANT_CHUNK == 0;
}

static size_t scales_bytes(int64_t cols)
{
    return g3n_quant_scales_bytes(cols);
}

size_t g3n_quant_row_bytes(g3n_dtype dtype, int64_t cols)
{
    size_t data = dtype == G3N_DTYPE_Q8 ? (size_t)cols : (size_t)cols / 2;
    const int short_group = (cols / G3N_QUANT_BLOCK) % G3N_QUANT_GROUP_BLOCKS != 0;
    return scales_bytes(cols) + round_up(data, 64) + (short_group ? 64 : 0);
}

/* Where weight `col` of a row lives in its quants (group layout, quant.h):
 * the byte offset, and for Q4 the nibble (0: low, 1: high). */
static inline size_t weight_offset(g3n_dtype dtype, int64_t cols, int64_t col, int *nibble)
{
    const int64_t group = col / G3N_QUANT_GROUP, within = col % G3N_QUANT_GROUP;
    const int64_t block = within / G3N_QUANT_BLOCK, index = within % G3N_QUANT_BLOCK;
    const int64_t vector_bytes = 4 * (int64_t)g3n_quant_group_blocks(cols, group);
    if (dtype == G3N_DTYPE_Q8) {
        *nibble = 0;
        return (size_t)(group * G3N_QUANT_GROUP + (index / 4) * vector_bytes + 4 * block + index % 4);
    }
    *nibble = (int)(index / 16);
    return (size_t)(group * (G3N_QUANT_GROUP / 2) + ((index % 16) / 4) * vector_bytes + 4 * block + index % 4);
}

/* One row: f32 values -> scales + quants. */
static void quantize_row(g3n_dtype dtype, const float *x, int64_t cols, uint8_t *out)
{
    uint16_t *scales = (uint16_t *)out;
    uint8_t *q = out + scales_bytes(cols);
    memset(out, 0, g3n_quant_row_bytes(dtype, cols));
    for (int64_t b = 0; b < cols / G3N_QUANT_BLOCK; b++) {
        const float *v = x + b * G3N_QUANT_BLOCK;
        float amax = 0.0f, max_signed = 0.0f;
        for (int i = 0; i < G3N_QUANT_BLOCK; i++)
            if (fabsf(v[i]) > amax) {
                amax = fabsf(v[i]);
                max_signed = v[i];
            }
        /* Q8: symmetric, d = amax / 127. Q4: d = -max / 8 so that the
         * largest-magnitude value maps to q - 8 = -8 exactly (uses all 16 levels). */
        float d = dtype == G3N_DTYPE_Q8 ? amax / 127.0f : -max_signed / 8.0f;
        uint16_t d16 = g3n_f32_to_f16(d);
        float dq = g3n_f16_to_f32(d16); /* quantise against the scale as stored */
        float inverse = dq != 0.0f ? 1.0f / dq : 0.0f;
        scales[b] = d16;
        for (int i = 0; i < G3N_QUANT_BLOCK; i++) {
            const int64_t col = b * G3N_QUANT_BLOCK + i;
            int nibble;
            uint8_t *byte = q + weight_offset(dtype, cols, col, &nibble);
            if (dtype == G3N_DTYPE_Q8) {
                int value = (int)nearbyintf(v[i] * inverse);
                value = value > 127 ? 127 : value < -127 ? -127 : value;
                *byte = (uint8_t)(value + 128);
            } else {
                int value = (int)nearbyintf(v[i] * inverse) + 8;
                value = value > 15 ? 15 : value < 0 ? 0 : value;
                *byte |= (uint8_t)(nibble ? value << 4 : value);
            }
        }
    }
}

g3n_matrix g3n_quantize_matrix(const g3n_matrix *src, g3n_dtype dtype, void *dst)
{
    const int64_t rows = src->rows, cols = src->cols;
    const size_t row_bytes = g3n_quant_row_bytes(dtype, cols);
#pragma omp parallel
    {
        float *row = malloc(sizeof(float) * (size_t)cols);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (row) {
                g3n_convert_to_f32(src->dtype, g3n_matrix_row(src, r), row, cols);
                quantize_row(dtype, row, cols, (uint8_t *)dst + (size_t)r * row_bytes);
            }
        }
        free(row);
    }
    g3n_matrix out = {dtype, rows, cols, row_bytes, dst};
    return out;
}

g3n_matrix g3n_transpose_matrix(const g3n_matrix *src, void *dst)
{
    const int64_t rows = src->rows, cols = src->cols;
    const size_t element = g3n_dtype_size(src->dtype);
    const int64_t tile = 64;
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < cols; c0 += tile) {
        const int64_t c1 = c0 + tile < cols ? c0 + tile : cols;
        for (int64_t r0 = 0; r0 < rows; r0 += tile) {
            const int64_t r1 = r0 + tile < rows ? r0 + tile : rows;
            for (int64_t r = r0; r < r1; r++) {
                const char *in = (const char *)src->data + (size_t)r * src->row_stride;
                for (int64_t c = c0; c < c1; c++)
                    memcpy((char *)dst + ((size_t)c * (size_t)rows + (size_t)r) * element, in + (size_t)c * element,
                           element);
            }
        }
    }
    g3n_matrix out = {src->dtype, cols, rows, (size_t)rows * element, dst};
    return out;
}

/* Weight `col` of a row's quants, without the offset (q - 128 or q - 8). */
static inline int weight_value(g3n_dtype dtype, int64_t cols, const uint8_t *q, int64_t col)
{
    int nibble;
    const uint8_t byte = q[weight_offset(dtype, cols, col, &nibble)];
    if (dtype == G3N_DTYPE_Q8)
        return (int)byte - 128;
    return (nibble ? (byte >> 4) : (byte & 15)) - 8;
}

void g3n_quant_row_slice_to_f32(const g3n_matrix *w, int64_t row, int64_t c0, int64_t c1, float *out)
{
    const uint8_t *base = (const uint8_t *)w->data + (size_t)row * w->row_stride;
    const uint16_t *scales = (const uint16_t *)base;
    const uint8_t *q = base + g3n_quant_matrix_scales_bytes(w);
    for (int64_t b = c0 / G3N_QUANT_BLOCK; b < c1 / G3N_QUANT_BLOCK; b++) {
        const float d = g3n_f16_to_f32(scales[b]);
        for (int64_t c = b * G3N_QUANT_BLOCK; c < (b + 1) * G3N_QUANT_BLOCK; c++)
            out[c - c0] = d * (float)weight_value(w->dtype, w->cols, q, c);
    }
}

void g3n_quant_row_to_f32(const g3n_matrix *w, int64_t row, float *out)
{
    g3n_quant_row_slice_to_f32(w, row, 0, w->cols, out);
}

/* ------------------------------------------------------------------ activations */

void g3n_quant_activations_free(g3n_quant_activations *a)
{
    g3n_aligned_free(a->memory);
    memset(a, 0, sizeof(*a));
}

int g3n_quant_activations_prepare(g3n_quant_activations *a, const float *x, int64_t rows, size_t x_stride,
                                  int64_t cols, g3n_dtype dtype)
{
    const int64_t groups = g3n_quant_groups(cols), blocks = cols / G3N_QUANT_BLOCK;
    const size_t values = (size_t)(rows * groups) * G3N_QUANT_GROUP;
    const size_t lanes = (size_t)(rows * groups) * G3N_QUANT_GROUP_BLOCKS;
    const size_t bytes = values + lanes * sizeof(int32_t) + lanes * sizeof(float);
    if (bytes > a->capacity) {
        g3n_aligned_free(a->memory);
        a->memory = g3n_aligned_alloc(bytes);
        a->capacity = a->memory ? bytes : 0;
        if (!a->memory)
            return G3N_ERR;
    }
    a->rows = rows;
    a->cols = cols;
    a->groups = groups;
    a->values = a->memory;
    a->start = (int32_t *)((char *)a->memory + values);
    a->block_scales = (float *)(a->start + lanes);
    const int offset = dtype == G3N_DTYPE_Q8 ? 128 : 8;
#pragma omp parallel for schedule(static) if (rows >= 4)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * x_stride;
        for (int64_t g = 0; g < groups; g++) {
            const size_t at = (size_t)(g * rows + r);
            memset(a->values + at * G3N_QUANT_GROUP, 0, G3N_QUANT_GROUP);
            memset(a->start + at * G3N_QUANT_GROUP_BLOCKS, 0, sizeof(int32_t) * G3N_QUANT_GROUP_BLOCKS);
            memset(a->block_scales + at * G3N_QUANT_GROUP_BLOCKS, 0, sizeof(float) * G3N_QUANT_GROUP_BLOCKS);
        }
        for (int64_t b = 0; b < blocks; b++) {
            const float *v = xr + b * G3N_QUANT_BLOCK;
            float amax = 0.0f;
            for (int i = 0; i < G3N_QUANT_BLOCK; i++)
                amax = fabsf(v[i]) > amax ? fabsf(v[i]) : amax;
            const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
            /* block b = lane l of group g: its bytes 4k..4k+3 go to vector k */
            const int64_t g = b / G3N_QUANT_GROUP_BLOCKS, l = b % G3N_QUANT_GROUP_BLOCKS;
            const size_t at = (size_t)(g * rows + r);
            int8_t *dst = a->values + at * G3N_QUANT_GROUP + 4 * l;
            int32_t sum = 0;
            for (int i = 0; i < G3N_QUANT_BLOCK; i++) {
                const int value = (int)lrintf(v[i] * inverse);
                dst[(i / 4) * 64 + i % 4] = (int8_t)value;
                sum += value;
            }
            a->block_scales[at * G3N_QUANT_GROUP_BLOCKS + l] = amax / 127.0f;
            a->start[at * G3N_QUANT_GROUP_BLOCKS + l] = -offset * sum;
        }
    }
    return G3N_OK;
}

/* ------------------------------------------------------------------ portable kernel */

void g3n_quant_dot_portable(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w,
                            float *y, size_t y_stride, int64_t j0, int64_t j1)
{
    const int64_t cols = w->cols, blocks = cols / G3N_QUANT_BLOCK;
    const size_t sbytes = g3n_quant_matrix_scales_bytes(w);
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *base = (const uint8_t *)w->data + (size_t)j * w->row_stride;
        const uint16_t *scales = (const uint16_t *)base;
        const uint8_t *q = base + sbytes;
        for (int64_t r = 0; r < rows; r++) {
            float sum = 0.0f;
            for (int64_t b = 0; b < blocks; b++) {
                const size_t at = (size_t)((b / G3N_QUANT_GROUP_BLOCKS) * a->rows + row0 + r);
                const int64_t l = b % G3N_QUANT_GROUP_BLOCKS;
                const int8_t *xb = a->values + at * G3N_QUANT_GROUP + 4 * l;
                int32_t dot = 0;
                for (int64_t i = 0; i < G3N_QUANT_BLOCK; i++)
                    dot += weight_value(w->dtype, cols, q, b * G3N_QUANT_BLOCK + i) * (int32_t)xb[(i / 4) * 64 + i % 4];
                sum += (float)dot * (g3n_f16_to_f32(scales[b]) * a->block_scales[at * G3N_QUANT_GROUP_BLOCKS + l]);
            }
            y[(size_t)r * y_stride + (size_t)j] = sum;
        }
    }
}

/* ------------------------------------------------------------------ cache file */

#define CACHE_MAGIC "G3NQC01"
#define CACHE_VERSION 2u /* 2: group layout of the quants */
#define CACHE_NAME 160

typedef struct cache_header {
    char magic[8];
    uint32_t version, count;
    uint64_t key_hash, data_offset, total_bytes;
} cache_header;

typedef struct cache_entry {
    char name[CACHE_NAME];
    int32_t dtype, transpose;
    int64_t rows, cols;
    uint64_t row_stride, offset;
} cache_entry;

struct g3n_quant_cache {
    void *base;     /* mapping or allocation */
    size_t bytes;
    int mapped;
};

static uint64_t fnv1a(const char *text)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 0x100000001B3ull;
    return h;
}

/* The layout every request gets: rows, cols, row stride in the target. */
static void request_layout(const g3n_quant_request *r, int64_t *rows, int64_t *cols, size_t *row_stride)
{
    if (r->transpose) {
        *rows = r->source.cols;
        *cols = r->source.rows;
        *row_stride = is_quant(r->dtype) ? g3n_quant_row_bytes(r->dtype, r->source.rows)
                                         : (size_t)r->source.rows * g3n_dtype_size(r->source.dtype);
    } else {
        *rows = r->source.rows;
        *cols = r->source.cols;
        *row_stride = g3n_quant_row_bytes(r->dtype, r->source.cols);
    }
}

static void fill_entries(const g3n_quant_request *requests, int count, cache_entry *entries, size_t data_offset,
                         size_t *total)
{
    size_t offset = data_offset;
    for (int i = 0; i < count; i++) {
        cache_entry *e = &entries[i];
        memset(e, 0, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%s", requests[i].name);
        int64_t rows, cols;
        size_t stride;
        request_layout(&requests[i], &rows, &cols, &stride);
        e->dtype = (int32_t)(requests[i].transpose && !is_quant(requests[i].dtype) ? requests[i].source.dtype
                                                                                   : requests[i].dtype);
        e->transpose = requests[i].transpose;
        e->rows = rows;
        e->cols = cols;
        e->row_stride = stride;
        e->offset = offset;
        offset = round_up(offset + stride * (size_t)rows, 4096);
    }
    *total = offset;
}

static void point_results(g3n_quant_request *requests, int count, const cache_entry *entries, const char *base)
{
    for (int i = 0; i < count; i++) {
        g3n_matrix m = {(g3n_dtype)entries[i].dtype, entries[i].rows, entries[i].cols, entries[i].row_stride,
                        base + entries[i].offset};
        requests[i].result = m;
    }
}

typedef struct build_progress {
    g3n_quant_progress report; /* may be NULL */
    void *user;
    double start;
} build_progress;

static size_t source_bytes(const g3n_quant_request *r)
{
    return (size_t)r->source.rows * r->source.row_stride;
}

/* The pages wholly inside a request's source, dropped from the process
 * (g3n_quant_request.release_source). Pages shared with a neighbouring tensor
 * go too: they fault back from the file if it is read again. */
static void release_source(const g3n_quant_request *r)
{
    if (!r->release_source || !r->source.data)
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t begin = (uintptr_t)r->source.data, end = begin + source_bytes(r);
    const uintptr_t first = begin / page * page, last = (end + page - 1) / page * page;
    (void)madvise((void *)first, last - first, MADV_DONTNEED); /* advice: on failure the pages just stay */
}

static int build_into(g3n_quant_request *requests, int count, const cache_entry *entries, char *base,
                      const build_progress *progress)
{
    size_t total = 0, done = 0;
    for (int i = 0; i < count; i++)
        total += source_bytes(&requests[i]);
    if (progress->report)
        progress->report(progress->user, 0.0, g3n_now_seconds() - progress->start);
    for (int i = 0; i < count; i++) {
        if (requests[i].transpose && is_quant(requests[i].dtype)) {
            const g3n_matrix *src = &requests[i].source;
            void *t = g3n_aligned_alloc((size_t)(src->rows * src->cols) * g3n_dtype_size(src->dtype));
            if (!t)
                return G3N_ERR;
            g3n_matrix transposed = g3n_transpose_matrix(src, t);
            g3n_quantize_matrix(&transposed, requests[i].dtype, base + entries[i].offset);
            g3n_aligned_free(t);
        } else if (requests[i].transpose)
            g3n_transpose_matrix(&requests[i].source, base + entries[i].offset);
        else
            g3n_quantize_matrix(&requests[i].source, requests[i].dtype, base + entries[i].offset);
        release_source(&requests[i]);
        done += source_bytes(&requests[i]);
        if (progress->report)
            progress->report(progress->user, total ? (double)done / (double)total : 1.0,
                             g3n_now_seconds() - progress->start);
    }
    return G3N_OK;
}

/* Maps the cache file at path when it holds exactly these entries for this
 * key: in 2 MiB pages where the kernel can (file_map.h: a decode step streams
 * every matrix once, and in 4 KiB pages that ran at about half the machine's
 * read bandwidth). */
static int try_map_existing(const char *path, uint64_t key_hash, const cache_entry *want, int count,
                            size_t total, void **out, g3n_file_pages *pages)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && (size_t)st.st_size == total;
    void *map = ok ? g3n_file_map_streamed(fd, total, pages) : NULL;
    close(fd);
    if (!map)
        return 0;
    const cache_header *h = map;
    ok = memcmp(h->magic, CACHE_MAGIC, 8) == 0 && h->version == CACHE_VERSION && h->count == (uint32_t)count &&
         h->key_hash == key_hash && h->total_bytes == total &&
         memcmp((const char *)map + sizeof(cache_header), want, sizeof(cache_entry) * (size_t)count) == 0;
    if (!ok) {
        munmap(map, total);
        return 0;
    }
    *out = map;
    return 1;
}

int g3n_quant_cache_open(g3n_quant_cache **out, const char *path, const char *key, g3n_quant_request *requests,
                         int count, g3n_quant_cache_info *info, g3n_error *err)
{
    return g3n_quant_cache_open_reporting(out, path, key, requests, count, info, NULL, NULL, err);
}

int g3n_quant_cache_open_reporting(g3n_quant_cache **out, const char *path, const char *key,
                                   g3n_quant_request *requests, int count, g3n_quant_cache_info *info,
                                   g3n_quant_progress report, void *user, g3n_error *err)
{
    *out = NULL;
    const double start = g3n_now_seconds();
    const build_progress progress = {report, user, start};
    for (int i = 0; i < count; i++) {
        const g3n_quant_request *r = &requests[i];
        const int float_source = r->source.dtype == G3N_DTYPE_F32 || r->source.dtype == G3N_DTYPE_BF16 ||
                                 r->source.dtype == G3N_DTYPE_F16;
        const int64_t width = r->transpose ? r->source.rows : r->source.cols;
        if (!float_source || (is_quant(r->dtype) ? !g3n_quant_supported(r->dtype, width) : !r->transpose))
            return g3n_error_set(err, "weight cache: %s cannot be stored as %s (%lld columns)", r->name,
                                 dtype_name(r->dtype), (long long)r->source.cols);
        if (strlen(r->name) >= CACHE_NAME)
            return g3n_error_set(err, "weight cache: name too long: %s", r->name);
    }
    const size_t header_bytes = sizeof(cache_header) + sizeof(cache_entry) * (size_t)count;
    const size_t data_offset = round_up(header_bytes, 4096);
    cache_entry *entries = calloc((size_t)(count ? count : 1), sizeof(cache_entry));
    g3n_quant_cache *cache = calloc(1, sizeof(*cache));
    if (!entries || !cache) {
        free(entries);
        free(cache);
        return g3n_error_set(err, "weight cache: out of memory");
    }
    size_t total;
    fill_entries(requests, count, entries, data_offset, &total);
    const uint64_t key_hash = fnv1a(key ? key : "");
    g3n_quant_cache_info local = {0, 0, total, 0.0};

    g3n_file_pages pages = G3N_FILE_PAGES_SMALL;
    if (path && try_map_existing(path, key_hash, entries, count, total, &cache->base, &pages)) {
        cache->mapped = 1;
        local.persisted = 1;
    } else {
        local.built = 1;
        char tmp[4096];
        int fd = -1;
        if (path) {
            snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
            fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd >= 0 && ftruncate(fd, (off_t)total) != 0) {
                close(fd);
                unlink(tmp);
                fd = -1;
            }
        }
        if (fd >= 0) {
            void *map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (map == MAP_FAILED) {
                unlink(tmp);
            } else {
                cache_header h;
                memset(&h, 0, sizeof(h));
                memcpy(h.magic, CACHE_MAGIC, 8);
                h.version = CACHE_VERSION;
                h.count = (uint32_t)count;
                h.key_hash = key_hash;
                h.data_offset = data_offset;
                h.total_bytes = total;
                int built = build_into(requests, count, entries, map, &progress) == G3N_OK;
                memcpy((char *)map + sizeof(h), entries, sizeof(cache_entry) * (size_t)count);
                memcpy(map, &h, sizeof(h)); /* header last: a valid magic means complete data */
                if (built && msync(map, total, MS_SYNC) == 0 && rename(tmp, path) == 0) {
                    /* written pages are small ones: map the file afresh, which
                     * lets them go and reads it back in 2 MiB pages (file_map.h) */
                    munmap(map, total);
                    if (try_map_existing(path, key_hash, entries, count, total, &cache->base, &pages)) {
                        cache->mapped = 1;
                        local.persisted = 1;
                    }
                } else {
                    munmap(map, total);
                    unlink(tmp);
                }
            }
        }
        if (!cache->base) { /* memory only */
            cache->base = g3n_aligned_alloc(total);
            if (!cache->base) {
                free(entries);
                free(cache);
                return g3n_error_set(err, "weight cache: out of memory (%zu bytes)", total);
            }
            if (build_into(requests, count, entries, cache->base, &progress) != G3N_OK) {
                g3n_aligned_free(cache->base);
                free(entries);
                free(cache);
                return g3n_error_set(err, "weight cache: out of memory while transposing");
            }
        }
    }
    cache->bytes = total;
    local.pages = cache->mapped ? pages : G3N_FILE_PAGES_SMALL;
    point_results(requests, count, entries, cache->base);
    free(entries);
    local.seconds = g3n_now_seconds() - start;
    if (info)
        *info = local;
    *out = cache;
    return G3N_OK;
}

void g3n_quant_cache_close(g3n_quant_cache *cache)
{
    if (!cache)
        return;
    if (cache->mapped)
        munmap(cache->base, cache->bytes);
    else
        g3n_aligned_free(cache->base);
    free(cache);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int g3n_quant_checkpoint_key(const char *folder, char *key, size_t size, g3n_error *err)
{
    DIR *dir = opendir(folder);
    if (!dir)
        return g3n_error_set(err, "weight cache: cannot list %s: %s", folder, strerror(errno));
    char *names[512];
    int count = 0;
    struct dirent *d;
    while ((d = readdir(dir)) != NULL && count < 512) {
        size_t len = strlen(d->d_name);
        if ((len > 12 && strcmp(d->d_name + len - 12, ".safetensors") == 0) || strcmp(d->d_name, "config.json") == 0)
            names[count++] = strdup(d->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)count, sizeof(names[0]), compare_names);
    size_t used = (size_t)snprintf(key, size, "v1");
    for (int i = 0; i < count; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", folder, names[i]);
        if (names[i] && stat(path, &st) == 0 && used < size)
            used += (size_t)snprintf(key + used, size - used, "|%s:%lld:%lld.%09ld", names[i], (long long)st.st_size,
                                     (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
        free(names[i]);
    }
    return G3N_OK;
}
