/* fuzz_tokenizer_json.c - the tokenizer.json loader (common/text/tokenizer.c): the
 * input is the document; a tokenizer it loads then encodes and decodes a fixed
 * text (byte fallback, added tokens, white space) and the ids it has. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g3n_tokenizer *tokenizer = NULL;
    g3n_error err;
    if (g3n_tokenizer_load_from_memory(&tokenizer, (const char *)data, size, "fuzz", &err) != G3N_OK)
        return 0;
    static const char text[] = "Hello  world\n<start_of_turn>user\n\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 1234 <b>x</b>";
    g3n_token_ids ids;
    memset(&ids, 0, sizeof(ids));
    for (int special = 0; special < 2; special++) {
        if (g3n_tokenizer_encode(tokenizer, text, sizeof(text) - 1, special, &ids, &err) != G3N_OK)
            break;
    }
    int64_t id_count = g3n_tokenizer_id_count(tokenizer);
    for (int32_t id = -1; id <= 300 && id <= id_count; id++) {
        size_t length = 0;
        const char *piece = g3n_tokenizer_piece(tokenizer, id, &length);
        if (piece) {
            sink += g3n_fuzz_touch(piece, length);
            sink += (uint64_t)g3n_tokenizer_piece_to_id(tokenizer, piece, length);
        }
        sink += (uint64_t)g3n_tokenizer_is_special(tokenizer, id);
        if (g3n_token_ids_append(&ids, id, &err) != G3N_OK)
            abort();
    }
    char *decoded = NULL;
    size_t decoded_length = 0;
    if (g3n_tokenizer_decode(tokenizer, ids.ids, ids.count, 1, &decoded, &decoded_length, &err) == G3N_OK)
        sink += g3n_fuzz_touch(decoded, decoded_length);
    free(decoded);
    g3n_detokenizer detokenizer;
    g3n_detokenizer_init(&detokenizer, tokenizer, 0);
    for (int64_t i = 0; i < ids.count; i++) {
        const char *piece;
        size_t length;
        if (g3n_detokenizer_push(&detokenizer, ids.ids[i], &piece, &length, &err) != G3N_OK)
            break;
    }
    g3n_detokenizer_free(&detokenizer);
    g3n_token_ids_free(&ids);
    g3n_tokenizer_free(tokenizer);
    return 0;
}
