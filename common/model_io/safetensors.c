#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_map.h"
#include "json_util.h"

/* ---- name -> index hash map (open addressing, FNV-1a) ---- */

typedef struct name_index {
    const char **keys; /* borrowed */
    int *values;
    size_t capacity;   /* power of two */
} name_index;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int name_index_init(name_index *m, size_t count)
{
    size_t capacity = 16;
    while (capacity < count * 2)
        capacity <<= 1;
    m->keys = calloc(capacity, sizeof(*m->keys));
    m->values = calloc(capacity, sizeof(*m->values));
    m->capacity = capacity;
    return (m->keys && m->values) ? G3N_OK : G3N_ERR;
}

static void name_index_free(name_index *m)
{
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

/* Returns 0 when inserted, 1 when the key already existed. */
static int name_index_put(name_index *m, const char *key, int value)
{
    size_t mask = m->capacity - 1;
    for (size_t i = hash_name(key) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) {
            m->keys[i] = key;
            m->values[i] = value;
            return 0;
        }
        if (strcmp(m->keys[i], key) == 0)
            return 1;
    }
}

static int name_index_get(const name_index *m, const char *key)
{
    if (!m->capacity)
        return -1;
    size_t mask = m->capacity - 1;
    for (size_t i = hash_name(key) & mask; m->keys[i]; i = (i + 1) & mask)
        if (strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return -1;
}

/* ---- one file ---- */

struct g3n_safetensors_file {
    char *path;
    int fd;    /* kept open for g3n_checkpoint_read_mapped; -1 when closed */
    void *map;
    size_t map_size;
    const unsigned char *data; /* start of the data section */
    uint64_t data_size;
    g3n_safetensors_entry *entries;
    void **copies; /* [count]: an aligned copy of each tensor whose bytes are not aligned in the file, else NULL */
    int count;
    name_index index;
    cJSON *metadata;
};

static int compare_begin(const void *a, const void *b)
{
    const g3n_safetensors_entry *x = *(const g3n_safetensors_entry *const *)a;
    const g3n_safetensors_entry *y = *(const g3n_safetensors_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static int parse_entry(g3n_safetensors_file *f, const cJSON *item, g3n_safetensors_entry *e, g3n_error *err)
{
    const char *path = f->path;
    e->name = strdup(item->string);
    if (!e->name)
        return g3n_error_set(err, "%s: out of memory", path);
    if (!cJSON_IsObject(item))
        return g3n_error_set(err, "%s: tensor '%s': header entry is not an object", path, e->name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || g3n_dtype_from_name(dtype->valuestring, &e->dtype) != G3N_OK)
        return g3n_error_set(err, "%s: tensor '%s': unsupported or missing dtype '%s'", path, e->name,
                             cJSON_IsString(dtype) ? dtype->valuestring : "?");
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > G3N_MAX_DIMS)
        return g3n_error_set(err, "%s: tensor '%s': bad shape", path, e->name);
    e->ndim = cJSON_GetArraySize(shape);
    uint64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) {
        const cJSON *dim = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(dim) || dim->valuedouble < 0 || dim->valuedouble > 9.0e15 ||
            dim->valuedouble != (double)(int64_t)dim->valuedouble)
            return g3n_error_set(err, "%s: tensor '%s': bad shape entry", path, e->name);
        e->shape[d] = (int64_t)dim->valuedouble;
        if (e->shape[d] != 0 && numel > UINT64_MAX / (uint64_t)e->shape[d])
            return g3n_error_set(err, "%s: tensor '%s': shape overflows", path, e->name);
        numel *= (uint64_t)e->shape[d];
    }
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return g3n_error_set(err, "%s: tensor '%s': bad data_offsets", path, e->name);
    const cJSON *begin = cJSON_GetArrayItem(offsets, 0), *end = cJSON_GetArrayItem(offsets, 1);
    /* offsets past the data section are refused below; 2^63 bounds the conversion (a double beyond
     * uint64's range converts to an undefined value) */
    if (!cJSON_IsNumber(begin) || !cJSON_IsNumber(end) || !(begin->valuedouble >= 0) || !(end->valuedouble >= 0) ||
        begin->valuedouble >= 9.2e18 || end->valuedouble >= 9.2e18)
        return g3n_error_set(err, "%s: tensor '%s': bad data_offsets", path, e->name);
    e->begin = (uint64_t)begin->valuedouble;
    e->end = (uint64_t)end->valuedouble;
    if (e->begin > e->end || e->end > f->data_size)
        return g3n_error_set(err,
                             "%s: tensor '%s': data [%llu, %llu) lies outside the data section of %llu bytes "
                             "(truncated file?)",
                             path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                             (unsigned long long)f->data_size);
    uint64_t element = g3n_dtype_size(e->dtype);
    if (numel > UINT64_MAX / element || e->end - e->begin != numel * element)
        return g3n_error_set(err, "%s: tensor '%s': %llu bytes of data for %llu elements of %s", path, e->name,
                             (unsigned long long)(e->end - e->begin), (unsigned long long)numel,
                             g3n_dtype_name(e->dtype));
    return G3N_OK;
}

