/* The HTTP API's C-level pieces: base64 and data: URLs, multipart bodies,
 * stop strings over pieces split anywhere, OpenAI request parsing (items,
 * media, parameters, and the error object's status/param/code), the
 * transcription prompt, Prometheus text, and the server itself with no
 * workers behind it (health and chats answer 503 with Retry-After, nothing
 * hangs). The demo model end to end is tests/http/run.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
#include <time.h>
#include <errno.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "config.h"
#include "http_codec.h"
#include "http_metrics.h"
#include "http_multipart.h"
#include "http_request.h"
#include "http_server.h"
#include "http_stop.h"
#include "pipeline.h"
#include "test_util.h"
#include "tokenizer.h"
#include "transport.h"
#include "weights.h"
#include "wire.h"

static void decode_ok(const char *text, const char *expected, size_t expected_size)
{
    uint8_t *bytes;
    size_t size;
    g3n_error err;
    assert_int_equal(g3n_base64_decode(text, strlen(text), 0, "t", &bytes, &size, &err), G3N_OK);
    assert_int_equal(size, expected_size);
    assert_memory_equal(bytes, expected, expected_size);
    free(bytes);
}

static void test_base64(void **state)
{
    (void)state;
    decode_ok("", "", 0);
    decode_ok("Zg==", "f", 1);
    decode_ok("Zm8=", "fo", 2);
    decode_ok("Zm9vYmFy", "foobar", 6);
    decode_ok("Zm9v\r\nYmE", "fooba", 5);   /* line breaks, no padding */
    decode_ok("_-8", "\xff\xef", 2);        /* URL-safe alphabet */
    decode_ok("//8=", "\xff\xff", 2);
    uint8_t *bytes;
    size_t size;
    g3n_error err;
    assert_int_equal(g3n_base64_decode("Zm9v*", 5, 0, "audio", &bytes, &size, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "offset 4"));
    assert_int_equal(g3n_base64_decode("Zm9vY", 5, 0, "audio", &bytes, &size, &err), G3N_ERR); /* 6 spare bits */
    assert_int_equal(g3n_base64_decode("Zg==Zg", 6, 0, "audio", &bytes, &size, &err), G3N_ERR);
    assert_int_equal(g3n_base64_decode("Zm9vYmFy", 8, 5, "audio", &bytes, &size, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "limit"));
}

static void test_data_url(void **state)
{
    (void)state;
    uint8_t *bytes;
    size_t size;
    char mime[64];
    g3n_error err;
    assert_int_equal(g3n_data_url_decode("data:image/png;base64,aGk=", 0, "u", mime, sizeof(mime), &bytes, &size, &err),
                     G3N_OK);
    assert_string_equal(mime, "image/png");
    assert_int_equal(size, 2);
    assert_memory_equal(bytes, "hi", 2);
    free(bytes);
    assert_int_equal(g3n_data_url_decode("data:,a%20b%41", 0, "u", mime, sizeof(mime), &bytes, &size, &err), G3N_OK);
    assert_string_equal(mime, "");
    assert_int_equal(size, 4);
    assert_memory_equal(bytes, "a bA", 4);
    free(bytes);
    assert_int_equal(g3n_data_url_decode("data:image/png;base64", 0, "u", mime, sizeof(mime), &bytes, &size, &err),
                     G3N_ERR);
    assert_int_equal(g3n_data_url_decode("data:,%4", 0, "u", mime, sizeof(mime), &bytes, &size, &err), G3N_ERR);
    assert_int_equal(g3n_data_url_decode("http://x", 0, "u", mime, sizeof(mime), &bytes, &size, &err), G3N_ERR);
}

static const char multipart_body[] = "preamble\r\n"
                                     "--XyZ\r\n"
                                     "Content-Disposition: form-data; name=\"model\"\r\n"
                                     "\r\n"
                                     "gemma\r\n"
                                     "--XyZ\r\n"
                                     "Content-Disposition: form-data; name=\"file\"; filename=\"a b.wav\"\r\n"
                                     "Content-Type: audio/wav\r\n"
                                     "\r\n"
                                     "RIFF\r\n--Xy\0\r\nend\r\n"
                                     "--XyZ--\r\n";

