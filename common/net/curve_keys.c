/* curve_keys.c - CurveZMQ key files, the keys folder and the ZAP handler (curve_keys.h). */
#define _GNU_SOURCE
#include "curve_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define KEY_CHARS 40
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define KEY_PROPERTY "X-G3n-Key"

static const char *const worker_roles[] = {"vision-encoder", "audio-encoder", "embedder", "decoder"};
enum { WORKER_ROLE_COUNT = 4, FOLDER_COUNT = 5 };

static const char *folder_name(int i)
{
    return i < WORKER_ROLE_COUNT ? worker_roles[i] : "clients";
}

static const char *folder_role(int i)
{
    return i < WORKER_ROLE_COUNT ? worker_roles[i] : G3N_CURVE_CLIENT_ROLE;
}

int g3n_curve_available(void)
{
    return zmq_has("curve") ? 1 : 0;
}

/* ---------------------------------------------------------------- key files */

static int valid_z85_key(const char *text)
{
    if (strlen(text) != KEY_CHARS)
        return 0;
    uint8_t bytes[32];
    return zmq_z85_decode(bytes, text) != NULL;
}

/* Finds `name = "KEY"` in zcert text; 1 found (valid), 0 absent, -1 malformed. */
static int find_key(const char *text, const char *name, char out[G3N_CURVE_KEY_TEXT])
{
    const char *p = strstr(text, name);
    if (!p)
        return 0;
    p += strlen(name);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != '=')
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != '"')
        return -1;
    const char *end = strchr(p, '"');
    if (!end || end - p != KEY_CHARS)
        return -1;
    memcpy(out, p, KEY_CHARS);
    out[KEY_CHARS] = '\0';
    return valid_z85_key(out) ? 1 : -1;
}

static int read_small_file(const char *path, int secret, char *text, size_t size, g3n_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC); /* a symlink is fine (mounted secrets): its target is checked */
    if (fd < 0)
        return g3n_error_set(err, "cannot open key file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return g3n_error_set(err, "key file %s is not a regular file", path);
    }
    if (secret && (st.st_mode & 077) != 0) {
        close(fd);
        return g3n_error_set(err,
                             "secret key file %s is readable by group or others (mode %04o): refused; "
                             "run chmod 600 %s",
                             path, (unsigned)(st.st_mode & 07777), path);
    }
    ssize_t n = read(fd, text, size - 1);
    close(fd);
    if (n < 0)
        return g3n_error_set(err, "cannot read key file %s: %s", path, strerror(errno));
    text[n] = '\0';
    return G3N_OK;
}

int g3n_curve_read_public(const char *path, char public_key[G3N_CURVE_KEY_TEXT], g3n_error *err)
{
    char text[4096];
    if (read_small_file(path, 0, text, sizeof(text), err) != G3N_OK)
        return G3N_ERR;
    int found = find_key(text, "public-key", public_key);
    if (found == 1)
        return G3N_OK;
    if (found == 0) { /* a bare Z85 key on its own line */
        char *p = text;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        size_t n = strcspn(p, " \t\r\n");
        if (n == KEY_CHARS) {
            memcpy(public_key, p, KEY_CHARS);
            public_key[KEY_CHARS] = '\0';
            if (valid_z85_key(public_key))
                return G3N_OK;
        }
    }
    return g3n_error_set(err, "%s holds no valid CurveZMQ public key (40 Z85 characters, as g3n keygen writes)", path);
}

int g3n_curve_read_secret(const char *path, char public_key[G3N_CURVE_KEY_TEXT],
                          char secret_key[G3N_CURVE_KEY_TEXT], g3n_error *err)
{
    char text[4096];
    if (read_small_file(path, 1, text, sizeof(text), err) != G3N_OK)
        return G3N_ERR;
    if (find_key(text, "secret-key", secret_key) != 1) {
        memset(text, 0, sizeof(text));
        return g3n_error_set(err, "%s holds no valid CurveZMQ secret key (a .key_secret file from g3n keygen)", path);
    }
    memset(text, 0, sizeof(text));
    if (zmq_curve_public(public_key, secret_key) != 0)
        return g3n_error_set(err, "%s: cannot derive the public key: %s", path, zmq_strerror(zmq_errno()));
    return G3N_OK;
}

