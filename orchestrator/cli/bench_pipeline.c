/* bench_pipeline.c - `g3n bench pipeline` (bench_pipeline.h).
 *
 * Two set-ups live side by side, each with its own broker:
 *   in-process  the embedder and decoder roles as threads of this process,
 *               connected over inproc:// (as `g3n run`);
 *   daemons     g3n-embedder and g3n-decoder as child processes connected
 *               over tcp://127.0.0.1:PORT (as scripts/launch-daemons.sh).
 * After a warm-up generation in each, the --repeat measured generations
 * alternate between them (A B B A ...), so that a shared host's load drifts
 * onto both alike. Every generation must give the same greedy tokens. */
#define _GNU_SOURCE
#include "bench_pipeline.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "commands.h"
#include "config.h"
#include "matmul.h"
#include "ops.h"
#include "pipeline.h"
#include "option_groups.h"
#include "quant.h"
#include "roles.h"
#include "transport.h"
#include "weights.h"

typedef struct bench_options {
    const char *model_dir, *synth_spec, *daemon_dir, *weight_cache;
    g3n_weight_format format;
    int threads, embedder_threads, repeat, json, insecure;
    int64_t decode, prompt_tokens;
    double wait_seconds;
} bench_options;

typedef struct child_process {
    pid_t pid; /* 0: none */
    const char *program;
    char log[PATH_MAX];
} child_process;

#define CHILDREN 2

typedef struct bench_setup {
    const char *name;
    int daemons;
    char endpoint[128];
    g3n_broker *broker;
    g3n_client *client;
    g3n_local_roles local;
    child_process children[CHILDREN];
    /* results */
    double *decode_rates;     /* [repeat] tok/s */
    double *prefill_seconds;  /* [repeat] embed + prefill */
    double *step_seconds;     /* [repeat] decode time per step */
    double *decoder_seconds;  /* [repeat] the decoder's own time per step */
    double *embed_seconds;    /* [repeat] the embed call per decode step, as the client waits for it */
    int32_t *tokens;          /* [decode] of the last generation */
    double cpu_seconds, wall_seconds; /* over the measured runs */
} bench_setup;

/* The median (and min, max) of a set-up's runs; values stay in run order (--repeat <= 256). */
static double median_of(const double *values, int count, double *min, double *max)
{
    double sorted[256];
    int n = count < 256 ? count : 256;
    memcpy(sorted, values, sizeof(double) * (size_t)n);
    return g3n_bench_median(sorted, n, min, max);
}

/* user + system CPU seconds of a child, from /proc/PID/stat (fields 14 and 15). */
static double child_cpu_seconds(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0.0;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')'); /* the command name may hold spaces */
    unsigned long long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return 0.0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of the set-up: this process (its roles' threads, the client and the brokers) and its daemons. */
static double setup_cpu_seconds(const bench_setup *s)
{
    double total = g3n_bench_process_cpu_seconds();
    for (int i = 0; i < CHILDREN; i++)
        if (s->children[i].pid > 0)
            total += child_cpu_seconds(s->children[i].pid);
    return total;
}

/* ------------------------------------------------------------------ daemons */

static int is_executable(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, X_OK) == 0;
}

/* The folder holding g3n-embedder and g3n-decoder. */
static int find_daemon_dir(const char *given, char *out, size_t size, g3n_error *err)
{
    if (given) {
        if (!is_executable(given, "g3n-decoder") || !is_executable(given, "g3n-embedder"))
            return g3n_error_set(err, "--daemon-dir %s holds no executable g3n-embedder and g3n-decoder", given);
        snprintf(out, size, "%s", given);
        return G3N_OK;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return g3n_error_set(err, "cannot read /proc/self/exe to find the daemons: give --daemon-dir DIR");
    self[n] = '\0';
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(self, '/');
        if (!slash)
            break;
        *slash = '\0';
        if (is_executable(self, "g3n-decoder") && is_executable(self, "g3n-embedder")) {
            snprintf(out, size, "%s", self);
            return G3N_OK;
        }
    }
    return g3n_error_set(err, "no g3n-embedder and g3n-decoder next to this executable or in its parent folder: "
                              "build them or give --daemon-dir DIR");
}

