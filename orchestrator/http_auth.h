/* http_auth.h - API keys and per-key limits for the HTTP API (issue 17).
 *
 * Keys: --api-key KEY (named "default"), --api-keys FILE (one key per line,
 * "NAME:KEY" or a bare KEY named key-N; blank lines and # comments skipped;
 * the file must not be readable by group or others) and the environment
 * variable G3N_API_KEY (as --api-key). A key is 16 to 255 printable
 * characters without spaces or ':'. With keys, every /v1/... request needs
 * `Authorization: Bearer KEY`; the check compares every key in full in
 * constant time (no early exit on the first differing byte or key). /health
 * stays open; /metrics needs a key unless metrics are declared open.
 *
 * Limits per key (0: none): requests per minute (a token bucket: the minute's
 * allowance may come in a burst, then one request every 60/N s) and
 * generations at once (chat completions, transcriptions, live questions).
 * Over either, 429 with Retry-After. Counters go to /metrics by key name,
 * never the key.
 *
 * Threads: every function may be called from any connection thread.
 * Ownership: g3n_http_auth_free releases everything (keys are wiped). */
#ifndef G3N_HTTP_AUTH_H
#define G3N_HTTP_AUTH_H

#include "status.h"

typedef struct g3n_http_auth g3n_http_auth;

typedef struct g3n_http_auth_options {
    const char *key;         /* --api-key KEY or G3N_API_KEY; NULL: none */
    const char *keys_file;   /* --api-keys FILE; NULL: none */
    int requests_per_minute; /* per key; 0: unlimited */
    int max_generations;     /* generations at once per key; 0: unlimited */
    int metrics_open;        /* 1: /metrics needs no key */
} g3n_http_auth_options;

/* *out stays NULL (and G3N_OK) when no key is given: the API is open. */
int g3n_http_auth_create(g3n_http_auth **out, const g3n_http_auth_options *options, g3n_error *err);
void g3n_http_auth_free(g3n_http_auth *auth); /* accepts NULL */

int g3n_http_auth_key_count(const g3n_http_auth *auth);
int g3n_http_auth_metrics_open(const g3n_http_auth *auth);
/* The key an Authorization header value carries ("Bearer KEY"): its index,
 * or -1 (missing, malformed or unknown: counted as unauthorised). */
int g3n_http_auth_identify(g3n_http_auth *auth, const char *authorization);
const char *g3n_http_auth_key_name(const g3n_http_auth *auth, int index);

/* A request of key `index`: 0 admitted, else the seconds to wait (Retry-After). */
int g3n_http_auth_admit_request(g3n_http_auth *auth, int index);
/* A generation of key `index` starts: 0 admitted (end it with
 * g3n_http_auth_end_generation), else the seconds to wait. */
int g3n_http_auth_begin_generation(g3n_http_auth *auth, int index);
void g3n_http_auth_end_generation(g3n_http_auth *auth, int index);

/* Prometheus text for the per-key counters; malloc'd (caller frees), NULL when out of memory. */
char *g3n_http_auth_metrics(g3n_http_auth *auth);

/* Security flags shared by `g3n serve` and `g3n-orchestrator --http`:
 * --api-key KEY, --api-keys FILE, --rate-limit N (requests per minute per
 * key), --max-generations-per-key N, --metrics-open, --tls-cert FILE,
 * --tls-key FILE; parsed by the option table (G3N_OPTIONS_HTTP_SECURITY). */
typedef struct g3n_http_security_flags {
    g3n_http_auth_options auth;
    const char *tls_cert, *tls_key;
} g3n_http_security_flags;

/* The flags as option-table entries (common/options/options.h): G3N_OPTIONS_HTTP_SECURITY(&flags) inside a
 * command's table. */
#define G3N_OPTIONS_HTTP_SECURITY(flags)                                                                        \
    G3N_STRING("api-key", &(flags)->auth.key, "KEY",                                                           \
               "require Authorization: Bearer KEY on /v1/... (also env G3N_API_KEY)"),                         \
        G3N_STRING("api-keys", &(flags)->auth.keys_file, "FILE",                                               \
                   "several keys, one per line as NAME:KEY (file mode 0600)"),                                  \
        G3N_INT("rate-limit", &(flags)->auth.requests_per_minute, 1, 1000000, "N",                             \
                "requests per minute per key (default: unlimited); more get 429"),                              \
        G3N_INT("max-generations-per-key", &(flags)->auth.max_generations, 1, 1000000, "N",                    \
                "generations at once per key (default: unlimited); more get 429"),                              \
        G3N_FLAG("metrics-open", &(flags)->auth.metrics_open,                                                  \
                 "/metrics without a key (default: it needs one when keys are on)"),                            \
        G3N_STRING("tls-cert", &(flags)->tls_cert, "FILE",                                                     \
                   "HTTPS: the certificate chain (PEM); with --tls-key FILE (PEM, 0600)"),                      \
        G3N_STRING("tls-key", &(flags)->tls_key, "FILE", "HTTPS: the private key (PEM, mode 0600)")

/* Loads what the flags name: *auth (NULL when no key; G3N_API_KEY counts as
 * --api-key when neither flag is given) and the TLS PEM texts (NULL without
 * TLS; the key file must be mode 0600). The caller frees all three
 * (g3n_http_auth_free, free). */
int g3n_http_security_load(const g3n_http_security_flags *flags, g3n_http_auth **auth, char **tls_cert_pem,
                           char **tls_key_pem, g3n_error *err);

/* prefix + 32 hex characters of getrandom (128 bits) into out: ids nobody can guess. */
int g3n_http_random_id(char *out, size_t size, const char *prefix);

/* Reads a PEM file into a malloc'd NUL-terminated string (the key file must
 * not be readable by group or others when secret is 1). */
int g3n_http_read_pem(const char *path, int secret, char **out, g3n_error *err);

#endif
