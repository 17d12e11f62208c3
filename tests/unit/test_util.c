#define _GNU_SOURCE
#include "test_util.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

const char *g3n_test_fixture(const char *relative, char *buffer, size_t size)
{
    const char *root = getenv("G3N_FIXTURES");
    snprintf(buffer, size, "%s/%s", root && *root ? root : "tests/fixtures", relative);
    return buffer;
}

void g3n_test_case_open(g3n_check_case *c, const char *name, uint64_t *seed)
{
    char fixtures[1024], dir[1024];
    g3n_test_fixture("", fixtures, sizeof(fixtures));
    g3n_test_fixture(name, dir, sizeof(dir));
    g3n_error err = {{0}};
    if (g3n_check_case_open(c, dir, fixtures, &err) != G3N_OK)
        fail_msg("%s: %s", name, err.message);
    if (seed && g3n_check_seed(c, seed, &err) != G3N_OK)
        fail_msg("%s: %s", name, err.message);
}

const char *g3n_test_temp_dir(char *buffer, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buffer, size, "%s/g3n-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(buffer))
        buffer[0] = '\0';
    return buffer;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void g3n_test_remove_tree(const char *path)
{
    if (path && *path)
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void g3n_test_random_floats(float *out, int64_t count, uint64_t seed)
{
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < count; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out[i] = (float)((double)(state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

const char *g3n_test_binary(void)
{
    const char *binary = getenv("G3N_BINARY");
    return binary && *binary ? binary : "build/release/orchestrator/g3n";
}

void g3n_test_capture_layer0(void *user, int layer, const float *streams, int num_streams, int64_t stream_stride,
                             int64_t first_position, int64_t count, int64_t hidden)
{
    g3n_test_layer_capture *c = user;
    if (layer != 0)
        return;
    for (int i = 0; i < num_streams; i++)
        for (int64_t t = 0; t < count; t++)
            if (first_position + t < c->tokens)
                memcpy(c->data + ((int64_t)i * c->tokens + first_position + t) * hidden,
                       streams + i * stream_stride + t * hidden, sizeof(float) * (size_t)hidden);
}

void g3n_test_stack_open(g3n_test_stack *s, const char *endpoint, const g3n_transport_options *transport,
                         unsigned role_mask, uint64_t seed)
{
    g3n_test_stack_open_with(s, endpoint, transport, NULL, role_mask, seed);
}

void g3n_test_stack_open_with(g3n_test_stack *s, const char *endpoint, const g3n_transport_options *transport,
                              const g3n_role_options *roles, unsigned role_mask, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    g3n_error err = {{0}};
    char path[1024];
    if (g3n_config_load(&s->config, "scripts/demo-config.json", &err) != G3N_OK ||
        g3n_tokenizer_load(&s->tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof(path)), &err) !=
            G3N_OK)
        fail_msg("%s", err.message);
    g3n_transport_options t = g3n_transport_default_options();
    t.insecure = 1;
    if (transport)
        t = *transport;
    if (g3n_broker_start(&s->broker, &endpoint, 1, &t, &err) != G3N_OK)
        fail_msg("%s", err.message);
    if (!role_mask)
        return;
    if (g3n_weights_open_synth(&s->weights, seed, G3N_DTYPE_BF16, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    if (roles)
        ro = *roles;
    if (g3n_local_roles_start(&s->local, s->broker, endpoint, s->weights, &s->config, &ro, role_mask, &t, &err) !=
        G3N_OK)
        fail_msg("%s", err.message);
    for (int role = 0; role < G3N_ROLE_COUNT; role++)
        if ((role_mask & (1u << role)) && g3n_broker_wait_workers(s->broker, role, 1, 10000, &err) != G3N_OK)
            fail_msg("%s", err.message);
}

void g3n_test_stack_close(g3n_test_stack *s)
{
    g3n_local_roles_stop(&s->local);
    g3n_broker_stop(s->broker);
    g3n_weights_close(s->weights);
    g3n_tokenizer_free(s->tokenizer);
    g3n_config_free(&s->config);
    memset(s, 0, sizeof(*s));
}

g3n_http_server *g3n_test_http_start(g3n_test_stack *s, const g3n_http_options *options, int *port)
{
    g3n_http_options o = options ? *options : g3n_http_default_options();
    o.port = 0;
    o.quiet = 1;
    g3n_http_server *server = NULL;
    g3n_error err = {{0}};
    if (g3n_http_server_start(&server, s->broker, &s->config, s->tokenizer, &o, &err) != G3N_OK)
        fail_msg("%s", err.message);
    *port = g3n_http_server_port(server);
    assert_true(*port > 0);
    return server;
}

g3n_front_door *g3n_test_front_door_start(g3n_test_stack *s, char *endpoint, size_t size)
{
    g3n_front_door_options options;
    memset(&options, 0, sizeof(options));
    snprintf(endpoint, size, "tcp://127.0.0.1:%d", g3n_test_free_port());
    options.endpoint = endpoint;
    g3n_front_door *door = NULL;
    g3n_error err = {{0}};
    if (g3n_front_door_start(&door, s->broker, &s->config, s->tokenizer, &options, &err) != G3N_OK)
        fail_msg("%s", err.message);
    return door;
}

int g3n_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&address, &size), 0);
    close(fd);
    return ntohs(address.sin_port);
}

int g3n_test_http_request(int port, const char *request, char *out, size_t size, size_t *length)
{
    out[0] = '\0';
    if (length)
        *length = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t sent = 0, n = strlen(request);
    while (sent < n) {
        ssize_t w = send(fd, request + sent, n - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < size && (r = recv(fd, out + got, size - 1 - got, 0)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    if (length)
        *length = got;
    int status = 0;
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    return status;
}

int g3n_test_http_method(int port, const char *method, const char *path, char *out, size_t size, size_t *length)
{
    char request[1024];
    snprintf(request, sizeof(request), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, path);
    return g3n_test_http_request(port, request, out, size, length);
}

int g3n_test_http_get(int port, const char *path, char *out, size_t size)
{
    return g3n_test_http_method(port, "GET", path, out, size, NULL);
}

int g3n_test_http_post(int port, const char *path, const char *body, char *out, size_t size)
{
    const size_t length = strlen(body) + strlen(path) + 256;
    char *request = malloc(length);
    assert_non_null(request);
    snprintf(request, length,
             "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             path, strlen(body), body);
    const int status = g3n_test_http_request(port, request, out, size, NULL);
    free(request);
    return status;
}

uint8_t *g3n_test_make_wav(int64_t samples, uint64_t seed, size_t *size)
{
    const uint32_t data_bytes = (uint32_t)(samples * 2);
    uint8_t *wav = malloc(44 + (size_t)data_bytes);
    assert_non_null(wav);
    memcpy(wav, "RIFF", 4);
    const uint32_t riff = 36 + data_bytes, fmt_size = 16, rate = 16000, byte_rate = 32000;
    const uint16_t pcm = 1, channels = 1, align = 2, bits = 16;
    memcpy(wav + 4, &riff, 4);
    memcpy(wav + 8, "WAVEfmt ", 8);
    memcpy(wav + 16, &fmt_size, 4);
    memcpy(wav + 20, &pcm, 2);
    memcpy(wav + 22, &channels, 2);
    memcpy(wav + 24, &rate, 4);
    memcpy(wav + 28, &byte_rate, 4);
    memcpy(wav + 32, &align, 2);
    memcpy(wav + 34, &bits, 2);
    memcpy(wav + 36, "data", 4);
    memcpy(wav + 40, &data_bytes, 4);
    uint64_t state = seed;
    for (int64_t i = 0; i < samples; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        int16_t v = (int16_t)((i * 37 % 2000) - 1000 + (int)((state >> 33) % 400) - 200);
        memcpy(wav + 44 + 2 * i, &v, 2);
    }
    *size = 44 + (size_t)data_bytes;
    return wav;
}