static void test_multipart(void **state)
{
    (void)state;
    g3n_multipart form;
    g3n_error err;
    size_t size = sizeof(multipart_body) - 1;
    assert_int_equal(g3n_multipart_parse("multipart/form-data; boundary=\"XyZ\"", (const uint8_t *)multipart_body, size,
                                         &form, &err),
                     G3N_OK);
    assert_int_equal(form.count, 2);
    const g3n_multipart_part *model = g3n_multipart_find(&form, "model");
    assert_non_null(model);
    assert_int_equal(model->size, 5);
    assert_memory_equal(model->data, "gemma", 5);
    const g3n_multipart_part *file = g3n_multipart_find(&form, "file");
    assert_non_null(file);
    assert_string_equal(file->filename, "a b.wav");
    assert_string_equal(file->content_type, "audio/wav");
    assert_int_equal(file->size, 16); /* CRLF, "--" and a NUL inside the data stay data */
    assert_memory_equal(file->data, "RIFF\r\n--Xy\0\r\nend", 16);
    assert_null(g3n_multipart_find(&form, "prompt"));
    /* errors */
    assert_int_equal(g3n_multipart_parse("application/json", (const uint8_t *)multipart_body, size, &form, &err), G3N_ERR);
    assert_int_equal(g3n_multipart_parse("multipart/form-data", (const uint8_t *)multipart_body, size, &form, &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "boundary"));
    assert_int_equal(g3n_multipart_parse("multipart/form-data; boundary=XyZ", (const uint8_t *)multipart_body,
                                         size - 12, &form, &err),
                     G3N_ERR); /* truncated */
    assert_int_equal(g3n_multipart_parse("multipart/form-data; boundary=QQ", (const uint8_t *)multipart_body, size,
                                         &form, &err),
                     G3N_ERR);
}

/* The earliest start of a stop string lying wholly in text[0..end), or -1. */
static long earliest_stop(const char *text, size_t end, const char *const *stops, int count)
{
    long best = -1;
    for (int s = 0; s < count; s++) {
        size_t n = strlen(stops[s]);
        for (size_t i = 0; i + n <= end; i++)
            if (memcmp(text + i, stops[s], n) == 0) {
                if (best < 0 || (long)i < best)
                    best = (long)i;
                break;
            }
    }
    return best;
}

/* Feeds text in pieces split at random places. The stream stops at the first
 * piece that completes a stop string, cut before the earliest one complete by
 * then; nothing shown before that may reach into a stop string. */
static void stop_case(const char *text, const char *const *stops, int count, uint64_t seed)
{
    g3n_stop_matcher m;
    assert_int_equal(g3n_stop_init(&m, stops, count, NULL), G3N_OK);
    size_t n = strlen(text);
    char out[512] = "";
    size_t length = 0, i = 0;
    long cut = -1;
    uint64_t x = seed * 6364136223846793005ull + 1;
    while (i < n && cut < 0) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t piece = 1 + (size_t)((x >> 33) % 4);
        if (piece > n - i)
            piece = n - i;
        const char *shown;
        size_t shown_length;
        int rc = g3n_stop_push(&m, text + i, piece, &shown, &shown_length, NULL);
        memcpy(out + length, shown, shown_length);
        length += shown_length;
        i += piece;
        cut = earliest_stop(text, i, stops, count);
        assert_int_equal(rc, cut >= 0 ? 1 : 0);
        /* what is shown never includes a byte that may begin a stop string */
        long full = earliest_stop(text, n, stops, count);
        if (cut < 0 && full >= 0)
            assert_true((long)length <= full);
    }
    if (cut < 0) {
        const char *shown;
        size_t shown_length;
        g3n_stop_flush(&m, &shown, &shown_length);
        memcpy(out + length, shown, shown_length);
        length += shown_length;
        cut = (long)n;
    }
    assert_int_equal(length, (size_t)cut);
    assert_memory_equal(out, text, (size_t)cut);
    g3n_stop_free(&m);
}