/* A TCP port nobody listens on now (the broker binds it right after). */
static int free_tcp_port(int *port, g3n_error *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return g3n_error_set(err, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(fd, (struct sockaddr *)&a, &length) != 0) {
        int e = errno;
        close(fd);
        return g3n_error_set(err, "cannot find a free TCP port on 127.0.0.1: %s", strerror(e));
    }
    *port = ntohs(a.sin_port);
    close(fd);
    return G3N_OK;
}

/* Starts program with argv, stdout and stderr to c->log. The child asks the
 * kernel for SIGTERM should this process die first (no orphans even then). */
static int spawn_daemon(child_process *c, const char *path, char *const argv[], g3n_error *err)
{
    int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return g3n_error_set(err, "cannot create %s: %s", c->log, strerror(errno));
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) { /* only async-signal-safe calls until execv */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(path, argv);
        _exit(127);
    }
    int e = errno;
    close(fd);
    if (pid < 0)
        return g3n_error_set(err, "cannot start %s: %s", path, strerror(e));
    c->pid = pid;
    return G3N_OK;
}

/* The last lines of a daemon's log, for an error message. */
static void log_tail(const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buffer[4096];
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    long start = end > (long)sizeof(buffer) - 1 ? end - (long)sizeof(buffer) + 1 : 0;
    fseek(f, start, SEEK_SET);
    size_t n = fread(buffer, 1, sizeof(buffer) - 1, f);
    fclose(f);
    buffer[n] = '\0';
    while (n > 0 && (buffer[n - 1] == '\n' || buffer[n - 1] == ' '))
        buffer[--n] = '\0';
    const char *p = buffer + n;
    for (int lines = 0; p > buffer && lines < 4;)
        if (*--p == '\n')
            lines++;
    snprintf(out, size, "%s", p == buffer ? p : p + 1);
}

/* 1 if the child has exited (reaped: *status is its wait status). */
static int child_exited(child_process *c, int *status)
{
    if (c->pid <= 0)
        return 0;
    if (waitpid(c->pid, status, WNOHANG) == c->pid) {
        c->pid = -c->pid; /* reaped */
        return 1;
    }
    return 0;
}

/* SIGTERM to every daemon, then wait (SIGKILL after 20 s). G3N_ERR if one did
 * not exit with status 0 (the daemons exit 0 after a clean shutdown). */
static int stop_children(bench_setup *s, g3n_error *err)
{
    int rc = G3N_OK;
    for (int i = 0; i < CHILDREN; i++)
        if (s->children[i].pid > 0)
            kill(s->children[i].pid, SIGTERM);
    for (int i = 0; i < CHILDREN; i++) {
        child_process *c = &s->children[i];
        if (c->pid <= 0)
            continue;
        int status = 0;
        const double deadline = g3n_now_seconds() + 20.0;
        pid_t got = 0;
        while ((got = waitpid(c->pid, &status, WNOHANG)) == 0 && g3n_now_seconds() < deadline)
            usleep(10000);
        if (got == 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            if (rc == G3N_OK)
                rc = g3n_error_set(err, "%s (pid %d) did not stop within 20 s of SIGTERM (killed); log %s",
                                   c->program, (int)c->pid, c->log);
        } else if (got == c->pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0) && rc == G3N_OK) {
            rc = g3n_error_set(err, "%s (pid %d) did not exit cleanly (%s %d); log %s", c->program, (int)c->pid,
                               WIFSIGNALED(status) ? "signal" : "status",
                               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), c->log);
        }
        c->pid = -c->pid;
    }
    return rc;
}

/* Waits until the embedder and the decoder registered with the broker; fails
 * at once if a daemon exits first (with the end of its log). */
