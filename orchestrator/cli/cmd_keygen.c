/* cmd_keygen.c - `g3n keygen`: CurveZMQ key pairs and the orchestrator's keys folder (curve_keys.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "curve_keys.h"
#include "options.h"

static const char *const folders[] = {"vision-encoder", "audio-encoder", "embedder", "decoder", "clients", NULL};

static int make_folder(const char *path, int mode)
{
    if (mkdir(path, (mode_t)mode) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "g3n keygen: error: cannot create %s: %s\n", path, strerror(errno));
    return 1;
}

static int copy_public(const char *from, const char *to)
{
    char key[G3N_CURVE_KEY_TEXT];
    g3n_error err = {{0}};
    if (g3n_curve_read_public(from, key, &err) != G3N_OK) {
        fprintf(stderr, "g3n keygen: error: %s\n", err.message);
        return 1;
    }
    FILE *f = fopen(to, "wx");
    if (!f) {
        fprintf(stderr, "g3n keygen: error: cannot create %s: %s\n", to, strerror(errno));
        return 1;
    }
    fprintf(f, "#   ZeroMQ CURVE Public Certificate (g3n keygen)\n\nmetadata\ncurve\n    public-key = \"%s\"\n", key);
    return fclose(f) == 0 ? 0 : 1;
}

typedef struct keygen_args {
    const char *init, *keys, *prefix;
    int role; /* index into folders; -1: none */
    const char *prefix_storage[1];
    g3n_option_list positionals;
} keygen_args;

/* -1 to go on, else the exit code. */
static int parse_args(keygen_args *args, int argc, char **argv)
{
    args->role = -1;
    args->positionals = (g3n_option_list){args->prefix_storage, 1, 0};
    const g3n_option options[] = {
        G3N_STRING("init", &args->init, "DIR",
                   "the orchestrator's keys folder: DIR/server.key + .key_secret and the empty role folders"),
        G3N_STRING("keys", &args->keys, "DIR", "with --role: list the new public key in DIR/ROLE/"),
        {.name = "role", .kind = G3N_OPTION_ENUM, .value = &args->role, .choices = folders, .value_name = "ROLE",
         .help = "vision-encoder, audio-encoder, embedder, decoder or clients"},
    };
    const g3n_command_spec spec = {
        .name = "g3n keygen",
        .usage = "g3n keygen PREFIX                       a key pair: PREFIX.key (public) and\n"
                 "                                               PREFIX.key_secret (secret, mode 0600)\n"
                 "       g3n keygen --init DIR                   the orchestrator's keys folder: DIR/server.key\n"
                 "                                               + .key_secret and the empty role folders\n"
                 "       g3n keygen --keys DIR --role ROLE PREFIX  a pair for a worker (ROLE: vision-encoder,\n"
                 "                                               audio-encoder, embedder, decoder) or a client\n"
                 "                                               (ROLE clients), its public key listed in DIR/ROLE/",
        .about = "CurveZMQ keys (Z85 text, ZeroMQ certificate format). The orchestrator (--keys DIR) admits\n"
                 "only the public keys listed in DIR/ROLE/*.key, each for its role; remove a file and send\n"
                 "SIGHUP to revoke it. Workers and clients use --key PREFIX.key_secret --server-key\n"
                 "DIR/server.key. Existing files are never overwritten.\n",
        .positionals = &args->positionals,
        .help_column = 15,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    args->prefix = args->positionals.count ? args->prefix_storage[0] : NULL;
    if ((args->init != NULL) + (args->prefix != NULL) != 1 || (args->keys != NULL) != (args->role >= 0) ||
        (args->init && args->keys))
        return g3n_options_usage_error(&spec, "give PREFIX, --init DIR, or --keys DIR --role ROLE PREFIX");
    return -1;
}

static int init_folder(const char *init)
{
    g3n_error err = {{0}};
    char path[1200];
    if (make_folder(init, 0700) != 0)
        return 1;
    for (int i = 0; folders[i]; i++) {
        snprintf(path, sizeof(path), "%s/%s", init, folders[i]);
        if (make_folder(path, 0755) != 0)
            return 1;
    }
    snprintf(path, sizeof(path), "%s/server", init);
    if (g3n_curve_keygen(path, &err) != G3N_OK) {
        fprintf(stderr, "g3n keygen: error: %s\n", err.message);
        return 1;
    }
    printf("wrote %s/server.key (give it to workers and clients: --server-key) and %s/server.key_secret\n", init,
           init);
    return 0;
}

/* A key pair at prefix, listed in keys/role/ when keys is given. */
static int make_pair(const char *prefix, const char *keys, const char *role)
{
    g3n_error err = {{0}};
    char path[1200];
    if (g3n_curve_keygen(prefix, &err) != G3N_OK) {
        fprintf(stderr, "g3n keygen: error: %s\n", err.message);
        return 1;
    }
    printf("wrote %s.key and %s.key_secret (mode 0600)\n", prefix, prefix);
    if (!keys)
        return 0;
    const char *base = strrchr(prefix, '/') ? strrchr(prefix, '/') + 1 : prefix;
    char from[1200];
    snprintf(from, sizeof(from), "%s.key", prefix);
    snprintf(path, sizeof(path), "%s/%s", keys, role);
    if (make_folder(path, 0755) != 0)
        return 1;
    snprintf(path, sizeof(path), "%s/%s/%s.key", keys, role, base);
    if (copy_public(from, path) != 0)
        return 1;
    printf("listed %s as %s (the orchestrator reads it on the next connection or SIGHUP)\n", path, role);
    return 0;
}

int g3n_command_keygen(int argc, char **argv)
{
    keygen_args args = {0};
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (args.init)
        return init_folder(args.init);
    return make_pair(args.prefix, args.keys, args.role >= 0 ? folders[args.role] : NULL);
}