static int write_new_file(const char *path, int mode, const char *text, g3n_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return g3n_error_set(err, "cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fchmod(fd, (mode_t)mode) == 0;
    ok = (close(fd) == 0) && ok;
    if (!ok) {
        unlink(path);
        return g3n_error_set(err, "cannot write %s", path);
    }
    return G3N_OK;
}

int g3n_curve_keygen(const char *prefix, g3n_error *err)
{
    if (!g3n_curve_available())
        return g3n_error_set(err, "this libzmq was built without CURVE (libsodium)");
    char public_key[G3N_CURVE_KEY_TEXT], secret_key[G3N_CURVE_KEY_TEXT];
    if (zmq_curve_keypair(public_key, secret_key) != 0)
        return g3n_error_set(err, "zmq_curve_keypair failed: %s", zmq_strerror(zmq_errno()));
    char public_path[1100], secret_path[1100], text[1024];
    if (snprintf(public_path, sizeof(public_path), "%s.key", prefix) >= (int)sizeof(public_path) ||
        snprintf(secret_path, sizeof(secret_path), "%s.key_secret", prefix) >= (int)sizeof(secret_path))
        return g3n_error_set(err, "key path prefix too long");
    snprintf(text, sizeof(text),
             "#   ****  Generated by g3n keygen  ****\n"
             "#   ZeroMQ CURVE **Secret** Certificate\n"
             "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
             "metadata\ncurve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             public_key, secret_key);
    int rc = write_new_file(secret_path, 0600, text, err);
    memset(text, 0, sizeof(text));
    memset(secret_key, 0, sizeof(secret_key));
    if (rc != G3N_OK)
        return G3N_ERR;
    snprintf(text, sizeof(text),
             "#   ****  Generated by g3n keygen  ****\n"
             "#   ZeroMQ CURVE Public Certificate\n"
             "#   Give it to the orchestrator (its keys folder) or to the peers that connect to you.\n\n"
             "metadata\ncurve\n    public-key = \"%s\"\n",
             public_key);
    if (write_new_file(public_path, 0644, text, err) != G3N_OK) {
        unlink(secret_path);
        return G3N_ERR;
    }
    return G3N_OK;
}

int g3n_curve_load_server(g3n_curve_options *options, const char *keys_dir, g3n_error *err)
{
    memset(options, 0, sizeof(*options));
    if (!g3n_curve_available())
        return g3n_error_set(err, "this libzmq was built without CURVE (libsodium)");
    char path[1100];
    snprintf(path, sizeof(path), "%s/server.key_secret", keys_dir);
    if (snprintf(options->keys_dir, sizeof(options->keys_dir), "%s", keys_dir) >= (int)sizeof(options->keys_dir))
        return g3n_error_set(err, "keys folder path too long");
    if (g3n_curve_read_secret(path, options->public_key, options->secret_key, err) != G3N_OK)
        return g3n_error_prefix(err, "keys folder %s (create it with g3n keygen --init %s)", keys_dir, keys_dir);
    options->enabled = 1;
    return G3N_OK;
}

int g3n_curve_load_client(g3n_curve_options *options, const char *secret_file, const char *server_public_file,
                          g3n_error *err)
{
    memset(options, 0, sizeof(*options));
    if (!g3n_curve_available())
        return g3n_error_set(err, "this libzmq was built without CURVE (libsodium)");
    if (!secret_file || !server_public_file)
        return g3n_error_set(err, "CURVE needs both --key (own .key_secret) and --server-key (the orchestrator's .key)");
    if (g3n_curve_read_secret(secret_file, options->public_key, options->secret_key, err) != G3N_OK ||
        g3n_curve_read_public(server_public_file, options->server_key, err) != G3N_OK)
        return G3N_ERR;
    options->enabled = 1;
    return G3N_OK;
}

int g3n_curve_check_endpoint(const char *endpoint, const g3n_curve_options *options, int insecure, g3n_error *err)
{
    /* inproc:// is this process; ipc:// a local socket file guarded by its folder's permissions */
    if (strncmp(endpoint, "inproc://", 9) == 0 || strncmp(endpoint, "ipc://", 6) == 0 || (options && options->enabled) ||
        insecure)
        return G3N_OK;
    return g3n_error_set(err,
                         "%s is a network endpoint and no CurveZMQ keys were given: give keys (--keys DIR on the "
                         "orchestrator, --key FILE --server-key FILE on workers and clients) or, on a trusted "
                         "network only, --insecure",
                         endpoint);
}

int g3n_curve_prepare_socket(void *socket, const char *endpoint, const g3n_curve_options *options, int insecure,
                             int server, const char *domain, g3n_error *err)
{
    if (strncmp(endpoint, "inproc://", 9) == 0)
        return G3N_OK;
    if (!options || !options->enabled)
        return g3n_curve_check_endpoint(endpoint, options, insecure, err);
    int rc = 0;
    if (server) {
        int one = 1;
        if (!domain || !options->keys_dir[0])
            return g3n_error_set(err, "%s: a CURVE server needs a keys folder (ZAP)", endpoint);
        rc |= zmq_setsockopt(socket, ZMQ_CURVE_SERVER, &one, sizeof(one));
        rc |= zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, options->secret_key, KEY_CHARS);
        rc |= zmq_setsockopt(socket, ZMQ_ZAP_DOMAIN, domain, strlen(domain));
    } else {
        rc |= zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, options->server_key, KEY_CHARS);
        rc |= zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, options->public_key, KEY_CHARS);
        rc |= zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, options->secret_key, KEY_CHARS);
        /* a refused key retries with backoff rather than ten times a second */
        int max_ivl = 5000;
        zmq_setsockopt(socket, ZMQ_RECONNECT_IVL_MAX, &max_ivl, sizeof(max_ivl));
    }
    if (rc != 0)
        return g3n_error_set(err, "%s: cannot set the CURVE options: %s", endpoint, zmq_strerror(zmq_errno()));
    return G3N_OK;
}

