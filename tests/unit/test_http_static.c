/* The web page compiled into the server (http_static.h): "/" is index.html,
 * unknown and tricky paths find nothing, every embedded file equals its
 * source in web/ (the build embedded the current page), every file of web/ that
 * the page needs is embedded, and every file the page refers to (src=, href=,
 * module imports, the audio worklet) is served. The page itself in a browser:
 * tests/web/run.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "http_static.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_embedded_equals_sources),
        cmocka_unit_test(test_references_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
