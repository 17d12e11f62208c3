/* memory_report.h - what the process's resident memory is made of, from
 * /proc/self/smaps: resident and mapped bytes per mapped file (weights mmapped
 * from a checkpoint or a weight cache show up under their path) and for
 * anonymous memory (heap, thread stacks, malloc'd buffers) as one entry.
 * For benchmarks and reports (`g3n bench text`), Linux only: elsewhere the
 * summary is empty. */
#ifndef G3N_MEMORY_REPORT_H
#define G3N_MEMORY_REPORT_H

#include <stddef.h>
#include <stdint.h>

#define G3N_MEMORY_PATH_MAX 512

typedef struct g3n_memory_mapping {
    char path[G3N_MEMORY_PATH_MAX]; /* the file, or "[anonymous]" (heap, stacks, anonymous maps) */
    uint64_t resident_bytes;        /* Rss summed over the file's mappings */
    uint64_t mapped_bytes;          /* Size (virtual) summed over them */
    uint64_t huge_bytes;            /* of resident_bytes, mapped in 2 MiB pages (AnonHugePages,
                                       FilePmdMapped, ShmemPmdMapped) */
} g3n_memory_mapping;

/* Fills up to max entries, largest resident first; returns how many were
 * filled (0 when /proc/self/smaps cannot be read). Files whose mappings are
 * not resident at all are left out; *total_resident (may be NULL) gets the sum
 * over everything, listed or not. */
int g3n_memory_mappings(g3n_memory_mapping *entries, int max, uint64_t *total_resident);

/* The one mapping (VMA) that contains address: its resident bytes and how many
 * of them are mapped in 2 MiB pages. Returns 1, or 0 when no mapping contains
 * it or /proc/self/smaps cannot be read (then both are 0). */
int g3n_memory_at(const void *address, uint64_t *resident_bytes, uint64_t *huge_bytes);

#endif
