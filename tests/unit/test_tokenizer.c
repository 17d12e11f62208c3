/* The tokenizer: the BPE rules on a hand-written vocabulary, the streaming
 * detokenizer on every decode case of tests/fixtures/tokenizer, a fuzz-style
 * decode(encode(s)) == s on random Unicode, encode speed on 1 MB, and bad
 * tokenizer.json files (malformed, truncated) as clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "json_util.h"
#include "test_util.h"
#include "tokenizer.h"

static g3n_tokenizer *gemma; /* the real vocabulary, loaded once */
static char *gemma_json;     /* its bytes, for the truncation test */
static size_t gemma_json_size;

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int setup(void **state)
{
    (void)state;
    char path[1024];
    g3n_error err = {{0}};
    g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof(path));
    double start = seconds_now();
    if (g3n_tokenizer_load(&gemma, path, &err) != G3N_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    fprintf(stderr, "tokenizer.json loaded in %.3f s\n", seconds_now() - start);
    if (g3n_read_file(path, &gemma_json, &gemma_json_size, &err) != G3N_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    g3n_tokenizer_free(gemma);
    free(gemma_json);
    return 0;
}

static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static g3n_tokenizer *load_text(const char *json, g3n_error *err)
{
    g3n_tokenizer *t = NULL;
    if (g3n_tokenizer_load_from_memory(&t, json, strlen(json), "test.json", err) != G3N_OK)
        return NULL;
    return t;
}

static void assert_encodes(const g3n_tokenizer *t, const char *text, int add_bos, const int32_t *expected,
                           int64_t count)
{
    g3n_token_ids ids = {0};
    g3n_error err = {{0}};
    assert_int_equal(g3n_tokenizer_encode(t, text, strlen(text), add_bos, &ids, &err), G3N_OK);
    assert_int_equal(ids.count, count);
    for (int64_t i = 0; i < count; i++)
        assert_int_equal(ids.ids[i], expected[i]);
    g3n_token_ids_free(&ids);
}

/* A tiny BPE: merges by rank, ties leftmost, byte fallback, fused unk,
 * added tokens (longest match), the normalizer and the post-processor. */
static const char tiny_json[] =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true},"
    "{\"id\":9,\"content\":\"<x>\",\"special\":false},"
    "{\"id\":10,\"content\":\"<xy>\",\"special\":false}],"
    "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"_\"},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
    "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"_\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":false,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"a\":2,\"b\":3,\"aa\":4,\"ab\":5,\"aab\":6,\"_\":7,\"\\u00e9\":8,\"<x>\":9,"
    "\"<xy>\":10},"
    "\"merges\":[[\"a\",\"a\"],[\"a\",\"b\"],[\"aa\",\"b\"]]}}";

static void test_tiny_bpe_rules(void **state)
{
    (void)state;
    g3n_error err = {{0}};
    g3n_tokenizer *t = load_text(tiny_json, &err);
    if (!t)
        fprintf(stderr, "%s\n", err.message);
    assert_non_null(t);
    const int32_t aab[] = {1, 6};          /* aa first (rank 0), then aa+b (rank 2) */
    assert_encodes(t, "aab", 1, aab, 2);
    const int32_t aaa[] = {4, 2};          /* equal ranks: the leftmost pair merges first */
    assert_encodes(t, "aaa", 0, aaa, 2);
    const int32_t abab[] = {5, 5};
    assert_encodes(t, "abab", 0, abab, 2);
    const int32_t unk[] = {2, 0, 3};       /* "cd" unknown: one fused <unk> */
    assert_encodes(t, "acdb", 0, unk, 3);
    const int32_t space[] = {2, 7, 8};     /* the normalizer turns " " into "_" */
    assert_encodes(t, "a \xc3\xa9", 0, space, 3);
    const int32_t added[] = {2, 10, 9, 0}; /* longest added token first; "y" alone is unknown */
    assert_encodes(t, "a<xy><x>y", 0, added, 4);
    char *text = NULL;
    const int32_t ids[] = {1, 5, 7, 6, 999, 10};
    assert_int_equal(g3n_tokenizer_decode(t, ids, 6, 0, &text, NULL, &err), G3N_OK);
    assert_string_equal(text, "<s>ab aab<xy>"); /* unknown id 999 is dropped */
    free(text);
    assert_int_equal(g3n_tokenizer_decode(t, ids, 6, 1, &text, NULL, &err), G3N_OK);
    assert_string_equal(text, "ab aab<xy>");    /* <s> is special, <xy> is not */
    free(text);
    assert_int_equal(g3n_tokenizer_bos_id(t), 1);
    assert_int_equal(g3n_tokenizer_piece_to_id(t, "aab", 3), 6);
    assert_int_equal(g3n_tokenizer_piece_to_id(t, "zz", 2), -1);
    g3n_tokenizer_free(t);
}