int g3n_safetensors_open(g3n_safetensors_file **out, const char *path, g3n_error *err)
{
    *out = NULL;
    g3n_safetensors_file *f = calloc(1, sizeof(*f));
    if (!f)
        return g3n_error_set(err, "%s: out of memory", path);
    f->path = strdup(path);
    f->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        g3n_error_set(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        g3n_error_set(err, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 8) {
        close(fd);
        g3n_error_set(err, "%s: file of %lld bytes is too short for a safetensors header", path,
                      (long long)st.st_size);
        goto fail;
    }
    f->map_size = (size_t)st.st_size;
    /* 2 MiB-aligned, so that the matrices a decode step streams can be mapped in
     * 2 MiB pages where their users ask for it (file_map.h) */
    f->map = g3n_file_map_aligned(fd, f->map_size);
    f->fd = fd;
    if (!f->map) {
        g3n_error_set(err, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    const unsigned char *bytes = f->map;
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; i--)
        header_size = (header_size << 8) | bytes[i];
    if (header_size > f->map_size - 8 || header_size > (100u << 20)) {
        g3n_error_set(err, "%s: header size %llu does not fit a file of %zu bytes (truncated or not safetensors)",
                      path, (unsigned long long)header_size, f->map_size);
        goto fail;
    }
    f->data = bytes + 8 + header_size;
    f->data_size = f->map_size - 8 - header_size;
    cJSON *header = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)header_size);
    if (!header || !cJSON_IsObject(header)) {
        cJSON_Delete(header);
        g3n_error_set(err, "%s: header is not a JSON object (corrupt file?)", path);
        goto fail;
    }
    int total = cJSON_GetArraySize(header);
    f->entries = calloc((size_t)(total ? total : 1), sizeof(*f->entries));
    f->copies = calloc((size_t)(total ? total : 1), sizeof(*f->copies));
    if (!f->entries || !f->copies || name_index_init(&f->index, (size_t)total) != G3N_OK) {
        cJSON_Delete(header);
        g3n_error_set(err, "%s: out of memory", path);
        goto fail;
    }
    for (cJSON *item = header->child; item; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (f->metadata) { /* a second one would leak the first (and which one counts?) */
                g3n_error_set(err, "%s: the header has two \"__metadata__\" entries", path);
                cJSON_Delete(header);
                goto fail;
            }
            f->metadata = cJSON_Duplicate(item, 1);
            continue;
        }
        g3n_safetensors_entry *e = &f->entries[f->count++];
        if (parse_entry(f, item, e, err) != G3N_OK) {
            cJSON_Delete(header);
            goto fail;
        }
        if (name_index_put(&f->index, e->name, f->count - 1)) {
            cJSON_Delete(header);
            g3n_error_set(err, "%s: tensor '%s' appears twice", path, e->name);
            goto fail;
        }
    }
    cJSON_Delete(header);
    /* byte ranges must not overlap */
    if (f->count > 1) {
        const g3n_safetensors_entry **sorted = malloc(sizeof(*sorted) * (size_t)f->count);
        if (!sorted) {
            g3n_error_set(err, "%s: out of memory", path);
            goto fail;
        }
        for (int i = 0; i < f->count; i++)
            sorted[i] = &f->entries[i];
        qsort(sorted, (size_t)f->count, sizeof(*sorted), compare_begin);
        for (int i = 1; i < f->count; i++) {
            if (sorted[i]->begin < sorted[i - 1]->end && sorted[i]->end > sorted[i]->begin) {
                g3n_error_set(err, "%s: tensors '%s' and '%s' overlap in the file", path, sorted[i - 1]->name,
                              sorted[i]->name);
                free(sorted);
                goto fail;
            }
        }
        free(sorted);
    }
    /* The format does not pad the header or place tensors on element boundaries
     * (writers pad the header to 8 bytes, but a file whose header is not padded
     * is still valid): a tensor whose bytes are not aligned for its elements is
     * read through an aligned copy (malloc aligns to 16 bytes). */
    for (int i = 0; i < f->count; i++) {
        const g3n_safetensors_entry *e = &f->entries[i];
        if (((uintptr_t)(f->data + e->begin)) % g3n_dtype_size(e->dtype) == 0)
            continue;
        f->copies[i] = malloc(e->end > e->begin ? (size_t)(e->end - e->begin) : 1);
        if (!f->copies[i]) {
            g3n_error_set(err, "%s: tensor '%s': out of memory for an aligned copy of its unaligned data", path,
                          e->name);
            goto fail;
        }
        memcpy(f->copies[i], f->data + e->begin, (size_t)(e->end - e->begin));
    }
    *out = f;
    return G3N_OK;