static int wait_registered(bench_setup *s, double wait_seconds, g3n_error *err)
{
    const int roles[CHILDREN] = {G3N_ROLE_EMBEDDER, G3N_ROLE_DECODER};
    const double deadline = g3n_now_seconds() + wait_seconds;
    for (int r = 0; r < CHILDREN; r++) {
        for (;;) {
            g3n_error ignored;
            if (g3n_broker_wait_workers(s->broker, roles[r], 1, 200, &ignored) == G3N_OK)
                break;
            for (int i = 0; i < CHILDREN; i++) {
                int status = 0;
                if (child_exited(&s->children[i], &status)) {
                    char tail[1024];
                    log_tail(s->children[i].log, tail, sizeof(tail));
                    return g3n_error_set(err, "%s exited (%s %d) before registering: %s", s->children[i].program,
                                         WIFSIGNALED(status) ? "signal" : "status",
                                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), tail);
                }
            }
            if (g3n_now_seconds() > deadline)
                return g3n_error_set(err, "the %s daemon did not register within %.0f s (log %s)",
                                     g3n_role_name(roles[r]), wait_seconds, s->children[r].log);
        }
    }
    return G3N_OK;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path); /* best effort: keep going */
    return 0;
}

static int start_daemons(bench_setup *s, const bench_options *o, const char *log_dir, g3n_error *err)
{
    char dir[PATH_MAX];
    int port = 0;
    if (find_daemon_dir(o->daemon_dir, dir, sizeof(dir), err) != G3N_OK || free_tcp_port(&port, err) != G3N_OK)
        return G3N_ERR;
    snprintf(s->endpoint, sizeof(s->endpoint), "tcp://127.0.0.1:%d", port);
    const char *endpoints[1] = {s->endpoint};
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = (int)(o->wait_seconds * 1000);
    transport.insecure = o->insecure;
    const char *programs[CHILDREN] = {"g3n-embedder", "g3n-decoder"};
    char keys[PATH_MAX], secret_files[CHILDREN][PATH_MAX + 64], server_key[PATH_MAX + 32];
    if (!o->insecure) { /* CurveZMQ as deployed: a keys folder for this run, one key pair per daemon */
        const char *roles[CHILDREN] = {"embedder", "decoder"};
        snprintf(keys, sizeof(keys), "%s/keys", log_dir);
        snprintf(server_key, sizeof(server_key), "%s/server", keys);
        if (mkdir(keys, 0700) != 0 || g3n_curve_keygen(server_key, err) != G3N_OK)
            return g3n_error_prefix(err, "keys for the daemons in %s", keys);
        snprintf(server_key, sizeof(server_key), "%s/server.key", keys);
        for (int i = 0; i < CHILDREN; i++) {
            char prefix[PATH_MAX + 32], listed[PATH_MAX + 64], public_file[PATH_MAX + 64];
            snprintf(prefix, sizeof(prefix), "%s/%s", keys, roles[i]);
            if (mkdir(prefix, 0700) != 0)
                return g3n_error_set(err, "cannot create %s", prefix);
            snprintf(prefix, sizeof(prefix), "%s/%s-daemon", keys, roles[i]);
            snprintf(public_file, sizeof(public_file), "%s.key", prefix);
            snprintf(listed, sizeof(listed), "%s/%s/daemon.key", keys, roles[i]);
            snprintf(secret_files[i], sizeof(secret_files[i]), "%s.key_secret", prefix);
            if (g3n_curve_keygen(prefix, err) != G3N_OK || link(public_file, listed) != 0)
                return g3n_error_prefix(err, "keys for the daemons in %s", keys);
        }
        if (g3n_curve_load_server(&transport.curve, keys, err) != G3N_OK)
            return G3N_ERR;
    }
    if (g3n_broker_start(&s->broker, endpoints, 1, &transport, err) != G3N_OK)
        return G3N_ERR;
    for (int i = 0; i < CHILDREN; i++) {
        const int decoder = i == 1;
        char path[PATH_MAX + 32], threads[32];
        snprintf(path, sizeof(path), "%s/%s", dir, programs[i]);
        snprintf(threads, sizeof(threads), "%d", decoder ? o->threads : o->embedder_threads);
        char *argv[24];
        int n = 0;
        argv[n++] = path;
        argv[n++] = o->model_dir ? "--model" : "--synth";
        argv[n++] = (char *)(o->model_dir ? o->model_dir : o->synth_spec);
        argv[n++] = "--connect";
        argv[n++] = s->endpoint;
        argv[n++] = "--threads";
        argv[n++] = threads;
        argv[n++] = "--weights"; /* (the embedder's per-token projection too, as in the in-process roles) */
        argv[n++] = (char *)g3n_weight_format_name(o->format);
        if (decoder) {
            if (o->weight_cache) {
                argv[n++] = "--weight-cache";
                argv[n++] = (char *)o->weight_cache;
            }
        }
        if (o->insecure) {
            argv[n++] = "--insecure";
        } else {
            argv[n++] = "--key";
            argv[n++] = secret_files[i];
            argv[n++] = "--server-key";
            argv[n++] = server_key;
        }
        argv[n] = NULL;
        s->children[i].program = programs[i];
        snprintf(s->children[i].log, sizeof(s->children[i].log), "%s/%s.log", log_dir, programs[i]);
        if (spawn_daemon(&s->children[i], path, argv, err) != G3N_OK)
            return G3N_ERR;
    }
    if (wait_registered(s, o->wait_seconds, err) != G3N_OK)
        return G3N_ERR;
    return g3n_client_open(&s->client, s->broker, err);
}