static void test_gemma_basics(void **state)
{
    (void)state;
    const int32_t hello[] = {2, 9259, 1902};
    assert_encodes(gemma, "Hello world", 1, hello, 3);
    const int32_t cr[] = {1257, 236770, 251, 107, 1257, 236778}; /* "\r" falls back to <0x0D> */
    assert_encodes(gemma, "line1\r\nline2", 0, cr, 6);
    assert_int_equal(g3n_tokenizer_id_count(gemma), 262145);
    assert_true(g3n_tokenizer_is_special(gemma, 106));
    assert_false(g3n_tokenizer_is_special(gemma, 107));
    size_t n = 0;
    assert_string_equal(g3n_tokenizer_piece(gemma, 1902, &n), "\xe2\x96\x81world");
    assert_int_equal(n, 8);
    g3n_token_ids ids = {0};
    g3n_error err = {{0}};
    assert_int_equal(g3n_tokenizer_encode(gemma, "ok\xff", 3, 1, &ids, &err), G3N_ERR); /* invalid UTF-8 */
    assert_non_null(strstr(err.message, "UTF-8"));
    g3n_token_ids_free(&ids);
}

/* Streams ids one at a time; every chunk must be valid UTF-8; returns the concatenation. */
static char *stream(const g3n_tokenizer *t, const int32_t *ids, int64_t count, int skip, size_t *out_length)
{
    g3n_detokenizer d;
    g3n_detokenizer_init(&d, t, skip);
    size_t length = 0, capacity = 1 << 16;
    char *all = malloc(capacity);
    assert_non_null(all);
    g3n_error err = {{0}};
    for (int64_t k = 0; k <= count; k++) {
        const char *chunk;
        size_t n;
        if (k < count)
            assert_int_equal(g3n_detokenizer_push(&d, ids[k], &chunk, &n, &err), G3N_OK);
        else
            assert_int_equal(g3n_detokenizer_flush(&d, &chunk, &n, &err), G3N_OK);
        assert_true(g3n_utf8_valid(chunk, n)); /* may hold U+0000 from <0x00> */
        while (length + n + 1 > capacity)
            all = realloc(all, capacity *= 2);
        assert_non_null(all);
        memcpy(all + length, chunk, n);
        length += n;
    }
    all[length] = '\0';
    g3n_detokenizer_free(&d);
    if (out_length)
        *out_length = length;
    return all;
}

static void test_stream_every_decode_case(void **state)
{
    (void)state;
    char path[1024];
    cJSON *root = NULL;
    g3n_error err = {{0}};
    assert_int_equal(
        g3n_json_load_file(g3n_test_fixture("tokenizer/case.json", path, sizeof(path)), &root, &err), G3N_OK);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "decode");
    assert_int_equal(cJSON_GetArraySize(cases), 21);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cases)
    {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(entry, "ids");
        int64_t count = cJSON_GetArraySize(list), i = 0;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)(count + 1));
        const cJSON *item;
        cJSON_ArrayForEach(item, list) ids[i++] = (int32_t)item->valuedouble;
        for (int skip = 0; skip < 2; skip++) {
            char *text = stream(gemma, ids, count, skip, NULL);
            assert_string_equal(text, g3n_json_get_string(entry, skip ? "text_skip_special" : "text", ""));
            free(text);
        }
        free(ids);
    }
    cJSON_Delete(root);
}

/* Runs of byte pieces: complete characters come out whole, invalid runs as
 * U+FFFD per byte exactly as decode does, skipped specials do not break a run. */