fail:
    g3n_safetensors_close(f);
    return G3N_ERR;
}

void g3n_safetensors_close(g3n_safetensors_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; i < f->count; i++) {
        free(f->entries[i].name);
        if (f->copies)
            free(f->copies[i]);
    }
    free(f->entries);
    free(f->copies);
    name_index_free(&f->index);
    cJSON_Delete(f->metadata);
    free(f->path);
    free(f);
}

const char *g3n_safetensors_path(const g3n_safetensors_file *f)
{
    return f->path;
}

int g3n_safetensors_count(const g3n_safetensors_file *f)
{
    return f->count;
}

const g3n_safetensors_entry *g3n_safetensors_entry_at(const g3n_safetensors_file *f, int index)
{
    return (index >= 0 && index < f->count) ? &f->entries[index] : NULL;
}

const g3n_safetensors_entry *g3n_safetensors_find(const g3n_safetensors_file *f, const char *name)
{
    int i = name_index_get(&f->index, name);
    return i >= 0 ? &f->entries[i] : NULL;
}

static void entry_view(const g3n_safetensors_file *f, const g3n_safetensors_entry *e, g3n_tensor *view)
{
    const void *copy = f->copies[e - f->entries];
    g3n_tensor_view(view, e->dtype, e->ndim, e->shape, copy ? (void *)copy : (void *)(f->data + e->begin));
}

int g3n_safetensors_get(const g3n_safetensors_file *f, const char *name, g3n_tensor *view, g3n_error *err)
{
    const g3n_safetensors_entry *e = g3n_safetensors_find(f, name);
    if (!e)
        return g3n_error_set(err, "%s: no tensor '%s'", f->path, name);
    entry_view(f, e, view);
    return G3N_OK;
}

