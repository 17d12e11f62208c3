/* g3n_file_map_streamed: the mapping holds the file's bytes (all of them, up
 * to a last partial page); where the kernel keeps file data in 2 MiB folios,
 * the file ends up mapped in 2 MiB pages, small pages are dropped only once
 * (a second mapping finds the 2 MiB pages) and the data is still the same.
 * g3n_file_map_aligned + g3n_file_advise_huge: only the advised range. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "file_map.h"
#include "memory_report.h"
#include "test_util.h"

#define FILE_BYTES ((size_t)(16u << 20) + 12345u) /* eight 2 MiB windows and a partial page */

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

/* A file of FILE_BYTES written 4 KiB at a time (as a copy with a small buffer
 * does: its page-cache folios start small) and synced. */
static int write_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    uint8_t *data = malloc(FILE_BYTES);
    assert_non_null(data);
    for (size_t i = 0; i < FILE_BYTES; i++)
        data[i] = pattern_byte(i);
    for (size_t at = 0; at < FILE_BYTES; at += 4096) {
        const size_t piece = FILE_BYTES - at < 4096 ? FILE_BYTES - at : 4096;
        assert_int_equal(write(fd, data + at, piece), (ssize_t)piece);
    }
    assert_int_equal(fsync(fd), 0);
    free(data);
    return fd;
}

static void assert_contents(const uint8_t *map)
{
    for (size_t i = 0; i < FILE_BYTES; i += 4093)
        assert_int_equal(map[i], pattern_byte(i));
    assert_int_equal(map[FILE_BYTES - 1], pattern_byte(FILE_BYTES - 1));
}

static void test_maps_the_file(void **state)
{
    (void)state;
    char dir[1024], path[1200];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/weights.bin", dir);
    int fd = write_file(path);

    g3n_file_pages first = G3N_FILE_PAGES_SMALL;
    const uint8_t *map = g3n_file_map_streamed(fd, FILE_BYTES, &first);
    assert_non_null(map);
    assert_int_equal((uintptr_t)map % (2u << 20), 0); /* where a 2 MiB page can map it */
    assert_contents(map);
    uint64_t resident = 0, huge = 0;
    assert_int_equal(g3n_memory_at(map, &resident, &huge), 1);
    assert_true(resident >= FILE_BYTES - 4096 && huge <= resident);
    if (first == G3N_FILE_PAGES_SMALL) {
        print_message("this kernel keeps %s in small pages: only the contents are checked\n", path);
    } else {
        /* the kernel can: the written pages (small ones, unless the kernel
         * made them large on write) went and came back in 2 MiB ones */
        print_message("%s: %s\n", path, g3n_file_pages_name(first));
        assert_true(huge >= (8u << 20)); /* most of it (the kernel may fall back to small folios when memory is fragmented) */
    }
    assert_int_equal(munmap((void *)map, FILE_BYTES), 0);

    /* mapped again: nothing more to drop */
    g3n_file_pages second = G3N_FILE_PAGES_SMALL;
    map = g3n_file_map_streamed(fd, FILE_BYTES, &second);
    assert_non_null(map);
    assert_contents(map);
    if (first != G3N_FILE_PAGES_SMALL) {
        assert_int_equal(second, G3N_FILE_PAGES_HUGE);
        assert_int_equal(g3n_memory_at(map, &resident, &huge), 1);
        assert_true(huge >= (8u << 20)); /* most of it (the kernel may fall back to small folios when memory is fragmented) */
    }
    assert_int_equal(munmap((void *)map, FILE_BYTES), 0);
    close(fd);
    g3n_test_remove_tree(dir);
}

/* A checkpoint shard's way: mapped without advice, only a streamed range
 * advised. That range reads back in 2 MiB pages where the kernel can; a range
 * read sparsely outside it (the per-layer table) grows by what is read, not by
 * 2 MiB per read. */
static void test_advised_range_only(void **state)
{
    (void)state;
    char dir[1024], path[1200];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/shard.bin", dir);
    int fd = write_file(path);
    /* can this kernel keep the file in 2 MiB folios? (drops the written pages when it can) */
    g3n_file_pages pages = G3N_FILE_PAGES_SMALL;
    void *probe = g3n_file_map_streamed(fd, FILE_BYTES, &pages);
    assert_non_null(probe);
    munmap(probe, FILE_BYTES);
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

    const uint8_t *map = g3n_file_map_aligned(fd, FILE_BYTES);
    assert_non_null(map);
    assert_int_equal((uintptr_t)map % (2u << 20), 0);
    g3n_file_advise_huge(map + 1000, (8u << 20) - 1000); /* whole 2 MiB pages inside: [2, 8) MiB */
    /* the advised range first (read-ahead from before it would bring it in small pages) */
    for (size_t i = 2u << 20; i < (8u << 20); i += 4093)
        assert_int_equal(map[i], pattern_byte(i));
    const size_t sparse[4] = {(9u << 20) + 100, (11u << 20) + 200, (13u << 20) + 300, (15u << 20) + 400};
    assert_contents(map);
    uint64_t resident = 0, huge = 0;
    assert_int_equal(g3n_memory_at(map + (4u << 20), &resident, &huge), 1);
    assert_int_equal(resident, 6u << 20); /* the advised mapping is [2, 8) MiB, read whole */
    if (pages != G3N_FILE_PAGES_SMALL)
        assert_int_equal(huge, 6u << 20);
    munmap((void *)map, FILE_BYTES);

    /* out of the page cache and mapped again, the tail only read sparsely:
     * four reads, not four 2 MiB pages */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    map = g3n_file_map_aligned(fd, FILE_BYTES);
    assert_non_null(map);
    for (int i = 0; i < 4; i++)
        assert_int_equal(map[sparse[i]], pattern_byte(sparse[i]));
    assert_int_equal(g3n_memory_at(map, &resident, &huge), 1);
    assert_true(resident < (8u << 20));
    assert_true(huge <= resident);
    munmap((void *)map, FILE_BYTES);
    close(fd);
    g3n_test_remove_tree(dir);
}

static void test_small_file_and_no_bytes(void **state)
{
    (void)state;
    char dir[1024], path[1200];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/small.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "weights", 7), 7);
    g3n_file_pages pages = G3N_FILE_PAGES_HUGE;
    const char *map = g3n_file_map_streamed(fd, 7, &pages);
    assert_non_null(map);
    assert_memory_equal(map, "weights", 7);
    assert_int_equal(pages, G3N_FILE_PAGES_SMALL); /* under 4 MiB: a plain mapping */
    munmap((void *)map, 7);
    errno = 0;
    assert_null(g3n_file_map_streamed(fd, 0, &pages));
    assert_int_equal(errno, EINVAL);
    close(fd);
    g3n_test_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_maps_the_file), cmocka_unit_test(test_advised_range_only),
                                       cmocka_unit_test(test_small_file_and_no_bytes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