static int start_in_process(bench_setup *s, const bench_options *o, g3n_weights *weights,
                            const g3n_model_config *config, g3n_error *err)
{
    snprintf(s->endpoint, sizeof(s->endpoint), "inproc://g3n-bench-pipeline");
    const char *endpoints[1] = {s->endpoint};
    g3n_transport_options transport = g3n_transport_default_options();
    if (g3n_broker_start(&s->broker, endpoints, 1, &transport, err) != G3N_OK)
        return G3N_ERR;
    /* Each role with its own thread count and serving one request at a time, as the daemons (not
     * g3n_local_roles_start's capacity 2): a second decoder handler thread would bring a second OpenMP
     * pool, and libgomp throttles its spin-waits in a process with more OpenMP threads than cores, so
     * the two set-ups' decoders would not wait alike. */
    const int roles[CHILDREN] = {G3N_ROLE_EMBEDDER, G3N_ROLE_DECODER};
    for (int i = 0; i < CHILDREN; i++) {
        const int role = roles[i];
        g3n_role_options ro;
        memset(&ro, 0, sizeof(ro));
        ro.model_dir = o->model_dir;
        ro.threads = role == G3N_ROLE_DECODER ? o->threads : o->embedder_threads;
        ro.weight_format = o->format; /* the embedder: its projection quantised at q8/q4, as g3n run's */
        if (role == G3N_ROLE_DECODER)
            ro.weight_cache = o->weight_cache;
        if (g3n_role_open(&s->local.roles[role], role, weights, config, &ro, err) != G3N_OK)
            return G3N_ERR;
        g3n_worker_options wo;
        memset(&wo, 0, sizeof(wo));
        wo.role = role;
        wo.endpoint = s->endpoint;
        wo.model_id = g3n_weights_describe(weights);
        wo.capacity = 1;
        wo.zmq_context = g3n_broker_context(s->broker);
        wo.transport = transport;
        if (g3n_worker_start(&s->local.workers[role], &wo, g3n_role_handle, s->local.roles[role], err) != G3N_OK)
            return G3N_ERR;
    }
    for (int i = 0; i < CHILDREN; i++)
        if (g3n_broker_wait_workers(s->broker, roles[i], 1, 10000, err) != G3N_OK)
            return G3N_ERR;
    return g3n_client_open(&s->client, s->broker, err);
}

static void setup_stop(bench_setup *s)
{
    g3n_client_close(s->client);
    s->client = NULL;
    g3n_local_roles_stop(&s->local);
    g3n_broker_stop(s->broker);
    s->broker = NULL;
}

/* ------------------------------------------------------------------ runs */

typedef struct token_sink {
    int32_t *tokens;
    int64_t capacity, count;
} token_sink;

static int keep_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    (void)logits;
    (void)vocab;
    token_sink *sink = user;
    if (step < sink->capacity)
        sink->tokens[step] = token;
    sink->count = step + 1;
    return 0;
}

