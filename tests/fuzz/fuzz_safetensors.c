/* fuzz_safetensors.c - a .safetensors file (common/model_io/safetensors.c): the 8-byte
 * header length, the JSON header (dtypes, shapes, data_offsets, __metadata__)
 * and the views of every tensor, each read byte by byte so that a view past
 * the mapping is an ASan report. Also the same file as a one-file checkpoint. */
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "safetensors.h"

static volatile uint64_t sink;

/* Reads the view whole, then releases it (a copy, should the reader make one). */
static void touch_view(g3n_tensor *view)
{
    sink += g3n_fuzz_touch(view->data, (size_t)g3n_tensor_numel(view) * g3n_dtype_size(view->dtype));
    g3n_tensor_free(view);
}

static void read_views(const g3n_safetensors_file *file)
{
    g3n_error err;
    int count = g3n_safetensors_count(file);
    for (int i = 0; i < count; i++) {
        const g3n_safetensors_entry *e = g3n_safetensors_entry_at(file, i);
        if (g3n_safetensors_find(file, e->name) == NULL)
            abort(); /* every listed tensor must be found by its name */
        g3n_tensor view;
        if (g3n_safetensors_get(file, e->name, &view, &err) == G3N_OK)
            touch_view(&view);
    }
    const char *format = g3n_safetensors_metadata(file, "format");
    if (format)
        sink += g3n_fuzz_touch(format, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = g3n_fuzz_memfile(data, size, path, sizeof(path));
    if (fd < 0)
        return 0;
    g3n_error err;
    g3n_safetensors_file *file = NULL;
    if (g3n_safetensors_open(&file, path, &err) == G3N_OK)
        read_views(file);
    g3n_safetensors_close(file);
    g3n_checkpoint *checkpoint = NULL;
    if (g3n_checkpoint_open(&checkpoint, path, &err) == G3N_OK) {
        int count = g3n_checkpoint_count(checkpoint);
        for (int i = 0; i < count; i++) {
            const g3n_safetensors_entry *e = g3n_checkpoint_entry_at(checkpoint, i);
            g3n_tensor view;
            if (g3n_checkpoint_get(checkpoint, e->name, &view, &err) == G3N_OK)
                touch_view(&view);
        }
    }
    g3n_checkpoint_close(checkpoint);
    close(fd);
    return 0;
}