static void test_stop_strings(void **state)
{
    (void)state;
    const char *one[] = {"END"};
    const char *two[] = {"lo W", "o"};
    const char *nested[] = {"abcabd", "cab"};
    const char *unicode[] = {"\xc3\xa9t\xc3\xa9"};
    for (uint64_t seed = 1; seed <= 40; seed++) {
        stop_case("no stop string in here at all", one, 1, seed);
        stop_case("it goes on, EN, E, and then END and more END", one, 1, seed);
        stop_case("Hello World", two, 2, seed);        /* 'o' completes first (or 'lo W' in the same piece) */
        stop_case("xxabcabcabdyy", nested, 2, seed);   /* 'cab' completes before 'abcabd' */
        stop_case("un \xc3\xa9t\xc3\xa9 chaud", unicode, 1, seed);
        stop_case("pass-through", NULL, 0, seed);
    }
    /* the held-back tail comes out when the stream ends */
    g3n_stop_matcher m;
    assert_int_equal(g3n_stop_init(&m, one, 1, NULL), G3N_OK);
    const char *shown;
    size_t shown_length;
    assert_int_equal(g3n_stop_push(&m, "abcEN", 5, &shown, &shown_length, NULL), 0);
    assert_int_equal(shown_length, 3);
    g3n_stop_flush(&m, &shown, &shown_length);
    assert_int_equal(shown_length, 2);
    assert_memory_equal(shown, "EN", 2);
    g3n_stop_free(&m);
}

static int parse(const char *json, g3n_http_chat_request *r, g3n_http_error *e)
{
    g3n_http_limits limits = {NULL, 1 << 20, 4, 16};
    return g3n_http_parse_chat(json, strlen(json), &limits, r, e);
}

static void test_parse_chat(void **state)
{
    (void)state;
    g3n_http_chat_request r;
    g3n_http_error e;
    const char *json =
        "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tokens\":5,"
        "\"max_completion_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"seed\":-3,"
        "\"stop\":[\"a\",\"\",\"bc\"],\"n\":1,\"user\":\"ignored\",\"messages\":["
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,aGk=\"}},"
        "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AAEC\",\"format\":\"wav\"}},"
        "{\"type\":\"text\",\"text\":\"what?\"}]},"
        "{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"more\"}]}";
    assert_int_equal(parse(json, &r, &e), G3N_OK);
    assert_int_equal(r.message_count, 4);
    assert_string_equal(r.messages[0].role, "system");
    assert_int_equal(r.messages[0].item_count, 1);
    assert_string_equal(r.messages[0].items[0].text, "one\ntwo");
    assert_string_equal(r.messages[1].role, "user");
    assert_int_equal(r.messages[1].item_count, 3);
    assert_int_equal(r.messages[1].items[0].type, G3N_CHAT_IMAGE);
    assert_int_equal(r.messages[1].items[1].type, G3N_CHAT_AUDIO);
    assert_string_equal(r.messages[1].items[2].text, "what?");
    assert_string_equal(r.messages[2].role, "model");
    assert_string_equal(r.messages[2].items[0].text, "");
    assert_string_equal(r.messages[3].items[0].text, "more");
    assert_int_equal(r.media_count, 2);
    assert_int_equal(r.media[0].kind, G3N_MEDIA_IMAGE);
    assert_int_equal(r.media[0].size, 2);
    assert_memory_equal(r.media[0].bytes, "hi", 2);
    assert_int_equal(r.media[1].kind, G3N_MEDIA_AUDIO);
    assert_int_equal(r.media[1].size, 3);
    assert_memory_equal(r.media[1].bytes, "\x00\x01\x02", 3);
    assert_string_equal(r.model, "m");
    assert_true(r.stream && r.include_usage);
    assert_int_equal(r.max_tokens, 7); /* max_completion_tokens wins */
    assert_true(r.has_temperature);
    assert_true(r.temperature == 0.5 && r.top_p == 0.9 && r.top_k == 40 && r.min_p == 0.05);
    assert_true(r.has_seed);
    assert_true(r.seed == (uint64_t)-3);
    assert_int_equal(r.stop_count, 2);
    assert_string_equal(r.stops[1], "bc");
    g3n_http_chat_request_free(&r);

    /* the error object: status, param, code */
    struct {
        const char *json;
        int status;
        const char *param, *code;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}", 400, "", "invalid_json"},
        {"{\"messages\":[]}", 400, "messages", "invalid_value"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}", 400, "messages[0].content[0]",
         "unsupported_content_type"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}", 400,
         "messages[0].content[0].text", "invalid_value"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"system\",\"content\":\"b\"}]}", 400,
         "messages[1].role", "invalid_value"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"/etc/passwd\"}}]}]}",
         400, "messages[0].content[0].image_url.url", "invalid_url"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AA\","
         "\"format\":\"xm\"}}]}]}",
         400, "messages[0].content[0].input_audio.format", "invalid_value"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":0}", 400, "top_p", "invalid_value"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", 400, "max_tokens", "invalid_type"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop",
         "invalid_value"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", 400, "stream", "invalid_type"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&e, 0, sizeof(e));
        assert_int_equal(parse(cases[i].json, &r, &e), G3N_ERR);
        assert_int_equal(e.status, cases[i].status);
        assert_string_equal(e.param, cases[i].param);
        assert_string_equal(e.code, cases[i].code);
        assert_true(strlen(e.message) > 10);
        assert_null(r.json); /* nothing left to free */
    }
    /* more media than allowed: 5 images with a limit of 4 */
    char many[2048] = "{\"messages\":[{\"role\":\"user\",\"content\":[";
    for (int i = 0; i < 5; i++)
        strcat(many, i ? ",{\"type\":\"image_url\",\"image_url\":\"data:,x\"}" : "{\"type\":\"image_url\",\"image_url\":\"data:,x\"}");
    strcat(many, "]}]}");
    assert_int_equal(parse(many, &r, &e), G3N_ERR);
    assert_string_equal(e.code, "too_many_media");
}

