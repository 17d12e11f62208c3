/* file_map.h - read-only mappings of weight files that a decode step streams
 * end to end (the quantised weight cache), in 2 MiB pages where the kernel can.
 *
 * Why: mapped in 4 KiB pages, a decode step streams the weights well below the
 * machine's read bandwidth (TLB misses); the same file held in 2 MiB page-cache
 * folios and mapped with PMDs streams at it (docs/performance.md, "Weight files
 * in 2 MiB pages").
 * Linux keeps file data in 2 MiB folios when it reads it in for a mapping
 * marked MADV_HUGEPAGE and the file system supports large folios (ext4 and xfs
 * on recent kernels); pages read or written some other way (a write(), cp, a
 * mapping without the advice) stay small until they leave the page cache.
 *
 * So g3n_file_map_streamed maps with MADV_HUGEPAGE at a 2 MiB-aligned address
 * and, once per file, moves small pages out of the way: it reads one 2 MiB
 * window of the file through a probe mapping; when that window is in small
 * pages but comes back in one 2 MiB page after being dropped from the page
 * cache, the kernel can, and the whole file is dropped so that it is read back
 * (from disk, once) in 2 MiB folios. Where the kernel cannot, nothing is
 * dropped (only the probe's 2 MiB is re-read). Pages that another process has
 * mapped, or that are dirty, are never dropped: those stay as they are.
 * Linux only; elsewhere (or for files under 4 MiB) a plain read-only mapping. */
#ifndef G3N_FILE_MAP_H
#define G3N_FILE_MAP_H

#include <stddef.h>

/* What g3n_file_map_streamed found and did. */
typedef enum g3n_file_pages {
    G3N_FILE_PAGES_SMALL = 0, /* 4 KiB pages: the kernel or file system keeps this file in small folios
                                 (or it could not be told: no /proc, a small file) */
    G3N_FILE_PAGES_HUGE,      /* the page cache already held the file in 2 MiB folios */
    G3N_FILE_PAGES_RELOADED   /* small pages were dropped: the file reads back in 2 MiB folios */
} g3n_file_pages;

/* Maps bytes of fd read-only and shared at a 2 MiB-aligned address, with no
 * advice: where parts are then marked with g3n_file_advise_huge, those can be
 * mapped in 2 MiB pages (a checkpoint shard: its streamed matrices, not the
 * per-layer table that is read a row at a time). NULL with errno on failure;
 * release with munmap(map, bytes). */
void *g3n_file_map_aligned(int fd, size_t bytes);

/* MADV_HUGEPAGE on the whole 2 MiB pages inside [start, start + bytes) of a
 * file mapping: what is read in there from now on comes in 2 MiB folios (pages
 * the page cache already holds stay as they are). For ranges that are read
 * whole every step; a range read sparsely would grow 2 MiB per read. */
void g3n_file_advise_huge(const void *start, size_t bytes);

/* "small pages", "2 MiB pages", "2 MiB pages, read back" (for reports). */
const char *g3n_file_pages_name(g3n_file_pages pages);

/* Maps bytes (the file's size or less) of fd read-only and shared. Returns the
 * mapping (release with munmap(map, bytes)), or NULL with errno set. The fd may
 * be closed afterwards. pages (may be NULL) gets what was found. */
void *g3n_file_map_streamed(int fd, size_t bytes, g3n_file_pages *pages);

#endif