const char *g3n_safetensors_metadata(const g3n_safetensors_file *f, const char *key)
{
    return f->metadata ? g3n_json_get_string(f->metadata, key, NULL) : NULL;
}

/* ---- checkpoints (one file or a sharded folder) ---- */

typedef struct checkpoint_tensor {
    const g3n_safetensors_entry *entry;
    const g3n_safetensors_file *file;
} checkpoint_tensor;

struct g3n_checkpoint {
    g3n_safetensors_file **files;
    int file_count;
    checkpoint_tensor *tensors;
    int count;
    name_index index;
};

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int checkpoint_add_file(g3n_checkpoint *c, const char *path, g3n_safetensors_file **out, g3n_error *err)
{
    for (int i = 0; i < c->file_count; i++) {
        if (strcmp(g3n_safetensors_path(c->files[i]), path) == 0) {
            *out = c->files[i];
            return G3N_OK;
        }
    }
    g3n_safetensors_file **grown = realloc(c->files, sizeof(*grown) * (size_t)(c->file_count + 1));
    if (!grown)
        return g3n_error_set(err, "out of memory");
    c->files = grown;
    if (g3n_safetensors_open(&c->files[c->file_count], path, err) != G3N_OK)
        return G3N_ERR;
    *out = c->files[c->file_count++];
    return G3N_OK;
}

static int checkpoint_open_index(g3n_checkpoint *c, const char *folder, const char *index_path, g3n_error *err)
{
    cJSON *index;
    if (g3n_json_load_file(index_path, &index, err) != G3N_OK)
        return G3N_ERR;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(index);
        return g3n_error_set(err, "%s: no \"weight_map\" object", index_path);
    }
    int total = cJSON_GetArraySize(map);
    c->tensors = calloc((size_t)(total ? total : 1), sizeof(*c->tensors));
    if (!c->tensors || name_index_init(&c->index, (size_t)total) != G3N_OK) {
        cJSON_Delete(index);
        return g3n_error_set(err, "out of memory");
    }
    for (const cJSON *item = map->child; item; item = item->next) {
        if (!cJSON_IsString(item) || strchr(item->valuestring, '/') || strstr(item->valuestring, "..")) {
            g3n_error_set(err, "%s: tensor '%s': bad shard file name", index_path, item->string);
            cJSON_Delete(index);
            return G3N_ERR;
        }
        char shard_path[4096];
        snprintf(shard_path, sizeof(shard_path), "%s/%s", folder, item->valuestring);
        g3n_safetensors_file *file;
        if (checkpoint_add_file(c, shard_path, &file, err) != G3N_OK) {
            cJSON_Delete(index);
            return G3N_ERR;
        }
        const g3n_safetensors_entry *e = g3n_safetensors_find(file, item->string);
        if (!e) {
            g3n_error_set(err, "%s: the index puts tensor '%s' in this shard, but it is not there", shard_path,
                          item->string);
            cJSON_Delete(index);
            return G3N_ERR;
        }
        c->tensors[c->count].entry = e;
        c->tensors[c->count].file = file;
        name_index_put(&c->index, e->name, c->count);
        c->count++;
    }
    cJSON_Delete(index);
    return G3N_OK;
}

static int checkpoint_open_single(g3n_checkpoint *c, const char *path, g3n_error *err)
{
    g3n_safetensors_file *file;
    if (checkpoint_add_file(c, path, &file, err) != G3N_OK)
        return G3N_ERR;
    int total = g3n_safetensors_count(file);
    c->tensors = calloc((size_t)(total ? total : 1), sizeof(*c->tensors));
    if (!c->tensors || name_index_init(&c->index, (size_t)total) != G3N_OK)
        return g3n_error_set(err, "out of memory");
    for (int i = 0; i < total; i++) {
        c->tensors[i].entry = g3n_safetensors_entry_at(file, i);
        c->tensors[i].file = file;
        name_index_put(&c->index, c->tensors[i].entry->name, i);
    }
    c->count = total;
    return G3N_OK;
}

