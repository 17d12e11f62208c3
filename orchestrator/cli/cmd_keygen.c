/* cmd_keygen.c - `g3n keygen`: CurveZMQ key pairs and the orchestrator's keys folder (curve_keys.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "curve_keys.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: g3n keygen PREFIX                       a key pair: PREFIX.key (public) and\n"
            "                                               PREFIX.key_secret (secret, mode 0600)\n"
            "       g3n keygen --init DIR                   the orchestrator's keys folder: DIR/server.key\n"
            "                                               + .key_secret and the empty role folders\n"
            "       g3n keygen --keys DIR --role ROLE PREFIX  a pair for a worker (ROLE: vision-encoder,\n"
            "                                               audio-encoder, embedder, decoder) or a client\n"
            "                                               (ROLE clients), its public key listed in DIR/ROLE/\n"
            "\n"
            "CurveZMQ keys (Z85 text, ZeroMQ certificate format). The orchestrator (--keys DIR) admits\n"
            "only the public keys listed in DIR/ROLE/*.key, each for its role; remove a file and send\n"
            "SIGHUP to revoke it. Workers and clients use --key PREFIX.key_secret --server-key\n"
            "DIR/server.key. Existing files are never overwritten.\n");
}

static const char *const folders[] = {"vision-encoder", "audio-encoder", "embedder", "decoder", "clients"};

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

int g3n_command_keygen(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *init = NULL, *keys = NULL, *role = NULL, *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((strcmp(a, "--init") == 0 || strcmp(a, "--keys") == 0 || strcmp(a, "--role") == 0) && !v) {
            fprintf(stderr, "g3n keygen: error: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--init") == 0)
            init = argv[++i];
        else if (strcmp(a, "--keys") == 0)
            keys = argv[++i];
        else if (strcmp(a, "--role") == 0)
            role = argv[++i];
        else if (a[0] == '-' || prefix) {
            fprintf(stderr, "g3n keygen: error: unexpected argument '%s' (see --help)\n", a);
            return 2;
        } else
            prefix = a;
    }
    if ((init != NULL) + (prefix != NULL) != 1 || (keys != NULL) != (role != NULL) || (init && keys)) {
        usage(stderr);
        return 2;
    }
    if (role) {
        int known = 0;
        for (int i = 0; i < 5; i++)
            known |= strcmp(role, folders[i]) == 0;
        if (!known) {
            fprintf(stderr, "g3n keygen: error: unknown role '%s' (vision-encoder, audio-encoder, embedder, decoder, "
                            "clients)\n", role);
            return 2;
        }
    }
    g3n_error err = {{0}};
    char path[1200];
    if (init) {
        if (make_folder(init, 0700) != 0)
            return 1;
        for (int i = 0; i < 5; i++) {
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
    if (g3n_curve_keygen(prefix, &err) != G3N_OK) {
        fprintf(stderr, "g3n keygen: error: %s\n", err.message);
        return 1;
    }
    printf("wrote %s.key and %s.key_secret (mode 0600)\n", prefix, prefix);
    if (keys) {
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
    }
    return 0;
}