static int flags_consistent(const g3n_security_flags *flags, g3n_error *err)
{
    if (flags->insecure && (flags->keys_dir || flags->key_file || flags->server_key_file))
        return g3n_error_set(err, "--insecure goes without --keys, --key and --server-key");
    if (flags->keys_dir && (flags->key_file || flags->server_key_file))
        return g3n_error_set(err, "give --keys DIR (this side binds) or --key + --server-key (this side connects)");
    if ((flags->key_file != NULL) != (flags->server_key_file != NULL))
        return g3n_error_set(err, "CURVE needs both --key (own .key_secret) and --server-key (the orchestrator's .key)");
    return G3N_OK;
}

int g3n_security_check_flags(const g3n_security_flags *flags, const char *endpoint, g3n_error *err)
{
    if (flags_consistent(flags, err) != G3N_OK)
        return G3N_ERR;
    g3n_curve_options promised;
    memset(&promised, 0, sizeof(promised));
    promised.enabled = flags->keys_dir || flags->key_file;
    return g3n_curve_check_endpoint(endpoint, &promised, flags->insecure, err);
}

int g3n_security_apply(const g3n_security_flags *flags, const char *program, g3n_curve_options *curve, int *insecure,
                       g3n_error *err)
{
    memset(curve, 0, sizeof(*curve));
    *insecure = flags->insecure;
    if (flags_consistent(flags, err) != G3N_OK)
        return G3N_ERR;
    if (flags->insecure)
        fprintf(stderr,
                "%s: WARNING: --insecure: tcp:// links run without CurveZMQ: anyone who can reach them can join as "
                "a worker or client and read the prompts, images and audio in plain text\n",
                program);
    if (flags->keys_dir)
        return g3n_curve_load_server(curve, flags->keys_dir, err);
    if (flags->key_file || flags->server_key_file)
        return g3n_curve_load_client(curve, flags->key_file, flags->server_key_file, err);
    return G3N_OK;
}

