/* file_map.c - weight files mapped in 2 MiB pages where the kernel can; see file_map.h. */
#define _GNU_SOURCE
#include "file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memory_report.h"

#define HUGE_PAGE_BYTES ((size_t)2 << 20)

/* bytes of fd from offset, read-only and shared, at a 2 MiB-aligned address
 * (a 2 MiB folio can only be mapped by one page-table entry there), marked
 * MADV_HUGEPAGE when huge (so that what is read in for it comes in 2 MiB
 * folios). NULL with errno on failure. */
static void *map_aligned(int fd, size_t bytes, off_t offset, int huge)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t span = bytes + HUGE_PAGE_BYTES;
    char *reserve = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserve == MAP_FAILED)
        return NULL;
    char *aligned = (char *)(((uintptr_t)reserve + HUGE_PAGE_BYTES - 1) & ~(uintptr_t)(HUGE_PAGE_BYTES - 1));
    void *map = mmap(aligned, bytes, PROT_READ, MAP_SHARED | MAP_FIXED, fd, offset);
    if (map == MAP_FAILED) {
        const int saved = errno;
        munmap(reserve, span);
        errno = saved;
        return NULL;
    }
    /* give back the reservation around the mapping */
    if (aligned > reserve)
        munmap(reserve, (size_t)(aligned - reserve));
    char *end = aligned + (bytes + page - 1) / page * page;
    if (end < reserve + span)
        munmap(end, (size_t)(reserve + span - end));
#ifdef MADV_HUGEPAGE
    if (huge) /* all of it (one mapping; advice on the whole 2 MiB pages alone would split it) */
        (void)madvise(map, bytes, MADV_HUGEPAGE);
#endif
    return map;
}

void g3n_file_advise_huge(const void *start, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t first = ((uintptr_t)start + HUGE_PAGE_BYTES - 1) & ~(uintptr_t)(HUGE_PAGE_BYTES - 1);
    const uintptr_t end = ((uintptr_t)start + bytes) & ~(uintptr_t)(HUGE_PAGE_BYTES - 1);
    if (end > first)
        (void)madvise((void *)first, end - first, MADV_HUGEPAGE); /* advice: without it, small pages */
#else
    (void)start;
    (void)bytes;
#endif
}

void *g3n_file_map_aligned(int fd, size_t bytes)
{
    if (bytes == 0) {
        errno = EINVAL;
        return NULL;
    }
    return map_aligned(fd, bytes, 0, 0);
}

#if defined(__linux__) && defined(MADV_HUGEPAGE)
/* Reads the 2 MiB window of fd at offset (a multiple of 2 MiB) through a
 * mapping of its own: 1 when it came in one 2 MiB page, 0 when in small ones,
 * -1 when that cannot be told. */
static int window_in_huge_page(int fd, off_t offset)
{
    volatile const char *window = map_aligned(fd, HUGE_PAGE_BYTES, offset, 1);
    if (!window)
        return -1;
    (void)window[0]; /* one fault: a 2 MiB folio is mapped whole */
    uint64_t resident = 0, huge = 0;
    const int known = g3n_memory_at((const void *)window, &resident, &huge);
    munmap((void *)window, HUGE_PAGE_BYTES);
    return known ? huge >= HUGE_PAGE_BYTES : -1;
}
#endif

const char *g3n_file_pages_name(g3n_file_pages pages)
{
    return pages == G3N_FILE_PAGES_HUGE ? "2 MiB pages" : pages == G3N_FILE_PAGES_RELOADED ? "2 MiB pages, read back"
                                                                                          : "small pages";
}

void *g3n_file_map_streamed(int fd, size_t bytes, g3n_file_pages *pages)
{
    g3n_file_pages found = G3N_FILE_PAGES_SMALL;
    if (bytes == 0) {
        errno = EINVAL;
        return NULL;
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= 2 * HUGE_PAGE_BYTES) {
        /* the last whole 2 MiB window: its pages tell how the file is held */
        const off_t window = (off_t)((bytes / HUGE_PAGE_BYTES - 1) * HUGE_PAGE_BYTES);
        const int huge = window_in_huge_page(fd, window);
        if (huge == 1) {
            found = G3N_FILE_PAGES_HUGE;
        } else if (huge == 0 && posix_fadvise(fd, window, (off_t)HUGE_PAGE_BYTES, POSIX_FADV_DONTNEED) == 0 &&
                   window_in_huge_page(fd, window) == 1) {
            /* read back in a 2 MiB folio: the kernel can, so the rest goes too */
            (void)posix_fadvise(fd, 0, (off_t)bytes, POSIX_FADV_DONTNEED);
            found = G3N_FILE_PAGES_RELOADED;
        }
    }
#endif
    void *map = map_aligned(fd, bytes, 0, 1);
    if (map && pages)
        *pages = found;
    return map;
}
