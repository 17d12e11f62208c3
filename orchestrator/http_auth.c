/* http_auth.c - API keys and per-key limits (http_auth.h). */
#include "http_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_BYTES 256 /* keys are compared as zero-padded blocks of this size */

typedef struct api_key {
    char name[64];
    unsigned char key[KEY_BYTES];
    size_t length;
    /* limits and counters, guarded by auth->lock */
    double tokens;
    double refilled; /* monotonic seconds */
    int generations;
    unsigned long long requests, rate_limited, generations_limited;
} api_key;

struct g3n_http_auth {
    api_key *keys;
    int count;
    int requests_per_minute, max_generations, metrics_open;
    pthread_mutex_t lock;
    unsigned long long unauthorised;
};

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int valid_key_text(const char *key, size_t length)
{
    if (length < 16 || length >= KEY_BYTES)
        return 0;
    for (size_t i = 0; i < length; i++)
        if (key[i] <= ' ' || key[i] > '~' || key[i] == ':')
            return 0;
    return 1;
}

static int add_key(g3n_http_auth *a, const char *name, const char *key, size_t length, const char *where,
                   g3n_error *err)
{
    if (!valid_key_text(key, length))
        return g3n_error_set(err,
                             "%s: an API key must be 16 to 255 printable characters without spaces or ':' (this "
                             "one has %zu)",
                             where, length);
    for (int i = 0; i < a->count; i++)
        if (strcmp(a->keys[i].name, name) == 0)
            return g3n_error_set(err, "%s: the key name '%s' is used twice", where, name);
    api_key *grown = realloc(a->keys, (size_t)(a->count + 1) * sizeof(*grown));
    if (!grown)
        return g3n_error_set(err, "out of memory");
    a->keys = grown;
    api_key *k = &a->keys[a->count++];
    memset(k, 0, sizeof(*k));
    snprintf(k->name, sizeof(k->name), "%s", name);
    memcpy(k->key, key, length);
    k->length = length;
    k->tokens = a->requests_per_minute;
    k->refilled = monotonic_seconds();
    return G3N_OK;
}

int g3n_http_read_pem(const char *path, int secret, char **out, g3n_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return g3n_error_set(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
        close(fd);
        return g3n_error_set(err, "%s is not a regular file under 16 MiB", path);
    }
    if (secret && (st.st_mode & 077) != 0) {
        close(fd);
        return g3n_error_set(err, "%s is readable by group or others (mode %04o): refused; run chmod 600 %s", path,
                             (unsigned)(st.st_mode & 07777), path);
    }
    char *text = malloc((size_t)st.st_size + 1);
    if (!text) {
        close(fd);
        return g3n_error_set(err, "out of memory");
    }
    size_t have = 0;
    while (have < (size_t)st.st_size) {
        ssize_t n = read(fd, text + have, (size_t)st.st_size - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    text[have] = '\0';
    *out = text;
    return G3N_OK;
}

static int load_file(g3n_http_auth *a, const char *path, g3n_error *err)
{
    char *text;
    if (g3n_http_read_pem(path, 1, &text, err) != G3N_OK)
        return g3n_error_prefix(err, "--api-keys");
    int rc = G3N_OK, line_number = 0, unnamed = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == G3N_OK; line = strtok_r(NULL, "\n", &save)) {
        line_number++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '#')
            continue;
        char where[1100], name[64];
        snprintf(where, sizeof(where), "%s line %d", path, line_number);
        const char *colon = strchr(line, ':');
        if (colon) {
            size_t name_length = (size_t)(colon - line);
            if (name_length == 0 || name_length >= sizeof(name)) {
                rc = g3n_error_set(err, "%s: a key name is 1 to 63 characters", where);
                break;
            }
            memcpy(name, line, name_length);
            name[name_length] = '\0';
            for (size_t i = 0; i < name_length; i++)
                if (name[i] <= ' ' || name[i] > '~' || name[i] == '"' || name[i] == '\\' || name[i] == '{' ||
                    name[i] == '}')
                    rc = g3n_error_set(err, "%s: the key name may hold no spaces, quotes, braces or backslashes",
                                       where);
            if (rc == G3N_OK)
                rc = add_key(a, name, colon + 1, strlen(colon + 1), where, err);
        } else {
            snprintf(name, sizeof(name), "key-%d", ++unnamed);
            rc = add_key(a, name, line, strlen(line), where, err);
        }
    }
    memset(text, 0, strlen(text));
    free(text);
    if (rc == G3N_OK && a->count == 0)
        rc = g3n_error_set(err, "--api-keys %s holds no key", path);
    return rc;
}

