/* curve_keys.h - CurveZMQ key pairs and the orchestrator's key folder
 * (the ZeroMQ guide's "Ironhouse" pattern: every peer has its own key pair,
 * the server accepts only the public keys it lists).
 *
 * Key files are ZeroMQ certificate text (zcert format, Z85 keys):
 *   NAME.key          public key ("public-key = \"...\""); hand it out freely
 *   NAME.key_secret   public + secret key, mode 0600; a secret file readable
 *                     by group or others is refused
 * A file holding one bare 40-character Z85 key is accepted as a public key.
 *
 * The orchestrator's keys folder (--keys DIR):
 *   DIR/server.key, DIR/server.key_secret   the orchestrator's own pair
 *   DIR/vision-encoder/NAME.key, DIR/audio-encoder/NAME.key, DIR/embedder/NAME.key,
 *   DIR/decoder/NAME.key      workers allowed to register as that role
 *   DIR/clients/NAME.key      front-door clients (g3n run --connect)
 * A key listed for two roles is refused for both (a key has one role). The
 * folder is read at start and again on SIGHUP (and whenever one of those
 * folders changed when an unknown key connects), so a key can be added or
 * revoked (file removed) without a restart.
 *
 * The ZAP handler (g3n_zap) answers libzmq's authentication requests
 * (inproc://zeromq.zap.01 of the context it is given): domain
 * G3N_CURVE_DOMAIN_WORKERS admits keys of the four worker roles,
 * G3N_CURVE_DOMAIN_CLIENTS the clients' keys. It sets the connection's
 * User-Id to "ROLE:NAME" (NAME = the key file's name; ROLE "client" for
 * clients) and the property "X-G3n-Key" to the public key, which every
 * message from that connection carries (zmq_msg_gets): the broker checks them
 * per message (g3n_zap_check_message), so a revoked key's open connection
 * gets nothing more either. inproc:// connections have no User-Id and are
 * not checked (they are threads of the same process).
 */
#ifndef G3N_CURVE_KEYS_H
#define G3N_CURVE_KEYS_H

#include "status.h"

#define G3N_CURVE_KEY_TEXT 41 /* 40 Z85 characters + NUL */
#define G3N_CURVE_DOMAIN_WORKERS "g3n-workers"
#define G3N_CURVE_DOMAIN_CLIENTS "g3n-clients"
#define G3N_CURVE_CLIENT_ROLE "client"

/* What a socket needs to speak CURVE; a plain value (copied freely). */
typedef struct g3n_curve_options {
    int enabled;                            /* 1: CURVE on every non-inproc endpoint */
    char public_key[G3N_CURVE_KEY_TEXT];    /* own pair (Z85) */
    char secret_key[G3N_CURVE_KEY_TEXT];
    char server_key[G3N_CURVE_KEY_TEXT];    /* connecting side: the orchestrator's public key */
    char keys_dir[512];                     /* binding side: the folder of allowed keys ("" none) */
} g3n_curve_options;

/* 1 when libzmq was built with CURVE (libsodium). */
int g3n_curve_available(void);

/* Writes a new pair: PREFIX.key (0644) and PREFIX.key_secret (0600). Refuses
 * to overwrite an existing file. */
int g3n_curve_keygen(const char *prefix, g3n_error *err);

/* Reads a public key file (zcert or bare Z85) into public_key. */
int g3n_curve_read_public(const char *path, char public_key[G3N_CURVE_KEY_TEXT], g3n_error *err);
/* Reads a secret key file (its public key too, derived when absent); refuses a
 * file whose mode lets group or others read it. */
int g3n_curve_read_secret(const char *path, char public_key[G3N_CURVE_KEY_TEXT],
                          char secret_key[G3N_CURVE_KEY_TEXT], g3n_error *err);

/* Fills options for a binding side from a keys folder (DIR/server.key_secret). */
int g3n_curve_load_server(g3n_curve_options *options, const char *keys_dir, g3n_error *err);
/* Fills options for a connecting side: own secret key file + the server's public key file. */
int g3n_curve_load_client(g3n_curve_options *options, const char *secret_file, const char *server_public_file,
                          g3n_error *err);

/* Applies CURVE to a socket before its bind (server = 1, with the ZAP domain)
 * or connect (server = 0), when options->enabled and the endpoint is not
 * inproc://. A network endpoint (tcp://, ...) without CURVE is refused unless
 * insecure is 1; inproc:// and ipc:// (a local socket file) are allowed
 * (g3n_curve_check_endpoint: that rule alone). */
int g3n_curve_check_endpoint(const char *endpoint, const g3n_curve_options *options, int insecure, g3n_error *err);
int g3n_curve_prepare_socket(void *socket, const char *endpoint, const g3n_curve_options *options, int insecure,
                             int server, const char *domain, g3n_error *err);

/* ---- command-line flags, the same on every binary ---- */
/* --keys DIR (a binding side: the orchestrator's keys folder), --key FILE +
 * --server-key FILE (a connecting side: own secret key, the orchestrator's
 * public key), --insecure (plain tcp:// allowed; warned at start); parsed by
 * the option table (G3N_OPTIONS_SECURITY_BIND / _CONNECT, option_groups.h). */
typedef struct g3n_security_flags {
    const char *keys_dir, *key_file, *server_key_file;
    int insecure;
} g3n_security_flags;

/* --check-args: the flags are consistent and endpoint gets keys or
 * --insecure; the key files are not read (they may live only where the
 * binary runs). */
int g3n_security_check_flags(const g3n_security_flags *flags, const char *endpoint, g3n_error *err);
/* Loads the keys the flags name into curve and sets *insecure; with
 * --insecure writes the warning to stderr under program's name. */
int g3n_security_apply(const g3n_security_flags *flags, const char *program, g3n_curve_options *curve, int *insecure,
                       g3n_error *err);

/* ---- the orchestrator's ZAP handler ---- */
typedef struct g3n_zap g3n_zap;

/* Reads keys_dir and starts the handler thread in zmq_context. Start it
 * before binding the CURVE sockets. */
int g3n_zap_start(g3n_zap **out, void *zmq_context, const char *keys_dir, int verbose, g3n_error *err);
void g3n_zap_stop(g3n_zap *zap); /* accepts NULL; call before terminating the context */
/* Re-reads the folder now (SIGHUP does this on the handler's thread). */
int g3n_zap_reload(g3n_zap *zap, g3n_error *err);
/* Bumped at every reload: the broker re-checks its workers when it changes. */
unsigned g3n_zap_generation(g3n_zap *zap);
/* Checks the sender of a received message (zmq_msg_t *): inproc (no User-Id)
 * passes; else its key must still be listed for the User-Id's role, and when
 * role is non-NULL the User-Id's role must be that one. Writes the User-Id
 * (or "") into user_id. Returns 1 allowed, 0 refused. */
int g3n_zap_check_message(g3n_zap *zap, void *message, const char *role, char *user_id, size_t user_id_size);
/* The key property of a received message ("" for inproc); key_size >= G3N_CURVE_KEY_TEXT. */
void g3n_zap_message_key(void *message, char *key, size_t key_size);
/* 1 if user_id ("ROLE:NAME") with that public key (Z85) is still allowed. */
int g3n_zap_user_allowed(g3n_zap *zap, const char *user_id, const char *public_key);
/* Connections refused so far. */
unsigned long long g3n_zap_refused(g3n_zap *zap);

/* SIGHUP: installs a handler that asks every g3n_zap to reload. */
void g3n_curve_install_reload_handler(void);

#endif
