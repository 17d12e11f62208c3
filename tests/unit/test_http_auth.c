/* API keys for the HTTP API (orchestrator/http_auth.h, issue 17): the keys
 * file (names, comments, its mode, bad and duplicate keys), the Bearer check
 * (exact match only: no prefix, no suffix, no other scheme), the per-key
 * requests-per-minute bucket and generations at once, /metrics text that names
 * keys and never shows them, and ids of 128 random bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "http_auth.h"
#include "test_util.h"

#define KEY_A "alice-0123456789abcdef"
#define KEY_B "bob-fedcba9876543210xyz"

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static void test_keys_file_and_bearer_check(void **state)
{
    (void)state;
    char dir[512], path[600];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/keys", dir);
    g3n_http_auth *auth = NULL;
    g3n_error err = {{0}};
    g3n_http_auth_options o = {0};
    /* no key: an open API */
    assert_int_equal(g3n_http_auth_create(&auth, &o, &err), G3N_OK);
    assert_null(auth);
    /* a file others can read is refused */
    write_file(path, "# keys\nalice:" KEY_A "\n\n" KEY_B "\n", 0644);
    o.keys_file = path;
    assert_int_equal(g3n_http_auth_create(&auth, &o, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "readable by group or others"));
    assert_int_equal(chmod(path, 0600), 0);
    o.key = "default-key-0123456789";
    assert_int_equal(g3n_http_auth_create(&auth, &o, &err), G3N_OK);
    assert_int_equal(g3n_http_auth_key_count(auth), 3);
    int a = g3n_http_auth_identify(auth, "Bearer " KEY_A);
    assert_true(a >= 0);
    assert_string_equal(g3n_http_auth_key_name(auth, a), "alice");
    int b = g3n_http_auth_identify(auth, "bearer  " KEY_B " ");
    assert_true(b >= 0 && b != a);
    assert_string_equal(g3n_http_auth_key_name(auth, b), "key-1");
    assert_string_equal(g3n_http_auth_key_name(auth, g3n_http_auth_identify(auth, "Bearer default-key-0123456789")),
                        "default");
    const char *refused[] = {NULL, "", "Bearer", "Bearer ", KEY_A, "Basic " KEY_A, "Bearer alice-0123456789abcde",
                             "Bearer " KEY_A "0", "Bearer " KEY_A KEY_B, "Bearer ALICE-0123456789ABCDEF"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_int_equal(g3n_http_auth_identify(auth, refused[i]), -1);
    /* metrics name keys, never show them */
    char *text = g3n_http_auth_metrics(auth);
    assert_non_null(strstr(text, "g3n_http_key_requests_total{key=\"alice\"}"));
    assert_non_null(strstr(text, "g3n_http_unauthorized_total 10"));
    assert_null(strstr(text, KEY_A));
    assert_null(strstr(text, KEY_B));
    free(text);
    g3n_http_auth_free(auth);

    /* bad keys: too short, spaces; the same key twice */
    o.key = NULL;
    write_file(path, "short:abc\n", 0600);
    assert_int_equal(g3n_http_auth_create(&auth, &o, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "line 1"));
    write_file(path, "a:" KEY_A "\nb:" KEY_A "\n", 0600);
    assert_int_equal(g3n_http_auth_create(&auth, &o, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "same key"));
    write_file(path, "# nothing\n", 0600);
    assert_int_equal(g3n_http_auth_create(&auth, &o, &err), G3N_ERR);
    g3n_test_remove_tree(dir);
}

static void test_per_key_limits(void **state)
{
    (void)state;
    g3n_http_auth_options o = {.key = KEY_A, .requests_per_minute = 3, .max_generations = 1};
    g3n_http_auth *auth;
    g3n_error err = {{0}};
    assert_int_equal(g3n_http_auth_create(&auth, &o, &err), G3N_OK);
    int k = g3n_http_auth_identify(auth, "Bearer " KEY_A);
    for (int i = 0; i < 3; i++)
        assert_int_equal(g3n_http_auth_admit_request(auth, k), 0);
    int wait = g3n_http_auth_admit_request(auth, k);
    assert_true(wait >= 1 && wait <= 20); /* one token every 20 s */
    assert_int_equal(g3n_http_auth_begin_generation(auth, k), 0);
    assert_true(g3n_http_auth_begin_generation(auth, k) > 0);
    g3n_http_auth_end_generation(auth, k);
    assert_int_equal(g3n_http_auth_begin_generation(auth, k), 0);
    g3n_http_auth_end_generation(auth, k);
    char *text = g3n_http_auth_metrics(auth);
    assert_non_null(strstr(text, "g3n_http_key_limited_total{key=\"default\",limit=\"requests_per_minute\"} 1"));
    assert_non_null(strstr(text, "g3n_http_key_limited_total{key=\"default\",limit=\"generations\"} 1"));
    assert_non_null(strstr(text, "g3n_http_key_requests_total{key=\"default\"} 3"));
    free(text);
    g3n_http_auth_free(auth);
}

static void test_random_ids(void **state)
{
    (void)state;
    char a[64], b[64];
    assert_int_equal(g3n_http_random_id(a, sizeof(a), "live-"), G3N_OK);
    assert_int_equal(g3n_http_random_id(b, sizeof(b), "live-"), G3N_OK);
    assert_int_equal(strlen(a), 5 + 32);
    assert_int_equal(strspn(a + 5, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    assert_int_equal(g3n_http_random_id(a, 20, "live-"), G3N_ERR); /* too small: refused, not truncated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_file_and_bearer_check),
        cmocka_unit_test(test_per_key_limits),
        cmocka_unit_test(test_random_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