/* A path outside --allow-dir gets the same answer whether it exists or not
 * (different answers were an existence oracle); a file inside is read. */
static void test_allow_dir_no_oracle(void **state)
{
    (void)state;
    char dir[1024], allowed[1100], inside[1200], outside[1200], missing[1200], message[2][1024];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(allowed, sizeof(allowed), "%s/allowed", dir);
    assert_int_equal(mkdir(allowed, 0700), 0);
    snprintf(inside, sizeof(inside), "%s/in.png", allowed);
    snprintf(outside, sizeof(outside), "%s/secret.png", dir);
    snprintf(missing, sizeof(missing), "%s/nothing.png", dir);
    FILE *f = fopen(inside, "wb");
    fputs("x", f);
    fclose(f);
    f = fopen(outside, "wb");
    fputs("x", f);
    fclose(f);
    g3n_http_limits limits = {allowed, 1 << 20, 16, 256};
    const char *paths[3] = {outside, missing, inside};
    for (int i = 0; i < 3; i++) {
        char json[2048];
        snprintf(json, sizeof(json),
                 "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
                 "{\"url\":\"%s\"}}]}]}",
                 paths[i]);
        g3n_http_chat_request r;
        g3n_http_error e;
        memset(&e, 0, sizeof(e));
        int rc = g3n_http_parse_chat(json, strlen(json), &limits, &r, &e);
        if (i == 2) {
            assert_int_equal(rc, G3N_OK);
            g3n_http_chat_request_free(&r);
            break;
        }
        assert_int_equal(rc, G3N_ERR);
        assert_int_equal(e.status, 400);
        /* the message without the path itself */
        char *at = strstr(e.message, paths[i]);
        assert_non_null(at);
        memmove(at, at + strlen(paths[i]), strlen(at + strlen(paths[i])) + 1);
        snprintf(message[i], sizeof(message[i]), "%s|%s", e.code ? e.code : "", e.message);
    }
    assert_string_equal(message[0], message[1]);
    g3n_test_remove_tree(dir);
}