/* ---------------------------------------------------------------- the keys folder */

typedef struct allowed_key {
    char role[32];
    char name[128];
    char key[G3N_CURVE_KEY_TEXT];
} allowed_key;

typedef struct refused_note {
    char key[G3N_CURVE_KEY_TEXT];
    time_t logged;
} refused_note;

struct g3n_zap {
    void *context;
    char keys_dir[512];
    int verbose;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    atomic_uint generation;
    atomic_ullong refused;
    pthread_mutex_t lock; /* keys, key_count, folder_mtime */
    allowed_key *keys;
    int key_count;
    struct timespec folder_mtime[FOLDER_COUNT];
    refused_note notes[16]; /* handler thread only: refusals logged recently */
    unsigned reload_seen;
};

static volatile sig_atomic_t reload_requests = 0;

static void on_sighup(int sig)
{
    (void)sig;
    reload_requests = reload_requests + 1;
}

void g3n_curve_install_reload_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
}

static void folder_mtimes(const char *keys_dir, struct timespec out[FOLDER_COUNT])
{
    for (int i = 0; i < FOLDER_COUNT; i++) {
        char path[700];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", keys_dir, folder_name(i));
        if (stat(path, &st) == 0)
            out[i] = st.st_mtim;
        else
            memset(&out[i], 0, sizeof(out[i]));
    }
}

static int has_key_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".key") == 0 && name[0] != '.';
}

int g3n_zap_reload(g3n_zap *zap, g3n_error *err)
{
    allowed_key *keys = NULL;
    int count = 0, capacity = 0;
    struct timespec mtimes[FOLDER_COUNT];
    folder_mtimes(zap->keys_dir, mtimes);
    for (int f = 0; f < FOLDER_COUNT; f++) {
        char dir_path[700];
        snprintf(dir_path, sizeof(dir_path), "%s/%s", zap->keys_dir, folder_name(f));
        DIR *dir = opendir(dir_path);
        if (!dir)
            continue; /* a role with no folder has no keys */
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            if (!has_key_suffix(entry->d_name) || strlen(entry->d_name) - 4 >= sizeof(keys[0].name))
                continue;
            char path[1000];
            g3n_error key_err;
            allowed_key k;
            memset(&k, 0, sizeof(k));
            snprintf(path, sizeof(path), "%s/%s", dir_path, entry->d_name);
            if (g3n_curve_read_public(path, k.key, &key_err) != G3N_OK) {
                fprintf(stderr, "g3n keys: %s: skipped\n", key_err.message);
                continue;
            }
            snprintf(k.role, sizeof(k.role), "%s", folder_role(f));
            memcpy(k.name, entry->d_name, strlen(entry->d_name) - 4);
            if (count == capacity) {
                int grown_capacity = capacity ? 2 * capacity : 16;
                allowed_key *grown = realloc(keys, (size_t)grown_capacity * sizeof(*grown));
                if (!grown) {
                    closedir(dir);
                    free(keys);
                    return g3n_error_set(err, "keys folder %s: out of memory", zap->keys_dir);
                }
                keys = grown;
                capacity = grown_capacity;
            }
            keys[count++] = k;
        }
        closedir(dir);
    }
    /* one key, one role: a key listed under two roles is refused for both */
    int kept = 0;
    for (int i = 0; i < count; i++) {
        int clash = 0;
        for (int j = 0; j < count; j++)
            if (j != i && strcmp(keys[i].key, keys[j].key) == 0 && strcmp(keys[i].role, keys[j].role) != 0)
                clash = 1;
        if (clash)
            fprintf(stderr, "g3n keys: key %s/%s.key is also listed for another role: refused for both\n",
                    keys[i].role, keys[i].name);
        else
            keys[kept++] = keys[i];
    }
    pthread_mutex_lock(&zap->lock);
    free(zap->keys);
    zap->keys = keys;
    zap->key_count = kept;
    memcpy(zap->folder_mtime, mtimes, sizeof(mtimes));
    pthread_mutex_unlock(&zap->lock);
    atomic_fetch_add(&zap->generation, 1);
    if (zap->verbose)
        fprintf(stderr, "g3n keys: %d public keys allowed from %s\n", kept, zap->keys_dir);
    return G3N_OK;
}