/* One generation; run < 0 is the warm-up (not recorded). */
static int generate_once(bench_setup *s, const bench_options *o, const g3n_model_config *config, const int32_t *ids,
                         int run, g3n_error *err)
{
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(config);
    params.max_new_tokens = o->decode;
    params.num_eos_ids = 0; /* always N tokens */
    token_sink sink = {s->tokens, o->decode, 0};
    params.on_token = keep_token;
    params.user = &sink;
    g3n_pipeline_stats stats;
    const double cpu_start = setup_cpu_seconds(s), wall_start = g3n_now_seconds();
    if (g3n_pipeline_generate(s->client, ids, o->prompt_tokens, NULL, &params, &stats, err) != G3N_OK)
        return g3n_error_prefix(err, "%s", s->name);
    const double wall = g3n_now_seconds() - wall_start, cpu = setup_cpu_seconds(s) - cpu_start;
    if (stats.generated_tokens != o->decode)
        return g3n_error_set(err, "%s: %lld tokens generated, %lld asked for", s->name,
                             (long long)stats.generated_tokens, (long long)o->decode);
    if (run < 0)
        return G3N_OK;
    const double steps = (double)(stats.generated_tokens - 1);
    s->decode_rates[run] = steps / (stats.decode_seconds > 0.0 ? stats.decode_seconds : 1e-12);
    s->prefill_seconds[run] = stats.embed_seconds + stats.prefill_seconds;
    s->step_seconds[run] = stats.decode_seconds / steps;
    s->decoder_seconds[run] = stats.decoder_step_seconds / steps;
    s->embed_seconds[run] = stats.decode_embed_seconds / steps;
    s->cpu_seconds += cpu;
    s->wall_seconds += wall;
    return G3N_OK;
}

static int setup_alloc(bench_setup *s, const bench_options *o)
{
    s->decode_rates = calloc((size_t)o->repeat, sizeof(double));
    s->prefill_seconds = calloc((size_t)o->repeat, sizeof(double));
    s->step_seconds = calloc((size_t)o->repeat, sizeof(double));
    s->decoder_seconds = calloc((size_t)o->repeat, sizeof(double));
    s->embed_seconds = calloc((size_t)o->repeat, sizeof(double));
    s->tokens = calloc((size_t)o->decode, sizeof(int32_t));
    return s->decode_rates && s->prefill_seconds && s->step_seconds && s->decoder_seconds && s->embed_seconds &&
                   s->tokens
               ? G3N_OK
               : G3N_ERR;
}

static void setup_free(bench_setup *s)
{
    free(s->decode_rates);
    free(s->prefill_seconds);
    free(s->step_seconds);
    free(s->decoder_seconds);
    free(s->embed_seconds);
    free(s->tokens);
}

typedef struct setup_summary {
    double tok_s, tok_s_min, tok_s_max, prefill_ms, step_ms, decoder_ms, embed_ms, share;
} setup_summary;

static setup_summary summarise(const bench_setup *s, const bench_options *o)
{
    setup_summary m;
    m.tok_s = median_of(s->decode_rates, o->repeat, &m.tok_s_min, &m.tok_s_max);
    m.prefill_ms = 1e3 * median_of(s->prefill_seconds, o->repeat, NULL, NULL);
    m.step_ms = 1e3 * median_of(s->step_seconds, o->repeat, NULL, NULL);
    m.decoder_ms = 1e3 * median_of(s->decoder_seconds, o->repeat, NULL, NULL);
    m.embed_ms = 1e3 * median_of(s->embed_seconds, o->repeat, NULL, NULL);
    m.share = s->wall_seconds > 0.0 ? s->cpu_seconds / (s->wall_seconds * (double)o->threads) : 0.0;
    return m;
}

/* ------------------------------------------------------------------ command */

#define ABOUT \
    "Greedy decode tokens/s through the orchestrator's pipeline (each step: the embedder embeds\n" \
    "the picked token, the session's decoder runs one position and picks the next) in two set-ups\n" \
    "on the same weights, threads, prompt and token count:\n" \
    "  in-process  the embedder and decoder roles as threads of this process, over inproc://,\n" \
    "              each serving one request at a time as the daemons do (one OpenMP pool per\n" \
    "              process: libgomp spins less where a process has more OpenMP threads than cores)\n" \
    "  daemons     the g3n-embedder and g3n-decoder executables as child processes of this\n" \
    "              benchmark, over TCP on 127.0.0.1 (a free port); stopped with SIGTERM at the end;\n" \
    "              CurveZMQ on that link (keys made for the run), or plain TCP with --insecure\n" \
    "After a warm-up generation in each, the R measured generations alternate between the set-ups.\n" \
    "Reports the median, min and max decode tok/s ((generated - 1) / decode time: the first token\n" \
    "comes from the prefill), the prefill time, the decoder's own share of a step, and the ratio\n" \
    "daemons / in-process. Fails if the two set-ups' greedy tokens differ.\n"