static void test_parse_transcription(void **state)
{
    (void)state;
    const char body[] = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\nRIFFdata\r\n"
                        "--b\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nFrench\r\n"
                        "--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\ntext\r\n--b--\r\n";
    g3n_http_chat_request r;
    g3n_http_error e;
    assert_int_equal(g3n_http_parse_transcription("multipart/form-data; boundary=b", (const uint8_t *)body,
                                                  sizeof(body) - 1, NULL, &r, &e),
                     G3N_OK);
    assert_int_equal(r.message_count, 1);
    assert_string_equal(r.messages[0].role, "user");
    assert_int_equal(r.messages[0].item_count, 2);
    assert_int_equal(r.messages[0].items[0].type, G3N_CHAT_AUDIO);
    assert_string_equal(r.messages[0].items[1].text, "Transcribe this audio into French.");
    assert_int_equal(r.media_count, 1);
    assert_int_equal(r.media[0].size, 8);
    assert_memory_equal(r.media[0].bytes, "RIFFdata", 8);
    assert_true(r.transcription && r.response_text);
    g3n_http_chat_request_free(&r);
    const char no_file[] = "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b--\r\n";
    assert_int_equal(g3n_http_parse_transcription("multipart/form-data; boundary=b", (const uint8_t *)no_file,
                                                  sizeof(no_file) - 1, NULL, &r, &e),
                     G3N_ERR);
    assert_string_equal(e.param, "file");
}