/* The key's entry for a domain (workers: any worker role; clients: clients). Lock held. */
static const allowed_key *lookup_key(g3n_zap *zap, const char *key, int clients)
{
    for (int i = 0; i < zap->key_count; i++) {
        const allowed_key *k = &zap->keys[i];
        if (strcmp(k->key, key) != 0)
            continue;
        if ((strcmp(k->role, G3N_CURVE_CLIENT_ROLE) == 0) == (clients != 0))
            return k;
    }
    return NULL;
}

static int folders_changed(g3n_zap *zap)
{
    struct timespec now[FOLDER_COUNT];
    folder_mtimes(zap->keys_dir, now);
    pthread_mutex_lock(&zap->lock);
    int changed = memcmp(now, zap->folder_mtime, sizeof(now)) != 0;
    pthread_mutex_unlock(&zap->lock);
    return changed;
}

static void note_refusal(g3n_zap *zap, const char *key, const char *domain, const char *address, const char *why)
{
    atomic_fetch_add(&zap->refused, 1);
    time_t now = time(NULL);
    int oldest = 0;
    for (int i = 0; i < 16; i++) {
        if (strcmp(zap->notes[i].key, key) == 0) {
            if (now - zap->notes[i].logged < 60)
                return; /* logged within the minute: a refused peer retries */
            oldest = i;
            break;
        }
        if (zap->notes[i].logged < zap->notes[oldest].logged)
            oldest = i;
    }
    snprintf(zap->notes[oldest].key, sizeof(zap->notes[oldest].key), "%s", key);
    zap->notes[oldest].logged = now;
    fprintf(stderr, "g3n keys: refused a connection to %s from %s with key %s: %s\n", domain, address, key, why);
}

/* Receives one frame into buf (NUL-terminated, truncated); returns its size or -1. */
static int receive_frame(void *socket, char *buf, size_t size, int *more)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, socket, 0) < 0) {
        zmq_msg_close(&msg);
        return -1;
    }
    size_t n = zmq_msg_size(&msg);
    size_t copy = n < size - 1 ? n : size - 1;
    memcpy(buf, zmq_msg_data(&msg), copy);
    buf[copy] = '\0';
    *more = zmq_msg_more(&msg);
    zmq_msg_close(&msg);
    return (int)n;
}

