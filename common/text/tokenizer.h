/* tokenizer.h - Hugging Face tokenizer.json (the Gemma BPE flavour), its
 * decoder and a streaming detokenizer.
 *
 * What is implemented is what the Gemma 3 / 3n tokenizer.json uses, exactly as
 * the Rust `tokenizers` library runs it:
 *   added tokens   matched in the raw text first, leftmost-longest, each one
 *                  token (special or not); lstrip/rstrip/single_word/normalized
 *                  must be false (anything else is a load error)
 *   normalizer     Replace (String pattern), a Sequence of those, or null
 *   pre-tokenizer  Split (String pattern, MergedWithPrevious) or null
 *   model          BPE: merges by rank with a priority queue (no quadratic loop),
 *                  byte fallback to <0xNN> pieces, unk (fused)
 *   post-processor TemplateProcessing with special tokens before/after $A
 *   decoder        Sequence of Replace, ByteFallback, Fuse
 * Any other component type is a clear load error, never a silent difference.
 *
 * Thread safety: a loaded g3n_tokenizer is read-only; encode and decode may run
 * on it from several threads at once. A g3n_detokenizer is one per stream.
 * Text is UTF-8 everywhere; lengths are in bytes.
 */
#ifndef G3N_TOKENIZER_H
#define G3N_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "utf8.h" /* g3n_utf8_valid, for the tokenizer's users */

typedef struct g3n_tokenizer g3n_tokenizer;

/* Loads a tokenizer.json file. On success *out is owned by the caller
 * (g3n_tokenizer_free). A malformed or truncated file is an error naming the
 * file, the field and the byte offset. */
int g3n_tokenizer_load(g3n_tokenizer **out, const char *path, g3n_error *err);
/* The same from a document in memory (need not be NUL-terminated); `name` is
 * used in error messages. The bytes are not kept. */
int g3n_tokenizer_load_from_memory(g3n_tokenizer **out, const char *json, size_t size, const char *name,
                                   g3n_error *err);
void g3n_tokenizer_free(g3n_tokenizer *tokenizer); /* accepts NULL */

/* One past the largest id of the model vocabulary or of the added tokens. */
int64_t g3n_tokenizer_id_count(const g3n_tokenizer *tokenizer);
/* The piece of an id (added token content or vocabulary piece, "▁" not
 * replaced), borrowed; NULL for an id that has none. *length may be NULL. */
const char *g3n_tokenizer_piece(const g3n_tokenizer *tokenizer, int32_t id, size_t *length);
/* Id of a piece: an added token's content first, then the vocabulary; -1 if none. */
int32_t g3n_tokenizer_piece_to_id(const g3n_tokenizer *tokenizer, const char *piece, size_t length);
/* 1 if id is an added token marked "special" (skipped by decode with skip_special_tokens). */
int g3n_tokenizer_is_special(const g3n_tokenizer *tokenizer, int32_t id);
/* The id the post-processor puts first (e.g. <bos>); -1 if it adds none. */
int32_t g3n_tokenizer_bos_id(const g3n_tokenizer *tokenizer);

/* Long words are cut before "▁" where no merge can cross (an exact shortcut
 * that keeps the BPE queues short; on by default). Off only for tests that
 * compare against the uncut algorithm. Not thread-safe against encode. */
void g3n_tokenizer_set_word_cuts(g3n_tokenizer *tokenizer, int enabled);

/* A growable list of token ids; zero-initialize, then encode appends to it. */
typedef struct g3n_token_ids {
    int32_t *ids;
    int64_t count;
    int64_t capacity;
} g3n_token_ids;
void g3n_token_ids_free(g3n_token_ids *ids); /* frees ids->ids, zeroes the struct */
int g3n_token_ids_append(g3n_token_ids *ids, int32_t id, g3n_error *err);

/* Encodes UTF-8 text (length bytes) and APPENDS the ids to *out.
 * add_special_tokens = 1 runs the post-processor (adds <bos>), as
 * `Tokenizer.encode(text)`; 0 is `add_special_tokens=False`. Special tokens
 * written in the text are matched as single tokens either way. Invalid UTF-8
 * is an error. Allocates scratch per call (no state is kept). */
int g3n_tokenizer_encode(const g3n_tokenizer *tokenizer, const char *text, size_t length, int add_special_tokens,
                         g3n_token_ids *out, g3n_error *err);

/* Decodes ids into a NUL-terminated malloc'd string (*text, caller frees;
 * *length bytes without the NUL, may be NULL), as `Tokenizer.decode(ids,
 * skip_special_tokens)`: ids without a piece are dropped, "▁" becomes " ",
 * runs of <0xNN> pieces become their bytes when those are valid UTF-8 and one
 * U+FFFD per byte otherwise. */
int g3n_tokenizer_decode(const g3n_tokenizer *tokenizer, const int32_t *ids, int64_t count,
                         int skip_special_tokens, char **text, size_t *length, g3n_error *err);

/* Streaming detokenizer: push one id at a time, get back only complete UTF-8.
 * A run of byte-fallback pieces is held until the run ends (the next
 * non-byte piece, or flush), because decode turns a run holding any invalid
 * UTF-8 into U+FFFD per byte: so the concatenation of everything pushed and
 * flushed equals g3n_tokenizer_decode of the same ids, byte for byte, and
 * every chunk is valid UTF-8 on its own. Skipped ids (special with
 * skip_special_tokens, or ids without a piece) do not end a run, as in decode.
 * The tokenizer must outlive the detokenizer. */
typedef struct g3n_detokenizer {
    const g3n_tokenizer *tokenizer; /* borrowed */
    int skip_special_tokens;
    uint8_t pending_bytes[64];      /* the current byte-fallback run (grows into pending_heap) */
    uint8_t *pending_heap;          /* owned, used when a run is longer than 64 bytes */
    size_t pending_count, pending_capacity;
    char *output;                   /* owned; what push/flush returns points here */
    size_t output_capacity;
} g3n_detokenizer;

void g3n_detokenizer_init(g3n_detokenizer *detokenizer, const g3n_tokenizer *tokenizer, int skip_special_tokens);
/* *text (borrowed, valid until the next push/flush/free; NUL-terminated) gets
 * the complete text this id releases, *length its bytes (often 0). */
int g3n_detokenizer_push(g3n_detokenizer *detokenizer, int32_t id, const char **text, size_t *length,
                         g3n_error *err);
/* Releases whatever is held (end of stream); the detokenizer can be reused. */
int g3n_detokenizer_flush(g3n_detokenizer *detokenizer, const char **text, size_t *length, g3n_error *err);
void g3n_detokenizer_free(g3n_detokenizer *detokenizer);


#endif