static void test_stream_byte_runs(void **state)
{
    (void)state;
    const int32_t byte0 = g3n_tokenizer_piece_to_id(gemma, "<0x00>", 6);
    assert_true(byte0 > 0);
    /* "€" = E2 82 AC as three byte pieces, then "!" as one */
    const int32_t bang = g3n_tokenizer_piece_to_id(gemma, "!", 1);
    assert_true(bang > 0);
    const int32_t euro[] = {byte0 + 0xE2, byte0 + 0x82, byte0 + 0xAC, bang};
    g3n_detokenizer d;
    g3n_detokenizer_init(&d, gemma, 0);
    g3n_error err = {{0}};
    const char *chunk;
    size_t n;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(g3n_detokenizer_push(&d, euro[k], &chunk, &n, &err), G3N_OK);
        assert_int_equal(n, 0); /* held until the run ends */
    }
    assert_int_equal(g3n_detokenizer_push(&d, euro[3], &chunk, &n, &err), G3N_OK);
    assert_string_equal(chunk, "\xe2\x82\xac!");
    g3n_detokenizer_free(&d);

    uint64_t seed = 7;
    for (int trial = 0; trial < 300; trial++) {
        int32_t ids[24];
        int count = 1 + (int)(next_random(&seed) % 24);
        for (int k = 0; k < count; k++) {
            uint64_t r = next_random(&seed) % 10;
            if (r < 6) /* a byte piece, often UTF-8 lead/continuation bytes */
                ids[k] = byte0 + (int32_t)(r < 3 ? 0x80 + next_random(&seed) % 0x40 : next_random(&seed) % 256);
            else if (r < 8)
                ids[k] = (int32_t)(next_random(&seed) % 4); /* <pad> <eos> <bos> <unk> */
            else
                ids[k] = (int32_t)(next_random(&seed) % 262145);
        }
        for (int skip = 0; skip < 2; skip++) {
            char *whole = NULL;
            size_t whole_length = 0, streamed_length = 0;
            assert_int_equal(g3n_tokenizer_decode(gemma, ids, count, skip, &whole, &whole_length, &err), G3N_OK);
            assert_true(g3n_utf8_valid(whole, whole_length));
            char *streamed = stream(gemma, ids, count, skip, &streamed_length);
            assert_int_equal(streamed_length, whole_length);
            assert_memory_equal(streamed, whole, whole_length);
            free(whole);
            free(streamed);
        }
    }
}

/* decode(encode(s)) == s for random Unicode (all but U+2581 "▁", which the
 * decoder maps to a space by design). */