int g3n_checkpoint_open(g3n_checkpoint **out, const char *path, g3n_error *err)
{
    *out = NULL;
    g3n_checkpoint *c = calloc(1, sizeof(*c));
    if (!c)
        return g3n_error_set(err, "out of memory");
    int status;
    if (is_directory(path)) {
        char candidate[4096];
        snprintf(candidate, sizeof(candidate), "%s/model.safetensors.index.json", path);
        if (file_exists(candidate)) {
            status = checkpoint_open_index(c, path, candidate, err);
        } else {
            snprintf(candidate, sizeof(candidate), "%s/model.safetensors", path);
            if (file_exists(candidate))
                status = checkpoint_open_single(c, candidate, err);
            else
                status = g3n_error_set(err,
                                       "%s: no model.safetensors.index.json or model.safetensors in this folder",
                                       path);
        }
    } else {
        status = checkpoint_open_single(c, path, err);
    }
    if (status != G3N_OK) {
        g3n_checkpoint_close(c);
        return G3N_ERR;
    }
    *out = c;
    return G3N_OK;
}

void g3n_checkpoint_close(g3n_checkpoint *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->file_count; i++)
        g3n_safetensors_close(c->files[i]);
    free(c->files);
    free(c->tensors);
    name_index_free(&c->index);
    free(c);
}