static void test_metrics_text(void **state)
{
    (void)state;
    g3n_http_metrics *m;
    assert_int_equal(g3n_http_metrics_create(&m, NULL), G3N_OK);
    g3n_http_metrics_request(m, G3N_ENDPOINT_CHAT, 200);
    g3n_http_metrics_request(m, G3N_ENDPOINT_CHAT, 200);
    g3n_http_metrics_request(m, G3N_ENDPOINT_CHAT, 429);
    g3n_http_metrics_rejected(m, 0);
    g3n_http_metrics_tokens(m, 30);
    g3n_http_metrics_first_token(m, 0.003);
    g3n_http_metrics_first_token(m, 0.2);
    g3n_http_metrics_first_token(m, 500.0);
    g3n_http_metrics_stage(m, G3N_STAGE_DECODE_STEP, 0.004);
    g3n_http_gauges g = {3, 2, {0}};
    g.live_workers[G3N_ROLE_DECODER] = 2;
    char *text;
    size_t size;
    assert_int_equal(g3n_http_metrics_render(m, &g, &text, &size, NULL), G3N_OK);
    assert_int_equal(strlen(text), size);
    assert_non_null(strstr(text, "g3n_http_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"} 2\n"));
    assert_non_null(strstr(text, "g3n_http_requests_total{endpoint=\"/v1/chat/completions\",code=\"429\"} 1\n"));
    assert_non_null(strstr(text, "g3n_http_rejected_total{reason=\"queue_full\"} 1\n"));
    assert_non_null(strstr(text, "g3n_generated_tokens_total 30\n"));
    assert_non_null(strstr(text, "g3n_generated_tokens_per_second 3.000\n")); /* 30 tokens over the 10 s window */
    /* cumulative buckets: 0.003 is in le=0.005, 0.2 in le=0.25, 500 only in +Inf */
    assert_non_null(strstr(text, "g3n_time_to_first_token_seconds_bucket{le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(text, "g3n_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "g3n_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n"));
    assert_non_null(strstr(text, "g3n_time_to_first_token_seconds_bucket{le=\"120\"} 2\n"));
    assert_non_null(strstr(text, "g3n_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "g3n_time_to_first_token_seconds_count 3\n"));
    assert_non_null(strstr(text, "g3n_role_latency_seconds_count{role=\"decoder\",stage=\"decode_step\"} 1\n"));
    assert_non_null(strstr(text, "\ng3n_generations_active 3\n"));
    assert_non_null(strstr(text, "\ng3n_queue_depth 2\n"));
    assert_non_null(strstr(text, "g3n_workers{role=\"decoder\"} 2\n"));
    free(text);
    g3n_http_metrics_free(m);
}

static void test_server_without_workers(void **state)
{
    (void)state;
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 300;
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, "inproc://test-http", &transport, 0, 0);
    g3n_http_options options = g3n_http_default_options();
    options.model_name = "test-model";
    options.retry_after_seconds = 7;
    int port;
    g3n_http_server *server = g3n_test_http_start(&stack, &options, &port);
    static char response[65536];

    assert_int_equal(g3n_test_http_get(port, "/health", response, sizeof(response)), 503);
    assert_non_null(strstr(response, "Retry-After: 7"));
    assert_non_null(strstr(response, "\"decoder\":0"));
    assert_int_equal(g3n_test_http_get(port, "/v1/models", response, sizeof(response)), 200);
    assert_non_null(strstr(response, "\"id\":\"test-model\""));
    assert_int_equal(g3n_test_http_post(port, "/v1/chat/completions",
                                        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}",
                                        response, sizeof(response)),
                     503);
    assert_non_null(strstr(response, "Retry-After: 7"));
    assert_non_null(strstr(response, "\"code\":\"service_unavailable\""));
    assert_non_null(strstr(response, "ERROR_NO_WORKER"));
    /* a declared body over the limit is refused before it is read */
    assert_int_equal(g3n_test_http_request(port,
                                           "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                           "Content-Length: 999999999999\r\n\r\n",
                                           response, sizeof(response), NULL),
                     413);
    /* the refused chat's job ends on its own thread after the answer went out: wait (bounded) for it */
    int active = -1, queued = -1, jobs = -1;
    for (int attempt = 0; attempt < 200; attempt++) {
        g3n_http_server_counts(server, &active, &queued, &jobs);
        if (active + queued + jobs == 0)
            break;
        usleep(10000);
    }
    assert_int_equal(active + queued + jobs, 0);
    g3n_http_server_stop(server);
    g3n_test_stack_close(&stack);
}

/* A vision worker that answers tokens of the wrong shape (finite numbers). */
static int wrong_shape_vision(void *user, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err)
{
    (void)user;
    (void)request;
    static const float values[4 * 8] = {0.5f};
    G3n__Envelope env;
    G3n__EncodeImageReply reply;
    g3n__envelope__init(&env);
    g3n__encode_image_reply__init(&reply);
    g3n_wire_tensor tokens;
    const int64_t shape[2] = {4, 8};
    g3n_wire_tensor_borrow(&tokens, G3N_DTYPE_F32, 2, shape, values);
    reply.tokens = &tokens.message;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE_REPLY;
    env.encode_image_reply = &reply;
    return g3n_worker_call_send(call, &env, 0, err);
}

/* A bad tensor from a worker is the server's fault: 502 naming the worker's
 * role (it reached the client as 400 invalid_request_error); an empty image
 * is the client's: 400 saying so. */
static void test_server_with_rogue_worker(void **state)
{
    (void)state;
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 300;
    const char *endpoints[1] = {"inproc://test-http-rogue"};
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, endpoints[0], &transport, 0, 0);
    g3n_broker *broker = stack.broker;
    g3n_error err;
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = G3N_ROLE_VISION_ENCODER;
    wo.endpoint = endpoints[0];
    wo.model_id = "rogue";
    wo.capacity = 1;
    wo.zmq_context = g3n_broker_context(broker);
    wo.transport = transport;
    g3n_worker *worker = NULL;
    assert_int_equal(g3n_worker_start(&worker, &wo, wrong_shape_vision, NULL, &err), G3N_OK);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_VISION_ENCODER, 1, 5000, &err), G3N_OK);
    int port;
    g3n_http_server *server = g3n_test_http_start(&stack, NULL, &port);
    static char response[65536];
    const char *bodies[2] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"data:image/png;base64,AQID\"}},{\"type\":\"text\",\"text\":\"hi\"}]}],\"max_tokens\":2}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"data:image/png;base64,\"}},{\"type\":\"text\",\"text\":\"hi\"}]}],\"max_tokens\":2}"};
    for (int i = 0; i < 2; i++) {
        int status = g3n_test_http_post(port, "/v1/chat/completions", bodies[i], response, sizeof(response));
        if (i == 0 && (status != 502 || !strstr(response, "vision-encoder") || !strstr(response, "server_error")))
            fail_msg("a worker's bad tokens: %d %s", status, response);
        if (i == 1 && (status != 400 || !strstr(response, "no bytes")))
            fail_msg("an empty image: %d %s", status, response);
    }
    for (int attempt = 0; attempt < 200; attempt++) {
        int active, queued, jobs;
        g3n_http_server_counts(server, &active, &queued, &jobs);
        if (active + queued + jobs == 0)
            break;
        usleep(10000);
    }
    g3n_http_server_stop(server);
    g3n_worker_stop(worker);
    g3n_test_stack_close(&stack);
}