static void zap_answer(g3n_zap *zap, void *socket)
{
    /* version, request id, domain, address, identity, mechanism, credentials... (RFC 27) */
    char frames[7][256];
    int sizes[7] = {0};
    int count = 0, more = 1;
    while (more) {
        char scratch[256];
        int n = receive_frame(socket, count < 7 ? frames[count] : scratch, 256, &more);
        if (n < 0)
            return;
        if (count < 7)
            sizes[count] = n;
        count++;
    }
    const char *status = "400", *text = "refused", *user_id = "";
    char user[200] = "", key[G3N_CURVE_KEY_TEXT] = "";
    if (count >= 7 && strcmp(frames[0], "1.0") == 0 && strcmp(frames[5], "CURVE") == 0 && sizes[6] == 32) {
        zmq_z85_encode(key, (const uint8_t *)frames[6], 32);
        int clients = strcmp(frames[2], G3N_CURVE_DOMAIN_CLIENTS) == 0;
        int known_domain = clients || strcmp(frames[2], G3N_CURVE_DOMAIN_WORKERS) == 0;
        pthread_mutex_lock(&zap->lock);
        const allowed_key *k = known_domain ? lookup_key(zap, key, clients) : NULL;
        pthread_mutex_unlock(&zap->lock);
        if (!k && known_domain && folders_changed(zap)) { /* a key just added: no SIGHUP needed */
            g3n_zap_reload(zap, NULL);
            pthread_mutex_lock(&zap->lock);
            k = lookup_key(zap, key, clients);
            pthread_mutex_unlock(&zap->lock);
        }
        if (k) {
            pthread_mutex_lock(&zap->lock);
            k = lookup_key(zap, key, clients);
            if (k) {
                snprintf(user, sizeof(user), "%s:%s", k->role, k->name);
                status = "200";
                text = "OK";
                user_id = user;
            }
            pthread_mutex_unlock(&zap->lock);
        } else {
            note_refusal(zap, key, frames[2], frames[3],
                         known_domain ? (clients ? "not in the clients' keys" : "not in any worker role's keys")
                                      : "unknown ZAP domain");
        }
    } else {
        note_refusal(zap, "(none)", count >= 3 ? frames[2] : "?", count >= 4 ? frames[3] : "?",
                     "not a CURVE handshake");
    }
    /* metadata: one property, the key (ZMTP: name-len, name, 4-byte value-len, value) */
    uint8_t metadata[1 + sizeof(KEY_PROPERTY) + 4 + KEY_CHARS];
    size_t metadata_size = 0;
    if (user_id[0]) {
        size_t name_len = strlen(KEY_PROPERTY);
        metadata[metadata_size++] = (uint8_t)name_len;
        memcpy(metadata + metadata_size, KEY_PROPERTY, name_len);
        metadata_size += name_len;
        metadata[metadata_size++] = 0;
        metadata[metadata_size++] = 0;
        metadata[metadata_size++] = 0;
        metadata[metadata_size++] = KEY_CHARS;
        memcpy(metadata + metadata_size, key, KEY_CHARS);
        metadata_size += KEY_CHARS;
    }
    zmq_send(socket, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(socket, frames[1], count >= 2 ? (size_t)(sizes[1] < 255 ? sizes[1] : 255) : 0, ZMQ_SNDMORE);
    zmq_send(socket, status, 3, ZMQ_SNDMORE);
    zmq_send(socket, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(socket, user_id, strlen(user_id), ZMQ_SNDMORE);
    zmq_send(socket, metadata, metadata_size, 0);
}

static void *zap_loop(void *arg)
{
    void **pair = arg;
    g3n_zap *zap = pair[0];
    void *socket = pair[1];
    free(pair);
    while (!atomic_load(&zap->stop)) {
        unsigned requested = (unsigned)reload_requests;
        if (requested != zap->reload_seen) {
            zap->reload_seen = requested;
            fprintf(stderr, "g3n keys: SIGHUP: reading %s again\n", zap->keys_dir);
            g3n_zap_reload(zap, NULL);
        }
        zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, 100);
        if (n < 0 && zmq_errno() == ETERM)
            break;
        if (n > 0)
            zap_answer(zap, socket);
    }
    zmq_close(socket);
    return NULL;
}

int g3n_zap_start(g3n_zap **out, void *zmq_context, const char *keys_dir, int verbose, g3n_error *err)
{
    *out = NULL;
    g3n_zap *zap = calloc(1, sizeof(*zap));
    if (!zap)
        return g3n_error_set(err, "ZAP: out of memory");
    zap->context = zmq_context;
    zap->verbose = verbose;
    zap->reload_seen = (unsigned)reload_requests;
    snprintf(zap->keys_dir, sizeof(zap->keys_dir), "%s", keys_dir);
    pthread_mutex_init(&zap->lock, NULL);
    struct stat st;
    if (stat(keys_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        g3n_zap_stop(zap);
        return g3n_error_set(err, "keys folder %s does not exist (create it with g3n keygen --init %s)", keys_dir,
                             keys_dir);
    }
    if (g3n_zap_reload(zap, err) != G3N_OK) {
        g3n_zap_stop(zap);
        return G3N_ERR;
    }
    /* bound here, before any CURVE socket binds, so that no handshake runs without it */
    void *socket = zmq_socket(zmq_context, ZMQ_REP);
    int linger = 0;
    if (socket)
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
    if (!socket || zmq_bind(socket, ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        if (socket)
            zmq_close(socket);
        g3n_zap_stop(zap);
        return g3n_error_set(err, "ZAP: cannot bind %s: %s", ZAP_ENDPOINT, zmq_strerror(e));
    }
    void **pair = malloc(2 * sizeof(void *));
    if (!pair) {
        zmq_close(socket);
        g3n_zap_stop(zap);
        return g3n_error_set(err, "ZAP: out of memory");
    }
    pair[0] = zap;
    pair[1] = socket;
    /* the socket moves to the handler thread (a full memory barrier: pthread_create) */
    if (pthread_create(&zap->thread, NULL, zap_loop, pair) != 0) {
        free(pair);
        zmq_close(socket);
        g3n_zap_stop(zap);
        return g3n_error_set(err, "ZAP: cannot start its thread");
    }
    zap->thread_started = 1;
    *out = zap;
    return G3N_OK;
}

void g3n_zap_stop(g3n_zap *zap)
{
    if (!zap)
        return;
    atomic_store(&zap->stop, 1);
    if (zap->thread_started)
        pthread_join(zap->thread, NULL);
    pthread_mutex_destroy(&zap->lock);
    free(zap->keys);
    free(zap);
}

unsigned g3n_zap_generation(g3n_zap *zap)
{
    return zap ? atomic_load(&zap->generation) : 0;
}

unsigned long long g3n_zap_refused(g3n_zap *zap)
{
    return zap ? atomic_load(&zap->refused) : 0;
}

int g3n_zap_user_allowed(g3n_zap *zap, const char *user_id, const char *public_key)
{
    if (!zap)
        return 0;
    const char *colon = strchr(user_id, ':');
    if (!colon)
        return 0;
    size_t role_len = (size_t)(colon - user_id);
    int allowed = 0;
    pthread_mutex_lock(&zap->lock);
    for (int i = 0; i < zap->key_count && !allowed; i++) {
        const allowed_key *k = &zap->keys[i];
        allowed = strlen(k->role) == role_len && strncmp(k->role, user_id, role_len) == 0 &&
                  strcmp(k->name, colon + 1) == 0 && strcmp(k->key, public_key) == 0;
    }
    pthread_mutex_unlock(&zap->lock);
    return allowed;
}

void g3n_zap_message_key(void *message, char *key, size_t key_size)
{
    const char *value = zmq_msg_gets((zmq_msg_t *)message, KEY_PROPERTY);
    snprintf(key, key_size, "%s", value ? value : "");
}

int g3n_zap_check_message(g3n_zap *zap, void *message, const char *role, char *user_id, size_t user_id_size)
{
    const char *user = zmq_msg_gets((zmq_msg_t *)message, "User-Id");
    if (user_id && user_id_size)
        snprintf(user_id, user_id_size, "%s", user ? user : "");
    if (!user || !user[0])
        return 1; /* inproc: a thread of this process */
    char key[G3N_CURVE_KEY_TEXT + 8];
    g3n_zap_message_key(message, key, sizeof(key));
    if (!g3n_zap_user_allowed(zap, user, key))
        return 0;
    if (role) {
        size_t n = strlen(role);
        if (strncmp(user, role, n) != 0 || user[n] != ':')
            return 0;
    }
    return 1;
}
