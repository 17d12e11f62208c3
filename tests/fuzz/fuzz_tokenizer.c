/* fuzz_tokenizer.c - encoding and decoding with the real Gemma tokenizer
 * (tests/fixtures/tokenizer/tokenizer.json, loaded once). The first byte picks
 * the mode: even - the rest is text: encode (with or without <bos>), and the
 * streaming detokenizer's chunks must concatenate to decode's text, each chunk
 * valid UTF-8; odd - the rest is little-endian int32 ids (any value) decoded
 * both ways. Invalid UTF-8 text must be a clear error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"

static g3n_tokenizer *tokenizer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_error err;
    if (g3n_tokenizer_load(&tokenizer, G3N_FUZZ_FIXTURES "/tokenizer/tokenizer.json", &err) != G3N_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.message);
        abort();
    }
    return 0;
}

/* decode and the detokenizer agree, byte for byte, and both are valid UTF-8 */
static void check_decode(const int32_t *ids, int64_t count, int skip_special)
{
    g3n_error err;
    char *text = NULL;
    size_t length = 0;
    if (g3n_tokenizer_decode(tokenizer, ids, count, skip_special, &text, &length, &err) != G3N_OK)
        return;
    if (!g3n_utf8_valid(text, length))
        abort();
    g3n_detokenizer detokenizer;
    g3n_detokenizer_init(&detokenizer, tokenizer, skip_special);
    size_t at = 0;
    for (int64_t i = 0; i <= count; i++) {
        const char *chunk;
        size_t chunk_length;
        int rc = i < count ? g3n_detokenizer_push(&detokenizer, ids[i], &chunk, &chunk_length, &err)
                           : g3n_detokenizer_flush(&detokenizer, &chunk, &chunk_length, &err);
        if (rc != G3N_OK)
            abort();
        if (!g3n_utf8_valid(chunk, chunk_length) || at + chunk_length > length ||
            memcmp(text + at, chunk, chunk_length) != 0)
            abort(); /* a chunk that decode does not have there */
        at += chunk_length;
    }
    if (at != length)
        abort();
    g3n_detokenizer_free(&detokenizer);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0];
    data++;
    size--;
    g3n_error err;
    if (mode % 2 == 0) {
        g3n_token_ids ids;
        memset(&ids, 0, sizeof(ids));
        int rc = g3n_tokenizer_encode(tokenizer, (const char *)data, size, (mode >> 1) & 1, &ids, &err);
        if (rc == G3N_OK) {
            if (!g3n_utf8_valid((const char *)data, size))
                abort(); /* invalid UTF-8 accepted */
            check_decode(ids.ids, ids.count, (mode >> 2) & 1);
        } else if (g3n_utf8_valid((const char *)data, size) && memchr(data, 0, size) == NULL) {
            fprintf(stderr, "valid text refused: %s\n", err.message);
            abort();
        }
        g3n_token_ids_free(&ids);
    } else {
        int64_t count = (int64_t)(size / 4);
        int32_t *ids = malloc((size_t)(count ? count : 1) * sizeof(*ids));
        if (!ids)
            abort();
        memcpy(ids, data, (size_t)count * 4);
        check_decode(ids, count, (mode >> 1) & 1);
        free(ids);
    }
    return 0;
}