/* HTTP edges: a body over the limit that the client sends whole before
 * reading gets its 413 (it saw a reset: "Connection error"); a URL with %00
 * does not resolve to the URL before it. */
static void test_server_edges(void **state)
{
    (void)state;
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 300;
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, "inproc://test-http-edges", &transport, 0, 0);
    g3n_http_options options = g3n_http_default_options();
    options.max_body_bytes = 64 << 10;
    int port;
    g3n_http_server *server = g3n_test_http_start(&stack, &options, &port);
    static char response[65536];
    const size_t body = 4u << 20;
    char *request = malloc(body + 512);
    int head = snprintf(request, 512,
                        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                        body);
    memset(request + head, 'x', body);
    request[head + (int)body] = '\0';
    int status = g3n_test_http_request(port, request, response, sizeof(response), NULL);
    if (status != 413 || !strstr(response, "request_too_large"))
        fail_msg("a 4 MiB body over a 64 KiB limit: %d %.300s", status, response);
    free(request);
    assert_int_equal(g3n_test_http_get(port, "/health", response, sizeof(response)), 503);
    assert_int_equal(g3n_test_http_get(port, "/health%00junk", response, sizeof(response)), 404);
    g3n_http_server_stop(server);
    g3n_test_stack_close(&stack);
}