int g3n_http_auth_create(g3n_http_auth **out, const g3n_http_auth_options *o, g3n_error *err)
{
    *out = NULL;
    if (!o->key && !o->keys_file)
        return G3N_OK;
    if (o->requests_per_minute < 0 || o->max_generations < 0)
        return g3n_error_set(err, "the per-key limits are >= 0");
    g3n_http_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return g3n_error_set(err, "out of memory");
    pthread_mutex_init(&a->lock, NULL);
    a->requests_per_minute = o->requests_per_minute;
    a->max_generations = o->max_generations;
    a->metrics_open = o->metrics_open;
    if ((o->key && add_key(a, "default", o->key, strlen(o->key), "--api-key", err) != G3N_OK) ||
        (o->keys_file && load_file(a, o->keys_file, err) != G3N_OK)) {
        g3n_http_auth_free(a);
        return G3N_ERR;
    }
    for (int i = 0; i < a->count; i++)
        for (int j = i + 1; j < a->count; j++)
            if (a->keys[i].length == a->keys[j].length && memcmp(a->keys[i].key, a->keys[j].key, KEY_BYTES) == 0) {
                g3n_error_set(err, "API keys '%s' and '%s' are the same key", a->keys[i].name, a->keys[j].name);
                g3n_http_auth_free(a);
                return G3N_ERR;
            }
    *out = a;
    return G3N_OK;
}

void g3n_http_auth_free(g3n_http_auth *a)
{
    if (!a)
        return;
    if (a->keys)
        memset(a->keys, 0, (size_t)a->count * sizeof(*a->keys));
    free(a->keys);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

int g3n_http_auth_key_count(const g3n_http_auth *a)
{
    return a ? a->count : 0;
}

int g3n_http_auth_metrics_open(const g3n_http_auth *a)
{
    return !a || a->metrics_open;
}

int g3n_http_auth_identify(g3n_http_auth *a, const char *authorization)
{
    unsigned char presented[KEY_BYTES];
    memset(presented, 0, sizeof(presented));
    size_t length = 0;
    int well_formed = 0;
    if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0) {
        const char *token = authorization + 7;
        while (*token == ' ')
            token++;
        length = strlen(token);
        while (length && token[length - 1] == ' ')
            length--;
        if (length > 0 && length < KEY_BYTES) {
            memcpy(presented, token, length);
            well_formed = 1;
        }
    }
    /* every key, every byte: the time does not depend on where a guess differs */
    int found = -1;
    for (int i = 0; i < a->count; i++) {
        volatile unsigned char difference = (unsigned char)(a->keys[i].length != length);
        for (int b = 0; b < KEY_BYTES; b++)
            difference |= (unsigned char)(a->keys[i].key[b] ^ presented[b]);
        int match = difference == 0;
        found = match && well_formed ? i : found;
    }
    memset(presented, 0, sizeof(presented));
    if (found < 0) {
        pthread_mutex_lock(&a->lock);
        a->unauthorised++;
        pthread_mutex_unlock(&a->lock);
    }
    return found;
}

const char *g3n_http_auth_key_name(const g3n_http_auth *a, int index)
{
    return a && index >= 0 && index < a->count ? a->keys[index].name : "";
}

int g3n_http_auth_admit_request(g3n_http_auth *a, int index)
{
    if (!a || index < 0 || index >= a->count)
        return 0;
    int wait = 0;
    pthread_mutex_lock(&a->lock);
    api_key *k = &a->keys[index];
    if (a->requests_per_minute > 0) {
        double now = monotonic_seconds(), rate = a->requests_per_minute / 60.0;
        k->tokens += (now - k->refilled) * rate;
        if (k->tokens > a->requests_per_minute)
            k->tokens = a->requests_per_minute;
        k->refilled = now;
        if (k->tokens >= 1.0) {
            k->tokens -= 1.0;
        } else {
            wait = (int)ceil((1.0 - k->tokens) / rate);
            if (wait < 1)
                wait = 1;
            k->rate_limited++;
        }
    }
    if (!wait)
        k->requests++;
    pthread_mutex_unlock(&a->lock);
    return wait;
}

int g3n_http_auth_begin_generation(g3n_http_auth *a, int index)
{
    if (!a || index < 0 || index >= a->count)
        return 0;
    int wait = 0;
    pthread_mutex_lock(&a->lock);
    api_key *k = &a->keys[index];
    if (a->max_generations > 0 && k->generations >= a->max_generations) {
        wait = 1;
        k->generations_limited++;
    } else {
        k->generations++;
    }
    pthread_mutex_unlock(&a->lock);
    return wait;
}

