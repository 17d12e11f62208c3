/* health_file.c - a daemon's health as a small file (health_file.h). */
#include "health_file.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
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

struct g3n_health_keeper {
    char path[4096], state[64], detail[512];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
};

static void *keeper_main(void *arg)
{
    g3n_health_keeper *k = arg;
    pthread_mutex_lock(&k->lock);
    while (!k->stop) {
        g3n_health_file_write(k->path, k->state, k->detail, NULL);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&k->wake, &k->lock, &until);
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

int g3n_health_keeper_start(g3n_health_keeper **out, const char *path, const char *state, const char *detail,
                            g3n_error *err)
{
    *out = NULL;
    g3n_health_keeper *k = calloc(1, sizeof(*k));
    if (!k)
        return g3n_error_set(err, "health file: out of memory");
    snprintf(k->path, sizeof(k->path), "%s", path);
    snprintf(k->state, sizeof(k->state), "%s", state);
    snprintf(k->detail, sizeof(k->detail), "%s", detail ? detail : "");
    if (g3n_health_file_write(path, state, detail, err) != G3N_OK) {
        free(k);
        return G3N_ERR;
    }
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->wake, NULL);
    if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
        pthread_mutex_destroy(&k->lock);
        pthread_cond_destroy(&k->wake);
        free(k);
        return g3n_error_set(err, "health file: cannot start its thread");
    }
    *out = k;
    return G3N_OK;
}

void g3n_health_keeper_stop(g3n_health_keeper *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->lock);
    k->stop = 1;
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->wake);
    free(k);
}