/* A socket to the server from `source` (127.0.0.x), with a receive timeout. */
static int open_from(const char *source, int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    inet_pton(AF_INET, source, &address.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0)
        return -1;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 when the server has closed fd (EOF or reset) within timeout_ms. */
static int closed_by_server(int fd, int timeout_ms)
{
    char byte;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Slow clients: 70 sockets from one address that never finish their headers
 * took every connection slot (--max-connections 64) and /health timed out;
 * now one address holds at most 3/4 of the slots and a request must be in
 * within its deadline (request_seconds, plus time for its body at a minimum
 * rate), so the half-sent sockets are cut off and a short body does not hold
 * its connection for the idle timeout. */
static void test_server_slow_clients(void **state)
{
    (void)state;
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 300;
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, "inproc://test-http-slow", &transport, 0, 0);
    g3n_http_options options = g3n_http_default_options();
    options.max_connections = 64;
    options.request_seconds = 2;
    int port;
    g3n_http_server *server = g3n_test_http_start(&stack, &options, &port);
    enum { SLOW = 70 };
    int slow[SLOW];
    const char partial[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < SLOW; i++) {
        slow[i] = open_from("127.0.0.1", port, 1000);
        if (slow[i] >= 0)
            send(slow[i], partial, sizeof(partial) - 1, MSG_NOSIGNAL);
    }
    usleep(200000);
    /* another client still gets its answer */
    int fd = open_from("127.0.0.2", port, 5000);
    assert_true(fd >= 0);
    const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(fd, health, sizeof(health) - 1, MSG_NOSIGNAL);
    char response[4096];
    ssize_t n = recv(fd, response, sizeof(response) - 1, 0);
    close(fd);
    response[n > 0 ? n : 0] = '\0';
    if (n <= 0 || strncmp(response, "HTTP/1.1 503", 12) != 0)
        fail_msg("/health with 70 half-sent sockets open: '%.100s'", response);
    /* the half-sent sockets are cut off at their deadline (2 s) */
    for (int i = 0; i < SLOW; i++)
        if (slow[i] >= 0) {
            if (!closed_by_server(slow[i], 4000))
                fail_msg("half-sent socket %d still open after its deadline", i);
            close(slow[i]);
        }
    /* a body shorter than its Content-Length: cut off at its deadline, not the idle timeout */
    fd = open_from("127.0.0.1", port, 5000);
    const char short_body[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              "Content-Length: 100\r\n\r\n{\"messages\"";
    send(fd, short_body, sizeof(short_body) - 1, MSG_NOSIGNAL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true(closed_by_server(fd, 6000));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    assert_true((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec) < 4.0);
    g3n_http_server_stop(server);
    g3n_test_stack_close(&stack);
}

/* A client that leaves mid-stream is counted and logged 499, not 200. */
static void test_stream_client_gone(void **state)
{
    (void)state;
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, "inproc://test-http-gone", NULL, (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER),
                        5);
    int port;
    g3n_http_server *server = g3n_test_http_start(&stack, NULL, &port);
    const char *body = "{\"stream\":true,\"max_tokens\":300,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char request[512];
    snprintf(request, sizeof(request),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    int fd = open_from("127.0.0.1", port, 30000);
    assert_true(fd >= 0);
    send(fd, request, strlen(request), MSG_NOSIGNAL);
    char first[256];
    assert_true(recv(fd, first, sizeof(first), 0) > 0); /* the stream began */
    close(fd);
    for (int attempt = 0; attempt < 300; attempt++) {
        int active, queued, jobs;
        g3n_http_server_counts(server, &active, &queued, &jobs);
        if (active + queued + jobs == 0)
            break;
        usleep(100000);
    }
    static char metrics[65536];
    assert_int_equal(g3n_test_http_get(port, "/metrics", metrics, sizeof(metrics)), 200);
    if (!strstr(metrics, "g3n_http_requests_total{endpoint=\"/v1/chat/completions\",code=\"499\"} 1") ||
        strstr(metrics, "g3n_http_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"}"))
        fail_msg("a stream the client left is not counted 499:\n%s", metrics);
    g3n_http_server_stop(server);
    g3n_test_stack_close(&stack);
}

/* A chat completion's id carries 128 random bits (as live session ids, issue 17): it was the server's
 * start time and a counter, so one id told the next. */
static void test_chat_ids_unguessable(void **state)
{
    (void)state;
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, "inproc://test-http-ids", NULL, (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER),
                        5);
    int port;
    g3n_http_server *server = g3n_test_http_start(&stack, NULL, &port);
    static char response[65536];
    char ids[2][64];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g3n_test_http_post(port, "/v1/chat/completions",
                                            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1}",
                                            response, sizeof(response)),
                         200);
        const char *at = strstr(response, "\"id\":\"chatcmpl-");
        assert_non_null(at);
        at += strlen("\"id\":\"");
        const size_t length = strcspn(at, "\"");
        assert_int_equal(length, strlen("chatcmpl-") + 32);
        assert_int_equal(strspn(at + 9, "0123456789abcdef"), 32);
        snprintf(ids[i], sizeof(ids[i]), "%.*s", (int)length, at);
    }
    print_message("%s, %s\n", ids[0], ids[1]);
    /* not a counter: the two differ in more than their last few digits */
    int differ = 0;
    for (int k = 9; k < 9 + 24; k++)
        differ += ids[0][k] != ids[1][k];
    assert_true(differ > 0);
    g3n_http_server_stop(server);
    g3n_test_stack_close(&stack);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_data_url),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_parse_chat),
        cmocka_unit_test(test_parse_transcription),
        cmocka_unit_test(test_allow_dir_no_oracle),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_server_without_workers),
        cmocka_unit_test(test_server_with_rogue_worker),
        cmocka_unit_test(test_server_edges),
        cmocka_unit_test(test_server_slow_clients),
        cmocka_unit_test(test_stream_client_gone),
        cmocka_unit_test(test_chat_ids_unguessable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
