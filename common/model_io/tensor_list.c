#include "tensor_list.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int g3n_tensor_list_add(g3n_tensor_list *list, int ndim, const int64_t *shape, g3n_error *err, const char *name_format,
                        ...)
{
    if (ndim < 0 || ndim > G3N_MAX_DIMS)
        return g3n_error_set(err, "tensor rank %d out of range", ndim);
    if (list->count == list->capacity) {
        int capacity = list->capacity ? list->capacity * 2 : 256;
        g3n_tensor_spec *grown = realloc(list->items, sizeof(*grown) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "out of memory");
        list->items = grown;
        list->capacity = capacity;
    }
    g3n_tensor_spec *spec = &list->items[list->count];
    memset(spec, 0, sizeof(*spec));
    va_list args;
    va_start(args, name_format);
    int length = vsnprintf(spec->name, sizeof(spec->name), name_format, args);
    va_end(args);
    if (length < 0 || (size_t)length >= sizeof(spec->name))
        return g3n_error_set(err, "tensor name too long");
    spec->ndim = ndim;
    memcpy(spec->shape, shape, sizeof(int64_t) * (size_t)ndim);
    list->count++;
    return G3N_OK;
}

void g3n_tensor_list_free(g3n_tensor_list *list)
{
    free(list->items);
    memset(list, 0, sizeof(*list));
}

const g3n_tensor_spec *g3n_tensor_list_find(const g3n_tensor_list *list, const char *name)
{
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->items[i].name, name) == 0)
            return &list->items[i];
    return NULL;
}