/* -1 to go on, else the exit code. */
static int parse_options(int argc, char **argv, bench_options *o)
{
    memset(o, 0, sizeof(*o));
    o->format = G3N_WEIGHTS_BF16;
    o->embedder_threads = 1;
    o->repeat = 3;
    o->decode = 64;
    o->prompt_tokens = 16;
    o->wait_seconds = 300;
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&o->model_dir, "checkpoint folder (e.g. g3n synth's E2B)"),
        G3N_STRING("synth", &o->synth_spec, "CONFIG:SEED", "synthetic weights for a config.json"),
        G3N_OPTION_WEIGHTS(&o->format, NULL, "what the decoder computes with, and the embedder its projection\n"
                                             "(default bf16; as g3n bench text)"),
        G3N_STRING("weight-cache", &o->weight_cache, "FILE",
                   "the q8/q4 cache file (default: DIR/g3n-cache or $G3N_CACHE_DIR)"),
        G3N_OPTION_THREADS_FOR(&o->threads, "the decoder's OpenMP threads (default: all cores)"),
        G3N_INT("embedder-threads", &o->embedder_threads, 1, 1024, "N",
                "the embedder's (default 1: its step is a row lookup and one\n"
                "small projection; more threads spin against the decoder's)"),
        G3N_INT64("decode", &o->decode, 2, 100000, "N", "tokens generated per run (default 64; EOS is ignored)"),
        G3N_INT64("prompt-tokens", &o->prompt_tokens, 1, 100000, "P", "fixed prompt ids before them (default 16)"),
        G3N_INT("repeat", &o->repeat, 1, 256, "R", "measured runs per set-up (default 3)"),
        G3N_STRING("daemon-dir", &o->daemon_dir, "DIR",
                   "where g3n-embedder and g3n-decoder are (default: next to this\n"
                   "executable or in its parent folder, as the build lays them out)"),
        G3N_DOUBLE("wait", &o->wait_seconds, 0.001, 86400, "SECONDS",
                   "how long the daemons may take to load and register (default 300)"),
        G3N_FLAG("insecure", &o->insecure, "plain TCP between this process and the daemons (default: CurveZMQ)"),
        G3N_FLAG("json", &o->json, "one JSON object instead of the table"),
    };
    const g3n_command_spec spec = {
        .name = "g3n bench pipeline",
        .usage = "g3n bench pipeline (--model DIR | --synth CONFIG:SEED) [--weights f32|bf16|q8|q4] [--threads N]\n"
                 "                          [--decode N] [--prompt-tokens P] [--repeat R] [--embedder-threads N]\n"
                 "                          [--daemon-dir DIR] [--wait SECONDS] [--insecure] [--json]",
        .about = ABOUT,
        .footer = "The daemons inherit the environment (OMP_WAIT_POLICY etc.), so both set-ups' threads wait\n"
                  "alike; their logs go to a temporary folder, shown on failure.\n",
        .help_column = 24,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc < 0 && (o->model_dir == NULL) == (o->synth_spec == NULL))
        return g3n_options_usage_error(&spec, "give one of --model DIR or --synth CONFIG:SEED");
    return rc;
}

