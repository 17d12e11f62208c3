/* g3n_memory_mappings: a file mapped and partly read shows up under its path
 * with the pages read resident and the whole size mapped; anonymous memory is
 * one entry; entries come largest first and add up to at most the total.
 * g3n_memory_at: the mapping that holds an address, none for an unmapped one. */
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

#include "memory_report.h"
#include "test_util.h"

static void test_mapped_file_and_anonymous(void **state)
{
    (void)state;
    char dir[1024], path[1200];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/weights.bin", dir);
    const size_t size = 8u << 20, touched = 2u << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    unsigned char *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    unsigned sum = 0;
    for (size_t i = 0; i < touched; i += 4096)
        sum += map[i]; /* reads fault the first 2 MiB in */
    assert_int_equal(sum, 0);
    unsigned char *heap = malloc(16u << 20);
    assert_non_null(heap);
    memset(heap, 1, 16u << 20);

    g3n_memory_mapping entries[64];
    uint64_t total = 0;
    const int n = g3n_memory_mappings(entries, 64, &total);
    assert_true(n >= 2);
    int file = -1, anonymous = -1;
    uint64_t listed = 0;
    for (int i = 0; i < n; i++) {
        listed += entries[i].resident_bytes;
        if (i > 0)
            assert_true(entries[i - 1].resident_bytes >= entries[i].resident_bytes);
        if (strcmp(entries[i].path, path) == 0)
            file = i;
        if (strcmp(entries[i].path, "[anonymous]") == 0)
            anonymous = i;
    }
    assert_true(file >= 0);
    assert_true(anonymous >= 0);
    assert_true(entries[file].resident_bytes >= touched);
    assert_true(entries[file].resident_bytes <= size);
    assert_int_equal(entries[file].mapped_bytes, size);
    assert_true(entries[anonymous].resident_bytes >= (16u << 20));
    assert_true(listed <= total);
    for (int i = 0; i < n; i++)
        assert_true(entries[i].huge_bytes <= entries[i].resident_bytes);

    /* the one mapping at an address: the file's, with what was read resident */
    uint64_t resident = 0, huge = 0;
    assert_int_equal(g3n_memory_at(map + 4096, &resident, &huge), 1);
    assert_true(resident >= touched && resident <= size);
    assert_true(huge <= resident);
    assert_int_equal(g3n_memory_at((const void *)(uintptr_t)4096, &resident, &huge), 0); /* nothing mapped there */
    assert_int_equal(resident, 0);
    assert_int_equal(huge, 0);

    free(heap);
    munmap(map, size);
    close(fd);
    g3n_test_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mapped_file_and_anonymous)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
