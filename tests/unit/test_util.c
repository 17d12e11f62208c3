#define _GNU_SOURCE
#include "test_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *g3n_test_fixture(const char *relative, char *buffer, size_t size)
{
    const char *root = getenv("G3N_FIXTURES");
    snprintf(buffer, size, "%s/%s", root && *root ? root : "tests/fixtures", relative);
    return buffer;
}

const char *g3n_test_temp_dir(char *buffer, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buffer, size, "%s/g3n-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(buffer))
        buffer[0] = '\0';
    return buffer;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void g3n_test_remove_tree(const char *path)
{
    if (path && *path)
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void g3n_test_random_floats(float *out, int64_t count, uint64_t seed)
{
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < count; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out[i] = (float)((double)(state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

const char *g3n_test_binary(void)
{
    const char *binary = getenv("G3N_BINARY");
    return binary && *binary ? binary : "build/release/orchestrator/g3n";
}

void g3n_test_capture_layer0(void *user, int layer, const float *streams, int num_streams, int64_t stream_stride,
                             int64_t first_position, int64_t count, int64_t hidden)
{
    g3n_test_layer_capture *c = user;
    if (layer != 0)
        return;
    for (int i = 0; i < num_streams; i++)
        for (int64_t t = 0; t < count; t++)
            if (first_position + t < c->tokens)
                memcpy(c->data + ((int64_t)i * c->tokens + first_position + t) * hidden,
                       streams + i * stream_stride + t * hidden, sizeof(float) * (size_t)hidden);
}