static void print_results(const bench_options *o, const bench_setup *setups, double load, int same_tokens)
{
    setup_summary m[2] = {summarise(&setups[0], o), summarise(&setups[1], o)};
    const double ratio = m[0].tok_s > 0.0 ? m[1].tok_s / m[0].tok_s : 0.0;
    const char *model = o->model_dir ? o->model_dir : o->synth_spec;
    if (o->json) {
        printf("{\"model\":\"%s\",\"weights\":\"%s\",\"threads\":%d,\"embedder_threads\":%d,\"isa\":\"%s\","
               "\"prompt_tokens\":%lld,\"decode_tokens\":%lld,\"repeat\":%d,\"load_average\":%.2f,\"curve\":%s,"
               "\"setups\":[",
               model, g3n_weight_format_name(o->format), o->threads, o->embedder_threads,
               g3n_isa_name(g3n_isa_active()), (long long)o->prompt_tokens, (long long)o->decode, o->repeat, load,
               o->insecure ? "false" : "true");
        for (int i = 0; i < 2; i++)
            printf("%s{\"setup\":\"%s\",\"endpoint\":\"%s\",\"decode_tok_s\":%.3f,\"decode_tok_s_min\":%.3f,"
                   "\"decode_tok_s_max\":%.3f,\"prefill_ms\":%.3f,\"step_ms\":%.3f,\"decoder_step_ms\":%.3f,"
                   "\"embed_step_ms\":%.3f,\"cpu_share\":%.3f}",
                   i ? "," : "", setups[i].name, setups[i].endpoint, m[i].tok_s, m[i].tok_s_min, m[i].tok_s_max,
                   m[i].prefill_ms, m[i].step_ms, m[i].decoder_ms, m[i].embed_ms, m[i].share);
        printf("],\"ratio\":%.4f,\"same_tokens\":%s,\"tokens\":[", ratio, same_tokens ? "true" : "false");
        for (int64_t t = 0; t < o->decode; t++)
            printf("%s%d", t ? "," : "", setups[0].tokens[t]);
        printf("]}\n");
        return;
    }
    printf("pipeline decode: %s, --weights %s, decoder %d threads, embedder %d, isa %s\n", model,
           g3n_weight_format_name(o->format), o->threads, o->embedder_threads, g3n_isa_name(g3n_isa_active()));
    printf("prompt %lld tokens, decode %lld tokens, median of %d runs per set-up (interleaved)\n",
           (long long)o->prompt_tokens, (long long)o->decode, o->repeat);
    printf("daemons' TCP link: %s\n", o->insecure ? "plain (--insecure)" : "CurveZMQ (keys made for this run)");
    printf("load average %.2f at the start; share = CPU time of the set-up's processes / (wall x decoder threads);\n"
           "decoder ms = the decoder's own time per step; embed ms = the step's embed call as the client waits\n"
           "for it (the embedder's work and its transport); the rest of a step is the decoder call's transport\n",
           load);
    printf("%-12s %-24s %9s %9s %9s %11s %9s %11s %9s %7s\n", "set-up", "endpoint", "tok/s", "min", "max",
           "prefill ms", "step ms", "decoder ms", "embed ms", "share");
    for (int i = 0; i < 2; i++)
        printf("%-12s %-24s %9.2f %9.2f %9.2f %11.1f %9.2f %11.2f %9.2f %7.2f\n", setups[i].name, setups[i].endpoint,
               m[i].tok_s, m[i].tok_s_min, m[i].tok_s_max, m[i].prefill_ms, m[i].step_ms, m[i].decoder_ms,
               m[i].embed_ms, m[i].share);
    printf("daemons / in-process: %.3f (%+.1f %% decode tok/s; %+.2f ms per step)\n", ratio, 100.0 * (ratio - 1.0),
           m[1].step_ms - m[0].step_ms);
    printf("greedy tokens: %s (%lld per run, every run of both set-ups)\n", same_tokens ? "identical" : "DIFFERENT",
           (long long)o->decode);
}