int g3n_checkpoint_read_mapped(const g3n_checkpoint *c, const void *mapped, size_t bytes, void *out)
{
    if (!c)
        return 0;
    const char *at = mapped;
    for (int i = 0; i < c->file_count; i++) {
        const g3n_safetensors_file *f = c->files[i];
        const char *base = f->map;
        if (f->fd < 0 || !base || at < base || at + bytes > base + f->map_size)
            continue;
        size_t done = 0;
        while (done < bytes) {
            const ssize_t n = pread(f->fd, (char *)out + done, bytes - done, (off_t)(at - base) + (off_t)done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return 0;
            done += (size_t)n;
        }
        return 1;
    }
    return 0;
}

int g3n_checkpoint_count(const g3n_checkpoint *c)
{
    return c->count;
}

const g3n_safetensors_entry *g3n_checkpoint_entry_at(const g3n_checkpoint *c, int index)
{
    return (index >= 0 && index < c->count) ? c->tensors[index].entry : NULL;
}

const g3n_safetensors_entry *g3n_checkpoint_find(const g3n_checkpoint *c, const char *name)
{
    int i = name_index_get(&c->index, name);
    return i >= 0 ? c->tensors[i].entry : NULL;
}

int g3n_checkpoint_get(const g3n_checkpoint *c, const char *name, g3n_tensor *view, g3n_error *err)
{
    int i = name_index_get(&c->index, name);
    if (i < 0)
        return g3n_error_set(err, "checkpoint has no tensor '%s'", name);
    entry_view(c->tensors[i].file, c->tensors[i].entry, view);
    return G3N_OK;
}

/* ---- streaming writer ---- */

typedef struct declared_tensor {
    char *name;
    g3n_dtype dtype;
    int ndim;
    int64_t shape[G3N_MAX_DIMS];
    uint64_t bytes;
} declared_tensor;

struct g3n_safetensors_writer {
    char *path;
    FILE *file;
    declared_tensor *tensors;
    int count, capacity;
    uint64_t data_bytes;
    uint64_t written;
    int header_written;
};

int g3n_safetensors_writer_open(g3n_safetensors_writer **out, const char *path, g3n_error *err)
{
    *out = NULL;
    g3n_safetensors_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return g3n_error_set(err, "out of memory");
    w->path = strdup(path);
    w->file = fopen(path, "wb");
    if (!w->file) {
        g3n_error_set(err, "%s: %s", path, strerror(errno));
        free(w->path);
        free(w);
        return G3N_ERR;
    }
    *out = w;
    return G3N_OK;
}

int g3n_safetensors_writer_declare(g3n_safetensors_writer *w, const char *name, g3n_dtype dtype, int ndim,
                                   const int64_t *shape, g3n_error *err)
{
    if (w->header_written)
        return g3n_error_set(err, "%s: tensor '%s' declared after data was written", w->path, name);
    if (ndim < 0 || ndim > G3N_MAX_DIMS || g3n_dtype_size(dtype) == 0)
        return g3n_error_set(err, "%s: tensor '%s': bad rank or dtype", w->path, name);
    if (w->count == w->capacity) {
        int capacity = w->capacity ? w->capacity * 2 : 64;
        declared_tensor *grown = realloc(w->tensors, sizeof(*grown) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "out of memory");
        w->tensors = grown;
        w->capacity = capacity;
    }
    declared_tensor *t = &w->tensors[w->count++];
    t->name = strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->bytes = (uint64_t)g3n_shape_numel(ndim, shape) * g3n_dtype_size(dtype);
    w->data_bytes += t->bytes;
    return G3N_OK;
}

uint64_t g3n_safetensors_writer_data_bytes(const g3n_safetensors_writer *w)
{
    return w->data_bytes;
}

static int write_header(g3n_safetensors_writer *w, g3n_error *err)
{
    cJSON *header = cJSON_CreateObject();
    cJSON *metadata = cJSON_AddObjectToObject(header, "__metadata__");
    cJSON_AddStringToObject(metadata, "format", "pt");
    uint64_t offset = 0;
    for (int i = 0; i < w->count; i++) {
        declared_tensor *t = &w->tensors[i];
        cJSON *entry = cJSON_AddObjectToObject(header, t->name);
        cJSON_AddStringToObject(entry, "dtype", g3n_dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + t->bytes)));
        offset += t->bytes;
    }
    char *text = cJSON_PrintUnformatted(header);
    cJSON_Delete(header);
    if (!text)
        return g3n_error_set(err, "%s: out of memory building the header", w->path);
    size_t length = strlen(text);
    size_t padded = (length + 7) & ~(size_t)7; /* keep the data 8-byte aligned */
    unsigned char size_bytes[8];
    for (int i = 0; i < 8; i++)
        size_bytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(size_bytes, 1, 8, w->file) == 8 && fwrite(text, 1, length, w->file) == length;
    for (size_t i = length; ok && i < padded; i++)
        ok = fputc(' ', w->file) != EOF;
    free(text);
    w->header_written = 1;
    return ok ? G3N_OK : g3n_error_set(err, "%s: write failed: %s", w->path, strerror(errno));
}

int g3n_safetensors_writer_write(g3n_safetensors_writer *w, const void *bytes, size_t size, g3n_error *err)
{
    if (!w->header_written && write_header(w, err) != G3N_OK)
        return G3N_ERR;
    if (w->written + size > w->data_bytes)
        return g3n_error_set(err, "%s: more data written than declared", w->path);
    if (size && fwrite(bytes, 1, size, w->file) != size)
        return g3n_error_set(err, "%s: write failed: %s", w->path, strerror(errno));
    w->written += size;
    return G3N_OK;
}

int g3n_safetensors_writer_finish(g3n_safetensors_writer *w, g3n_error *err)
{
    int status = G3N_OK;
    if (!w->header_written)
        status = write_header(w, err);
    if (status == G3N_OK && w->written != w->data_bytes)
        status = g3n_error_set(err, "%s: %llu of %llu declared bytes written", w->path,
                               (unsigned long long)w->written, (unsigned long long)w->data_bytes);
    if (fclose(w->file) != 0 && status == G3N_OK)
        status = g3n_error_set(err, "%s: close failed: %s", w->path, strerror(errno));
    for (int i = 0; i < w->count; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w->path);
    free(w);
    return status;
}
