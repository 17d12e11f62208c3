/* fuzz_util.c - what the harnesses share (fuzz_util.h). */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

char *g3n_fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static int write_all(int fd, const uint8_t *data, size_t size)
{
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n <= 0)
            return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

int g3n_fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t path_size)
{
    int fd = memfd_create("g3n-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (write_all(fd, data, size) != 0) {
        close(fd);
        return -1;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

int g3n_fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, data, size);
    close(fd);
    return rc;
}

static char scratch[256];

static void remove_scratch(void)
{
    DIR *d = opendir(scratch);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof(path), "%s/%s", scratch, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(scratch);
}

const char *g3n_fuzz_scratch_dir(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof(scratch), "%s/g3n-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch))
            abort();
        atexit(remove_scratch);
    }
    return scratch;
}

uint64_t g3n_fuzz_touch(const void *buf, size_t size)
{
    const uint8_t *b = buf;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

int g3n_fuzz_piece(const uint8_t *data, size_t size, int k, const uint8_t **piece, size_t *piece_size)
{
    static const char sep[] = "\n--g3n--\n";
    const size_t sep_size = sizeof(sep) - 1;
    size_t start = 0;
    int index = 0;
    for (;;) {
        size_t end = start;
        while (end + sep_size <= size && memcmp(data + end, sep, sep_size) != 0)
            end++;
        int last = end + sep_size > size;
        if (last)
            end = size;
        if (index == k) {
            *piece = data + start;
            *piece_size = end - start;
            return 1;
        }
        if (last)
            return 0;
        start = end + sep_size;
        index++;
    }
}