int g3n_bench_pipeline(int argc, char **argv)
{
    bench_options o;
    int usage_rc = parse_options(argc, argv, &o);
    if (usage_rc >= 0)
        return usage_rc;
    if (o.threads > 0)
        g3n_set_threads(o.threads);
    o.threads = g3n_get_threads();

    g3n_error err = {{0}};
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_weights *weights = NULL;
    bench_setup setups[2];
    memset(setups, 0, sizeof(setups));
    setups[0].name = "in-process";
    setups[1].name = "daemons";
    setups[1].daemons = 1;
    int32_t *ids = NULL, *reference = NULL;
    char log_dir[] = "/tmp/g3n-bench-pipeline-XXXXXX";
    int have_log_dir = 0, rc = 1, same_tokens = 1;
    char config_path[PATH_MAX];
    uint64_t seed = 0;

    if (o.synth_spec) {
        if (g3n_parse_synth_spec(o.synth_spec, config_path, sizeof(config_path), &seed, &err) != G3N_OK ||
            g3n_config_load(&config, config_path, &err) != G3N_OK ||
            g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err) != G3N_OK)
            goto done;
    } else if (g3n_config_load(&config, o.model_dir, &err) != G3N_OK ||
               g3n_weights_open_checkpoint(&weights, o.model_dir, &err) != G3N_OK) {
        goto done;
    }
    ids = malloc(sizeof(int32_t) * (size_t)o.prompt_tokens);
    reference = malloc(sizeof(int32_t) * (size_t)o.decode);
    if (!ids || !reference || setup_alloc(&setups[0], &o) != G3N_OK || setup_alloc(&setups[1], &o) != G3N_OK) {
        g3n_error_set(&err, "out of memory");
        goto done;
    }
    const int64_t text_vocab = config.text.vocab_size_per_layer_input > 0 ? config.text.vocab_size_per_layer_input
                                                                          : config.text.vocab_size;
    for (int64_t i = 0; i < o.prompt_tokens; i++) /* fixed pseudo-random text ids, as bench text */
        ids[i] = (int32_t)(((uint64_t)i * 2654435761u + 12345u) % (uint64_t)text_vocab);
    if (!mkdtemp(log_dir)) {
        g3n_error_set(&err, "cannot create a folder for the daemons' logs: %s", strerror(errno));
        goto done;
    }
    have_log_dir = 1;

    const double load = g3n_bench_load_average();
    if (start_in_process(&setups[0], &o, weights, &config, &err) != G3N_OK ||
        start_daemons(&setups[1], &o, log_dir, &err) != G3N_OK)
        goto done;
    /* warm-up (page-in, thread pools, connections), then the measured runs A B B A ... */
    for (int i = 0; i < 2; i++) {
        if (generate_once(&setups[i], &o, &config, ids, -1, &err) != G3N_OK)
            goto done;
        if (i == 0)
            memcpy(reference, setups[0].tokens, sizeof(int32_t) * (size_t)o.decode);
        else if (memcmp(reference, setups[i].tokens, sizeof(int32_t) * (size_t)o.decode) != 0)
            same_tokens = 0;
    }
    for (int r = 0; r < o.repeat; r++)
        for (int k = 0; k < 2; k++) {
            const int i = (r % 2) ? 1 - k : k;
            if (generate_once(&setups[i], &o, &config, ids, r, &err) != G3N_OK)
                goto done;
            if (memcmp(reference, setups[i].tokens, sizeof(int32_t) * (size_t)o.decode) != 0)
                same_tokens = 0;
        }
    /* the daemons first, while their broker still answers their Goodbye */
    if (stop_children(&setups[1], &err) != G3N_OK)
        goto done;
    print_results(&o, setups, load, same_tokens);
    fflush(stdout);
    if (!same_tokens) {
        g3n_error_set(&err, "the two set-ups (or two runs) generated different greedy tokens");
        goto done;
    }
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "g3n bench pipeline: error: %s\n", err.message);
    g3n_error ignored;
    if (stop_children(&setups[1], &ignored) != G3N_OK && rc == 0) /* none left on any path */
        rc = 1;
    for (int i = 0; i < 2; i++)
        setup_stop(&setups[i]);
    if (have_log_dir) {
        if (rc == 0) {
            for (int i = 0; i < CHILDREN; i++)
                if (setups[1].children[i].log[0])
                    unlink(setups[1].children[i].log);
            char keys[sizeof(log_dir) + 8];
            snprintf(keys, sizeof(keys), "%s/keys", log_dir);
            nftw(keys, remove_entry, 8, FTW_DEPTH | FTW_PHYS); /* the run's key pairs */
            rmdir(log_dir);
        } else {
            fprintf(stderr, "g3n bench pipeline: the daemons' logs are in %s\n", log_dir);
        }
    }
    for (int i = 0; i < 2; i++)
        setup_free(&setups[i]);
    free(ids);
    free(reference);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    return rc;
}