void g3n_http_auth_end_generation(g3n_http_auth *a, int index)
{
    if (!a || index < 0 || index >= a->count)
        return;
    pthread_mutex_lock(&a->lock);
    if (a->keys[index].generations > 0)
        a->keys[index].generations--;
    pthread_mutex_unlock(&a->lock);
}

char *g3n_http_auth_metrics(g3n_http_auth *a)
{
    size_t capacity = 2048 + (size_t)(a ? a->count : 0) * 1024, length = 0;
    char *text = malloc(capacity);
    if (!text)
        return NULL;
    text[0] = '\0';
    if (!a)
        return text;
#define EMIT(...) length += (size_t)snprintf(text + length, capacity - length, __VA_ARGS__)
    pthread_mutex_lock(&a->lock);
    EMIT("# HELP g3n_http_unauthorized_total Requests refused for a missing or unknown API key.\n"
         "# TYPE g3n_http_unauthorized_total counter\ng3n_http_unauthorized_total %llu\n",
         a->unauthorised);
    EMIT("# HELP g3n_http_key_requests_total Requests admitted, by API key name.\n"
         "# TYPE g3n_http_key_requests_total counter\n");
    for (int i = 0; i < a->count; i++)
        EMIT("g3n_http_key_requests_total{key=\"%s\"} %llu\n", a->keys[i].name, a->keys[i].requests);
    EMIT("# HELP g3n_http_key_limited_total Requests refused with 429 by a per-key limit.\n"
         "# TYPE g3n_http_key_limited_total counter\n");
    for (int i = 0; i < a->count; i++)
        EMIT("g3n_http_key_limited_total{key=\"%s\",limit=\"requests_per_minute\"} %llu\n"
             "g3n_http_key_limited_total{key=\"%s\",limit=\"generations\"} %llu\n",
             a->keys[i].name, a->keys[i].rate_limited, a->keys[i].name, a->keys[i].generations_limited);
    EMIT("# HELP g3n_http_key_generations Generations running, by API key name.\n"
         "# TYPE g3n_http_key_generations gauge\n");
    for (int i = 0; i < a->count; i++)
        EMIT("g3n_http_key_generations{key=\"%s\"} %d\n", a->keys[i].name, a->keys[i].generations);
    pthread_mutex_unlock(&a->lock);
#undef EMIT
    return text;
}

int g3n_http_security_load(const g3n_http_security_flags *flags, g3n_http_auth **auth, char **tls_cert_pem,
                           char **tls_key_pem, g3n_error *err)
{
    *auth = NULL;
    *tls_cert_pem = *tls_key_pem = NULL;
    g3n_http_auth_options o = flags->auth;
    const char *env = getenv("G3N_API_KEY");
    if (!o.key && !o.keys_file && env && env[0])
        o.key = env;
    if (!o.key && !o.keys_file && (o.requests_per_minute || o.max_generations))
        return g3n_error_set(err, "--rate-limit and --max-generations-per-key are per API key: give keys too");
    if ((flags->tls_cert != NULL) != (flags->tls_key != NULL))
        return g3n_error_set(err, "HTTPS needs both --tls-cert FILE and --tls-key FILE");
    if (g3n_http_auth_create(auth, &o, err) != G3N_OK)
        return G3N_ERR;
    if (flags->tls_cert && (g3n_http_read_pem(flags->tls_cert, 0, tls_cert_pem, err) != G3N_OK ||
                            g3n_http_read_pem(flags->tls_key, 1, tls_key_pem, err) != G3N_OK)) {
        g3n_http_auth_free(*auth);
        free(*tls_cert_pem);
        *auth = NULL;
        *tls_cert_pem = NULL;
        return g3n_error_prefix(err, "--tls-cert/--tls-key");
    }
    return G3N_OK;
}

int g3n_http_random_id(char *out, size_t size, const char *prefix)
{
    unsigned char bytes[16];
    size_t have = 0;
    while (have < sizeof(bytes)) {
        ssize_t n = getrandom(bytes + have, sizeof(bytes) - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return G3N_ERR;
        have += (size_t)n;
    }
    size_t prefix_length = strlen(prefix);
    if (size < prefix_length + 2 * sizeof(bytes) + 1)
        return G3N_ERR;
    memcpy(out, prefix, prefix_length);
    for (size_t i = 0; i < sizeof(bytes); i++)
        snprintf(out + prefix_length + 2 * i, 3, "%02x", bytes[i]);
    return G3N_OK;
}
