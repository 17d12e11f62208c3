/* fuzz_safetensors_index.c - a sharded checkpoint's model.safetensors.index.json
 * (common/model_io/safetensors.c): the input is the index, in a folder that holds two
 * small valid shards (a.safetensors: "x" f32 [2, 3]; b.safetensors: "y" bf16
 * [4] and "z" i32 [1]); every tensor the checkpoint lists is then read whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "safetensors.h"

static volatile uint64_t sink;
static char folder[512], index_path[600];

static void write_shard(const char *name, const char *header, size_t data_bytes)
{
    uint8_t buffer[512];
    size_t header_size = strlen(header);
    memcpy(buffer + 8, header, header_size);
    while (header_size % 8) /* the data section 8-byte aligned, as writers pad it */
        buffer[8 + header_size++] = ' ';
    uint64_t n = header_size;
    memcpy(buffer, &n, 8);
    for (size_t i = 0; i < data_bytes; i++)
        buffer[8 + header_size + i] = (uint8_t)(i * 7 + 1);
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", folder, name);
    if (g3n_fuzz_write_file(path, buffer, 8 + header_size + data_bytes) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(folder, sizeof(folder), "%s", g3n_fuzz_scratch_dir());
    snprintf(index_path, sizeof(index_path), "%s/model.safetensors.index.json", folder);
    write_shard("a.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
    write_shard("b.safetensors",
                "{\"__metadata__\":{\"format\":\"pt\"},\"y\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                "\"z\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                12);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g3n_fuzz_write_file(index_path, data, size) != 0)
        abort();
    g3n_error err;
    g3n_checkpoint *checkpoint = NULL;
    if (g3n_checkpoint_open(&checkpoint, folder, &err) == G3N_OK) {
        int count = g3n_checkpoint_count(checkpoint);
        for (int i = 0; i < count; i++) {
            const g3n_safetensors_entry *e = g3n_checkpoint_entry_at(checkpoint, i);
            if (g3n_checkpoint_find(checkpoint, e->name) == NULL)
                abort();
            g3n_tensor view;
            if (g3n_checkpoint_get(checkpoint, e->name, &view, &err) == G3N_OK) {
                sink += g3n_fuzz_touch(view.data, (size_t)g3n_tensor_numel(&view) * g3n_dtype_size(view.dtype));
                g3n_tensor_free(&view);
            }
        }
    }
    g3n_checkpoint_close(checkpoint);
    return 0;
}
