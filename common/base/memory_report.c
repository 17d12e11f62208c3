/* memory_report.c - /proc/self/smaps grouped by mapped file; see memory_report.h. */
#include "memory_report.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 256

static int find_or_add(g3n_memory_mapping *groups, int *count, const char *path)
{
    for (int i = 0; i < *count; i++)
        if (strcmp(groups[i].path, path) == 0)
            return i;
    if (*count >= MAX_GROUPS)
        return -1;
    g3n_memory_mapping *g = &groups[(*count)++];
    memset(g, 0, sizeof(*g));
    snprintf(g->path, sizeof(g->path), "%s", path);
    return *count - 1;
}

static int by_resident(const void *a, const void *b)
{
    const g3n_memory_mapping *x = a, *y = b;
    return x->resident_bytes < y->resident_bytes ? 1 : x->resident_bytes > y->resident_bytes ? -1 : 0;
}

/* A mapping's header line "start-end perms offset dev inode [path]": 1 with
 * its range and where the path starts. */
static int parse_header(const char *line, unsigned long long *start, unsigned long long *end, const char **path)
{
    int consumed = 0;
    if (sscanf(line, "%llx-%llx %*s %*s %*s %*s%n", start, end, &consumed) != 2 || consumed <= 0)
        return 0;
    *path = line + consumed;
    while (**path == ' ' || **path == '\t')
        (*path)++;
    return 1;
}

/* The kB of a 2 MiB-page field (AnonHugePages, FilePmdMapped, ShmemPmdMapped). */
static int parse_huge(const char *line, unsigned long long *kb)
{
    return sscanf(line, "AnonHugePages: %llu kB", kb) == 1 || sscanf(line, "FilePmdMapped: %llu kB", kb) == 1 ||
           sscanf(line, "ShmemPmdMapped: %llu kB", kb) == 1;
}

int g3n_memory_at(const void *address, uint64_t *resident_bytes, uint64_t *huge_bytes)
{
    *resident_bytes = 0;
    *huge_bytes = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return 0;
    const unsigned long long at = (unsigned long long)(uintptr_t)address;
    int found = 0, inside = 0;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long start, end, kb;
        const char *path;
        if (parse_header(line, &start, &end, &path)) {
            if (inside)
                break; /* the next mapping: done */
            inside = found = at >= start && at < end;
        } else if (inside && sscanf(line, "Rss: %llu kB", &kb) == 1) {
            *resident_bytes = (uint64_t)kb * 1024u;
        } else if (inside && parse_huge(line, &kb)) {
            *huge_bytes += (uint64_t)kb * 1024u;
        }
    }
    fclose(f);
    return found;
}

int g3n_memory_mappings(g3n_memory_mapping *entries, int max, uint64_t *total_resident)
{
    if (total_resident)
        *total_resident = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return 0;
    g3n_memory_mapping *groups = calloc(MAX_GROUPS, sizeof(*groups));
    if (!groups) {
        fclose(f);
        return 0;
    }
    int count = 0, current = -1;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long start, end, kb;
        const char *path;
        if (parse_header(line, &start, &end, &path)) {
            char name[G3N_MEMORY_PATH_MAX];
            snprintf(name, sizeof(name), "%s", path);
            name[strcspn(name, "\n")] = '\0';
            if (name[0] == '\0' || strcmp(name, "[heap]") == 0 || strncmp(name, "[stack", 6) == 0 ||
                strncmp(name, "[anon", 5) == 0)
                snprintf(name, sizeof(name), "[anonymous]");
            current = find_or_add(groups, &count, name);
            if (current >= 0)
                groups[current].mapped_bytes += (uint64_t)(end - start);
        } else if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
            if (current >= 0)
                groups[current].resident_bytes += (uint64_t)kb * 1024u;
            if (total_resident)
                *total_resident += (uint64_t)kb * 1024u;
        } else if (parse_huge(line, &kb)) {
            if (current >= 0)
                groups[current].huge_bytes += (uint64_t)kb * 1024u;
        }
    }
    fclose(f);
    qsort(groups, (size_t)count, sizeof(*groups), by_resident);
    int filled = 0;
    for (int i = 0; i < count && filled < max; i++)
        if (groups[i].resident_bytes > 0)
            entries[filled++] = groups[i];
    free(groups);
    return filled;
}
