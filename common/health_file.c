/* health_file.c - a daemon's health as a small file (health_file.h). */
#include "health_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int g3n_health_file_write(const char *path, const char *state, const char *detail, g3n_error *err)
{
    char temporary[4096];
    if (snprintf(temporary, sizeof(temporary), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(temporary))
        return g3n_error_set(err, "health file path is too long: %s", path);
    FILE *f = fopen(temporary, "w");
    if (!f)
        return g3n_error_set(err, "cannot write the health file %s: %s", temporary, strerror(errno));
    int bad = fprintf(f, "%s\n%s\n", state, detail ? detail : "") < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(temporary, path) != 0) {
        int e = errno;
        unlink(temporary);
        return g3n_error_set(err, "cannot write the health file %s: %s", path, strerror(e));
    }
    return G3N_OK;
}

int g3n_health_probe(const char *path, const char *what, int max_age_seconds, char *message, size_t size)
{
    int want_ready;
    if (strcmp(what, "live") == 0)
        want_ready = 0;
    else if (strcmp(what, "ready") == 0)
        want_ready = 1;
    else {
        snprintf(message, size, "unknown probe '%s' (live or ready)", what);
        return 2;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(message, size, "not %s: no health file %s (%s)", what, path, strerror(errno));
        return 1;
    }
    double age = difftime(time(NULL), st.st_mtime);
    char state[64] = "", detail[512] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(state, sizeof(state), f))
            state[0] = '\0';
        if (!fgets(detail, sizeof(detail), f))
            detail[0] = '\0';
        fclose(f);
    }
    state[strcspn(state, "\n")] = '\0';
    detail[strcspn(detail, "\n")] = '\0';
    if (age > max_age_seconds) {
        snprintf(message, size, "not %s: %s last written %.0f s ago (limit %d s; state was '%s')", what, path, age,
                 max_age_seconds, state);
        return 1;
    }
    if (want_ready && strcmp(state, "ready") != 0) {
        snprintf(message, size, "not ready: %s%s%s", state[0] ? state : "(empty)", detail[0] ? ": " : "", detail);
        return 1;
    }
    snprintf(message, size, "%s (%s)%s%s", what, state, detail[0] ? ": " : "", detail);
    return 0;
}