static void test_fuzz_round_trip(void **state)
{
    (void)state;
    static const uint32_t ranges[][2] = {
        {0x20, 0x7E},     {0x09, 0x0A},     {0x00, 0x1F},     {0xA0, 0x24F},  {0x370, 0x3FF},
        {0x400, 0x4FF},   {0x590, 0x6FF},   {0x900, 0x97F},   {0xE00, 0xE7F}, {0x3040, 0x30FF},
        {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xE000, 0xF8FF}, {0xFE00, 0xFFFD}, {0x1F300, 0x1FAFF},
        {0x10000, 0x10FFFF},
    };
    static const char *const inserts[] = {"<start_of_turn>", "<bos>", "<end_of_turn>", "\n\n", "   ", "<unused7>",
                                          "<start_of_image>", "<table>", "\t\t"};
    uint64_t seed = 12345;
    g3n_error err = {{0}};
    char text[1024];
    for (int trial = 0; trial < 2000; trial++) {
        size_t length = 0;
        int chars = 1 + (int)(next_random(&seed) % 60);
        for (int c = 0; c < chars && length + 32 < sizeof(text); c++) {
            if (next_random(&seed) % 16 == 0) {
                const char *s = inserts[next_random(&seed) % (sizeof(inserts) / sizeof(inserts[0]))];
                memcpy(text + length, s, strlen(s));
                length += strlen(s);
                continue;
            }
            const uint32_t *range = ranges[next_random(&seed) % (sizeof(ranges) / sizeof(ranges[0]))];
            uint32_t cp = range[0] + (uint32_t)(next_random(&seed) % (range[1] - range[0] + 1));
            if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581)
                cp = 'x';
            if (cp == 0)
                cp = ' ';
            if (cp < 0x80) {
                text[length++] = (char)cp;
            } else if (cp < 0x800) {
                text[length++] = (char)(0xC0 | (cp >> 6));
                text[length++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                text[length++] = (char)(0xE0 | (cp >> 12));
                text[length++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                text[length++] = (char)(0x80 | (cp & 0x3F));
            } else {
                text[length++] = (char)(0xF0 | (cp >> 18));
                text[length++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                text[length++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                text[length++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        text[length] = '\0';
        g3n_token_ids ids = {0};
        assert_int_equal(g3n_tokenizer_encode(gemma, text, length, 0, &ids, &err), G3N_OK);
        char *back = NULL;
        size_t back_length = 0;
        assert_int_equal(g3n_tokenizer_decode(gemma, ids.ids, ids.count, 0, &back, &back_length, &err), G3N_OK);
        if (back_length != length || memcmp(back, text, length) != 0)
            fprintf(stderr, "trial %d: round trip differs for '%s' -> '%s'\n", trial, text, back);
        assert_int_equal(back_length, length);
        assert_memory_equal(back, text, length);
        size_t streamed_length = 0;
        char *streamed = stream(gemma, ids.ids, ids.count, 0, &streamed_length);
        assert_int_equal(streamed_length, back_length);
        assert_memory_equal(streamed, back, back_length);
        free(streamed);
        free(back);
        g3n_token_ids_free(&ids);
    }
}

/* 1 MB of mixed text in one piece (the pre-tokenizer does not split it):
 * the priority-queue BPE must stay fast; prints MB/s. */
static void test_encode_one_megabyte(void **state)
{
    (void)state;
    static const char *const parts[] = {"The quick brown fox jumps over the lazy dog. ", "Gemma 3n runs on CPUs; ",
                                        "日本語のテキストです。", "Привет, мир! ", "if (a && b) { return -1; }\n",
                                        "🙂👍🏽 ", "1234567890 ", "  \t\n"};
    size_t size = 1 << 20, length = 0;
    char *text = malloc(size + 64);
    assert_non_null(text);
    uint64_t seed = 99;
    while (length < size) {
        const char *p = parts[next_random(&seed) % (sizeof(parts) / sizeof(parts[0]))];
        memcpy(text + length, p, strlen(p));
        length += strlen(p);
    }
    g3n_token_ids ids = {0};
    g3n_error err = {{0}};
    double start = seconds_now();
    assert_int_equal(g3n_tokenizer_encode(gemma, text, length, 1, &ids, &err), G3N_OK);
    double seconds = seconds_now() - start;
    fprintf(stderr, "encode: %zu bytes -> %lld tokens in %.3f s = %.2f MB/s\n", length, (long long)ids.count, seconds,
            (double)length / 1e6 / seconds);
    assert_true(ids.count > (int64_t)(length / 20));
    char *back = NULL;
    size_t back_length = 0;
    assert_int_equal(g3n_tokenizer_decode(gemma, ids.ids + 1, ids.count - 1, 0, &back, &back_length, &err), G3N_OK);
    assert_int_equal(back_length, length);
    assert_memory_equal(back, text, length);
    free(back);
    g3n_token_ids_free(&ids);
    free(text);
}

/* Cutting long words before "▁" gives exactly the ids of the uncut BPE. */
static void test_word_cuts_are_exact(void **state)
{
    (void)state;
    static const char *const words[] = {"the", "quick", "<b>", "</b>", ">", "<", "fox", "a", "naïve", "日本",
                                        "🙂", "--", "x>", "  ", "  ", " ", "(", ")", "1234", "don't"};
    uint64_t seed = 4242;
    g3n_error err = {{0}};
    for (int trial = 0; trial < 40; trial++) {
        char text[8192];
        size_t length = 0;
        while (length + 16 < sizeof(text)) {
            const char *w = words[next_random(&seed) % (sizeof(words) / sizeof(words[0]))];
            memcpy(text + length, w, strlen(w));
            length += strlen(w);
            if (next_random(&seed) % 3)
                text[length++] = ' ';
        }
        g3n_token_ids cut = {0}, uncut = {0};
        g3n_tokenizer_set_word_cuts(gemma, 1);
        assert_int_equal(g3n_tokenizer_encode(gemma, text, length, 0, &cut, &err), G3N_OK);
        g3n_tokenizer_set_word_cuts(gemma, 0);
        assert_int_equal(g3n_tokenizer_encode(gemma, text, length, 0, &uncut, &err), G3N_OK);
        g3n_tokenizer_set_word_cuts(gemma, 1);
        assert_int_equal(cut.count, uncut.count);
        assert_memory_equal(cut.ids, uncut.ids, (size_t)cut.count * sizeof(int32_t));
        g3n_token_ids_free(&cut);
        g3n_token_ids_free(&uncut);
    }
}

static void expect_load_error(const char *json, size_t length, const char *needle)
{
    g3n_tokenizer *t = (g3n_tokenizer *)1;
    g3n_error err = {{0}};
    assert_int_equal(g3n_tokenizer_load_from_memory(&t, json, length, "bad.json", &err), G3N_ERR);
    assert_null(t);
    if (needle && !strstr(err.message, needle))
        fprintf(stderr, "message: %s (expected '%s')\n", err.message, needle);
    if (needle)
        assert_non_null(strstr(err.message, needle));
    assert_non_null(strstr(err.message, "bad.json"));
}

static void test_malformed_files(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"", "end of file"},
        {"[]", "expected '{'"},
        {"{\"model\": 5}", "expected '{'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}", "end of file"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}, \"merges\": []}}", "model.vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"b\"]]}}", "model.merges[0]"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "only BPE"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", "merges"},
        {"{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         "normalizer"},
        {"{\"added_tokens\": [{\"id\": 0, \"content\": \"a\", \"lstrip\": true}], \"model\": {\"type\": \"BPE\", "
         "\"vocab\": {\"a\": 0}, \"merges\": []}}",
         "lstrip"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\q\": 0}, \"merges\": []}}", "unknown escape"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\\ud800\": 0}, \"merges\": []}}", "surrogate"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "empty"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}} trailing", "after the document"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_load_error(cases[i][0], strlen(cases[i][0]), cases[i][1]);
    /* a piece with newlines quoted in the message: still one line, the newlines escaped */
    const char *lines = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                        "\"merges\": [[\"\\n\\n\\n\\n\", \"\\n\\n\\u0001\"]]}}";
    g3n_tokenizer *bad = NULL;
    g3n_error bad_err = {{0}};
    assert_int_equal(g3n_tokenizer_load_from_memory(&bad, lines, strlen(lines), "lines.json", &bad_err), G3N_ERR);
    if (strchr(bad_err.message, '\n') || strchr(bad_err.message, '\x01'))
        fail_msg("the message spans lines: %s", bad_err.message);
    assert_non_null(strstr(bad_err.message, "model.merges[0] ('\\n\\n\\n\\n'"));
    assert_non_null(strstr(bad_err.message, "\\x01"));
    /* a missing file */
    g3n_tokenizer *t = NULL;
    g3n_error err = {{0}};
    assert_int_equal(g3n_tokenizer_load(&t, "/nonexistent/tokenizer.json", &err), G3N_ERR);
    assert_non_null(strstr(err.message, "/nonexistent/tokenizer.json"));
}

/* The real file cut short anywhere is an error naming the truncation, never a crash. */
static void test_truncated_real_file(void **state)
{
    (void)state;
    const double fractions[] = {0.0001, 0.01, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 0.99999};
    for (size_t i = 0; i < sizeof(fractions) / sizeof(fractions[0]); i++) {
        size_t cut = (size_t)(fractions[i] * (double)gemma_json_size);
        expect_load_error(gemma_json, cut, "truncated");
    }
    expect_load_error(gemma_json, gemma_json_size - 2, "truncated"); /* the last "}" gone */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_bpe_rules),
        cmocka_unit_test(test_gemma_basics),
        cmocka_unit_test(test_stream_every_decode_case),
        cmocka_unit_test(test_stream_byte_runs),
        cmocka_unit_test(test_fuzz_round_trip),
        cmocka_unit_test(test_encode_one_megabyte),
        cmocka_unit_test(test_word_cuts_are_exact),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_truncated_real_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
