/* The web page compiled into the server (http_static.h): "/" is index.html,
 * unknown and tricky paths find nothing, every embedded file equals its
 * source in web/ (the build embedded the current page), every file of web/ that
 * the page needs is embedded, and every file the page refers to (src=, href=,
 * module imports, the audio worklet) is served; and the server answers GET,
 * HEAD and other methods on them with the right headers (no workers needed).
 * The page itself in a browser: tests/web/run.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <unistd.h>


#include "config.h"
#include "http_server.h"
#include "http_static.h"
#include "test_util.h"
#include "transport.h"

static char *read_source(const char *name, size_t *size)
{
    char path[512];
    snprintf(path, sizeof(path), "web/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long length = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)length + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)length, f), (size_t)length);
    data[length] = '\0';
    fclose(f);
    *size = (size_t)length;
    return data;
}

static void test_find(void **state)
{
    (void)state;
    const g3n_web_asset *index = g3n_http_static_find("/");
    assert_non_null(index);
    assert_string_equal(index->path, "/index.html");
    assert_string_equal(index->content_type, "text/html; charset=utf-8");
    assert_ptr_equal(g3n_http_static_find("/index.html"), index);
    const g3n_web_asset *app = g3n_http_static_find("/app.js");
    assert_non_null(app);
    assert_string_equal(app->content_type, "text/javascript; charset=utf-8");
    assert_string_equal(g3n_http_static_find("/style.css")->content_type, "text/css; charset=utf-8");
    const char *none[] = {"", "index.html", "/INDEX.HTML", "/index.html/", "//", "/../web/app.js", "/web/app.js",
                          "/app.js/", "/v1/chat/completions", "/nope.js", "/README.md"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        assert_null(g3n_http_static_find(none[i]));
    assert_null(g3n_http_static_find(NULL));
}

static void test_embedded_equals_sources(void **state)
{
    (void)state;
    int count = 0;
    for (const g3n_web_asset *a = g3n_web_assets; a->path; a++, count++) {
        size_t size;
        char *source = read_source(a->path + 1, &size);
        assert_non_null(source);
        assert_int_equal(a->size, size);
        assert_memory_equal(a->data, source, size);
        assert_int_equal(a->data[a->size], 0); /* NUL after the bytes (not counted) */
        free(source);
    }
    assert_true(count >= 5);
    /* every page file of web/ is embedded */
    DIR *dir = opendir("web");
    assert_non_null(dir);
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        const char *dot = strrchr(entry->d_name, '.');
        if (!dot || !(strcmp(dot, ".html") == 0 || strcmp(dot, ".js") == 0 || strcmp(dot, ".css") == 0 ||
                      strcmp(dot, ".svg") == 0))
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/%s", entry->d_name);
        if (!g3n_http_static_find(path))
            fail_msg("web/%s is not embedded", entry->d_name);
    }
    closedir(dir);
}

/* Each name after `marker` up to `end` in an asset must be served, e.g.
 * src="app.js" or from './api.js'. */
static int check_references(const g3n_web_asset *a, const char *marker, char end)
{
    int found = 0;
    const char *text = (const char *)a->data;
    for (const char *p = strstr(text, marker); p; p = strstr(p + 1, marker)) {
        const char *name = p + strlen(marker);
        if (strncmp(name, "./", 2) == 0)
            name += 2;
        const char *stop = strchr(name, end);
        assert_non_null(stop);
        if (stop == name || strncmp(name, "data:", 5) == 0 || strncmp(name, "#", 1) == 0)
            continue;
        char path[256];
        snprintf(path, sizeof(path), "/%.*s", (int)(stop - name), name);
        if (!g3n_http_static_find(path))
            fail_msg("%s refers to %s, which is not served", a->path, path);
        found++;
    }
    return found;
}

static void test_references_resolve(void **state)
{
    (void)state;
    int references = 0;
    for (const g3n_web_asset *a = g3n_web_assets; a->path; a++) {
        references += check_references(a, "src=\"", '"');
        references += check_references(a, "href=\"", '"');
        references += check_references(a, "from '", '\'');
        references += check_references(a, "addModule('", '\'');
    }
    assert_true(references >= 8); /* the stylesheet, the icon, app.js, the modules, the worklet */
}

static void test_served(void **state)
{
    (void)state;
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_error err;
    assert_int_equal(g3n_config_load(&config, "scripts/demo-config.json", &err), G3N_OK);
    g3n_transport_options transport = g3n_transport_default_options();
    const char *endpoints[1] = {"inproc://test-http-static"};
    g3n_broker *broker = NULL;
    assert_int_equal(g3n_broker_start(&broker, endpoints, 1, &transport, &err), G3N_OK);
    g3n_http_options options = g3n_http_default_options();
    options.port = 0;
    options.quiet = 1;
    g3n_http_server *server = NULL;
    /* no tokenizer: only chats use it (loading Gemma's takes seconds under the sanitizers) */
    assert_int_equal(g3n_http_server_start(&server, broker, &config, NULL, &options, &err), G3N_OK);
    int port = g3n_http_server_port(server);
    static char response[1 << 20];
    size_t length;

    const g3n_web_asset *index = g3n_http_static_find("/");
    assert_int_equal(g3n_test_http_method(port, "GET", "/", response, sizeof(response), &length), 200);
    assert_non_null(strstr(response, "Content-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(response, "Content-Security-Policy: default-src 'none'; script-src 'self';"));
    assert_non_null(strstr(response, "X-Content-Type-Options: nosniff\r\n"));
    const char *body = strstr(response, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    assert_int_equal(length - (size_t)(body - response), index->size);
    assert_memory_equal(body, index->data, index->size);

    assert_int_equal(g3n_test_http_method(port, "HEAD", "/app.js", response, sizeof(response), &length), 200);
    assert_non_null(strstr(response, "Content-Type: text/javascript; charset=utf-8\r\n"));
    assert_true(strstr(response, "\r\n\r\n") + 4 == response + length); /* no body */

    /* a query string does not matter */
    assert_int_equal(g3n_test_http_method(port, "GET", "/app.js?v=2", response, sizeof(response), &length), 200);
    assert_int_equal(g3n_test_http_post(port, "/", "{}", response, sizeof(response)), 405);
    assert_non_null(strstr(response, "\"code\":\"method_not_allowed\""));
    assert_int_equal(g3n_test_http_method(port, "GET", "/../web/app.js", response, sizeof(response), &length), 404);
    assert_int_equal(g3n_test_http_method(port, "GET", "/nope.js", response, sizeof(response), &length), 404);
    assert_non_null(strstr(response, "\"code\":\"not_found\""));
    g3n_http_server_stop(server);
    g3n_broker_stop(broker);
    g3n_config_free(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_embedded_equals_sources),
        cmocka_unit_test(test_references_resolve),
        cmocka_unit_test(test_served),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
