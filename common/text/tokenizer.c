/* tokenizer.c - tokenizer.json (BPE with byte fallback) as the Rust
 * `tokenizers` library runs it; see tokenizer.h for what is supported.
 *
 * Loading: the 33 MB file is read by a focused JSON scanner (json_scanner.h; the vocabulary
 * object and the merges array are parsed straight into hash maps); the small
 * sections (added_tokens, normalizer, pre_tokenizer, post_processor, decoder)
 * are cut out as byte ranges and handed to cJSON.
 *
 * Names in comments refer to the Rust sources of `tokenizers`:
 * AddedVocabulary::split_with_indices, BPE::merge_word, Word::merge_all,
 * decoders::ByteFallback::decode_chain.
 */
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_scanner.h"
#include "json_util.h"
#include "text_buffer.h"
#include "utf8.h"

/* ------------------------------------------------------------------ pieces and hash maps */

typedef struct piece_ref {
    uint32_t offset; /* into tokenizer->arena */
    int32_t length;  /* -1: no piece */
} piece_ref;

static uint64_t hash_bytes(const char *data, size_t length)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < length; i++) {
        h ^= (uint8_t)data[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* String -> index map (open addressing); the strings live in a piece table. */
typedef struct string_slot {
    uint32_t hash;  /* high half of the key's hash */
    int32_t index;  /* -1: empty */
    piece_ref key;  /* a copy of table[index], so a probe touches no table */
} string_slot;
typedef struct string_map {
    string_slot *slots; /* [capacity] */
    uint64_t capacity;  /* power of two */
    uint64_t count;
} string_map;

/* uint64 key -> (a, b) map (merge pair -> rank/new id; trie edge -> child). */
typedef struct u64_entry {
    uint64_t key;
    int32_t a, b;
} u64_entry;
typedef struct u64_map {
    u64_entry *entries; /* key UINT64_MAX = empty */
    uint64_t capacity;
    uint64_t count;
} u64_map;

/* Trie of the added tokens, matched byte by byte. */
typedef struct added_trie {
    int32_t *token_id; /* per node: added token id ending here, -1 if none */
    int32_t node_count, node_capacity;
    int32_t root_child[256];
    u64_map edges; /* (node << 8 | byte) -> child in .a */
} added_trie;

struct g3n_tokenizer {
    char *arena; /* every piece string, NUL-separated */
    size_t arena_size, arena_capacity;

    /* model vocabulary */
    int64_t vocab_id_count;   /* max vocab id + 1 */
    piece_ref *vocab_pieces;  /* [vocab_id_count] */
    string_map vocab_map;     /* piece -> id (index into vocab_pieces) */
    int32_t *bmp_char_ids;    /* [65536] id of a one-character piece, -1 if none */

    /* every id: added content overrides the vocabulary piece */
    int64_t id_count;
    piece_ref *pieces;        /* [id_count] */
    uint8_t *id_flags;        /* [id_count] ID_SPECIAL | ID_ADDED */
    int16_t *byte_of_id;      /* [id_count] 0..255 for "<0xNN>" pieces, -1 otherwise */

    /* added tokens */
    int added_count;
    piece_ref *added_pieces;  /* [added_count] */
    int32_t *added_ids;       /* [added_count] */
    string_map added_map;     /* content -> index into added_pieces */
    added_trie trie;

    /* BPE */
    u64_map merges;           /* (left << 32 | right) -> (rank, new id) */
    int byte_fallback;
    int32_t byte_ids[256];    /* id of "<0xNN>", -1 if absent */
    int32_t unk_id;           /* -1 if no unk token */
    int fuse_unk;

    /* normalizer: Replace rules applied in order */
    g3n_replace_rule *normalizer_rules;
    int normalizer_rule_count;
    /* pre-tokenizer: Split on a string, MergedWithPrevious */
    char *split_pattern;
    size_t split_pattern_length;

    /* post-processor (single sequence) */
    int32_t prefix_ids[16];
    int prefix_count;
    int32_t suffix_ids[16];
    int suffix_count;

    /* decoder */
    g3n_replace_rule *decoder_rules;
    int decoder_rule_count;
    int decoder_byte_fallback;

    /* Exact shortcut for long words: BPE never merges across a point just
     * before a "▁" whose previous character c is a one-character piece, is not
     * "▁" and no vocabulary piece contains c followed by "▁" (every symbol is
     * a vocabulary piece, so a symbol spanning that point cannot exist). The
     * word is cut there into independent pieces: same ids, short queues. */
    int metaspace_cuts;             /* "▁" is a one-character piece */
    uint8_t *metaspace_blockers;    /* [65536 / 8] bit per BMP character c with "c▁" in a piece */
    int metaspace_blocker_beyond_bmp;
};

enum { ID_SPECIAL = 1, ID_ADDED = 2 };

static const char *piece_data(const g3n_tokenizer *t, piece_ref p)
{
    return t->arena + p.offset;
}

static int arena_add(g3n_tokenizer *t, const char *data, size_t length, piece_ref *out, g3n_error *err)
{
    if (t->arena_size + length + 1 > t->arena_capacity) {
        size_t capacity = t->arena_capacity ? t->arena_capacity : (1u << 20);
        while (capacity < t->arena_size + length + 1)
            capacity *= 2;
        if (capacity > UINT32_MAX)
            return g3n_error_set(err, "piece strings exceed 4 GiB");
        char *arena = realloc(t->arena, capacity);
        if (!arena)
            return g3n_error_set(err, "out of memory for piece strings (%zu bytes)", capacity);
        t->arena = arena;
        t->arena_capacity = capacity;
    }
    memcpy(t->arena + t->arena_size, data, length);
    t->arena[t->arena_size + length] = '\0';
    out->offset = (uint32_t)t->arena_size;
    out->length = (int32_t)length;
    t->arena_size += length + 1;
    return G3N_OK;
}

static int string_map_init(string_map *map, uint64_t expected, g3n_error *err)
{
    uint64_t capacity = 16;
    while (capacity < expected * 2)
        capacity *= 2;
    map->slots = malloc(capacity * sizeof(string_slot));
    if (!map->slots)
        return g3n_error_set(err, "out of memory for a hash map of %llu entries", (unsigned long long)capacity);
    memset(map->slots, 0xff, capacity * sizeof(string_slot));
    map->capacity = capacity;
    map->count = 0;
    return G3N_OK;
}

static void string_map_free(string_map *map)
{
    free(map->slots);
    memset(map, 0, sizeof(*map));
}

/* Slot holding key, or the empty slot where it would go. */
static uint64_t string_map_slot(const string_map *map, const g3n_tokenizer *t, const piece_ref *table,
                                const char *key, size_t length, uint64_t hash)
{
    (void)table; /* the slots carry their keys */
    uint64_t mask = map->capacity - 1;
    uint64_t slot = hash & mask;
    uint32_t short_hash = (uint32_t)(hash >> 32);
    for (;;) {
        int32_t index = map->slots[slot].index;
        if (index < 0)
            return slot;
        const string_slot *entry = &map->slots[slot];
        if (entry->hash == short_hash && entry->key.length == (int32_t)length &&
            memcmp(piece_data(t, entry->key), key, length) == 0)
            return slot;
        slot = (slot + 1) & mask;
    }
}

static int32_t string_map_get(const string_map *map, const g3n_tokenizer *t, const piece_ref *table, const char *key,
                              size_t length)
{
    if (!map->capacity)
        return -1;
    uint64_t hash = hash_bytes(key, length);
    return map->slots[string_map_slot(map, t, table, key, length, hash)].index;
}

static int string_map_grow(string_map *map, const g3n_tokenizer *t, const piece_ref *table, g3n_error *err)
{
    string_map bigger;
    if (string_map_init(&bigger, map->capacity, err) != G3N_OK) {
        string_map_free(&bigger);
        return G3N_ERR;
    }
    for (uint64_t i = 0; i < map->capacity; i++) {
        int32_t index = map->slots[i].index;
        if (index < 0)
            continue;
        const char *key = piece_data(t, table[index]);
        uint64_t hash = hash_bytes(key, (size_t)table[index].length);
        uint64_t slot = string_map_slot(&bigger, t, table, key, (size_t)table[index].length, hash);
        bigger.slots[slot] = map->slots[i];
    }
    bigger.count = map->count;
    string_map_free(map);
    *map = bigger;
    return G3N_OK;
}

/* Inserts or overwrites (the later entry wins, as a Rust HashMap collect does). */
static int string_map_put(string_map *map, const g3n_tokenizer *t, const piece_ref *table, int32_t index,
                          g3n_error *err)
{
    if ((map->count + 1) * 2 > map->capacity && string_map_grow(map, t, table, err) != G3N_OK)
        return G3N_ERR;
    const char *key = piece_data(t, table[index]);
    uint64_t hash = hash_bytes(key, (size_t)table[index].length);
    uint64_t slot = string_map_slot(map, t, table, key, (size_t)table[index].length, hash);
    if (map->slots[slot].index < 0)
        map->count++;
    map->slots[slot].index = index;
    map->slots[slot].hash = (uint32_t)(hash >> 32);
    map->slots[slot].key = table[index];
    return G3N_OK;
}

static int u64_map_init(u64_map *map, uint64_t expected, g3n_error *err)
{
    uint64_t capacity = 16;
    while (capacity < expected * 2)
        capacity *= 2;
    map->entries = malloc(capacity * sizeof(u64_entry));
    if (!map->entries)
        return g3n_error_set(err, "out of memory for a hash map of %llu entries", (unsigned long long)capacity);
    for (uint64_t i = 0; i < capacity; i++)
        map->entries[i].key = UINT64_MAX;
    map->capacity = capacity;
    map->count = 0;
    return G3N_OK;
}

static void u64_map_free(u64_map *map)
{
    free(map->entries);
    memset(map, 0, sizeof(*map));
}

static const u64_entry *u64_map_get(const u64_map *map, uint64_t key)
{
    if (!map->capacity)
        return NULL;
    uint64_t mask = map->capacity - 1;
    uint64_t slot = hash_u64(key) & mask;
    for (;;) {
        const u64_entry *e = &map->entries[slot];
        if (e->key == key)
            return e;
        if (e->key == UINT64_MAX)
            return NULL;
        slot = (slot + 1) & mask;
    }
}

static int u64_map_put(u64_map *map, uint64_t key, int32_t a, int32_t b, g3n_error *err)
{
    if ((map->count + 1) * 2 > map->capacity) {
        u64_map bigger;
        if (u64_map_init(&bigger, map->capacity, err) != G3N_OK)
            return G3N_ERR;
        for (uint64_t i = 0; i < map->capacity; i++)
            if (map->entries[i].key != UINT64_MAX)
                u64_map_put(&bigger, map->entries[i].key, map->entries[i].a, map->entries[i].b, NULL);
        u64_map_free(map);
        *map = bigger;
    }
    uint64_t mask = map->capacity - 1;
    uint64_t slot = hash_u64(key) & mask;
    for (;;) {
        u64_entry *e = &map->entries[slot];
        if (e->key == UINT64_MAX) {
            e->key = key;
            map->count++;
        }
        if (e->key == key) {
            e->a = a;
            e->b = b;
            return G3N_OK;
        }
        slot = (slot + 1) & mask;
    }
}

/* ------------------------------------------------------------------ loading */

typedef struct load_state {
    cJSON *added_tokens, *normalizer, *pre_tokenizer, *post_processor, *decoder;
    cJSON *model_type, *byte_fallback, *unk_token, *fuse_unk, *dropout, *continuing_subword_prefix,
        *end_of_word_suffix, *ignore_merges;
    int has_model, has_vocab, has_merges;
    piece_ref *merge_strings; /* [merge_count] left + right, concatenated */
    int32_t *merge_splits;    /* [merge_count] byte length of the left piece */
    int64_t merge_count, merge_capacity;
    g3n_text_buffer scratch, left;
} load_state;

static int vocab_member(g3n_json_scanner *s, void *target, void *context)
{
    g3n_tokenizer *t = target;
    (void)context;
    int64_t id = 0;
    piece_ref piece;
    if (g3n_json_scan_int(s, "model.vocab", &id) != G3N_OK)
        return G3N_ERR;
    if (id < 0 || id >= INT32_MAX)
        return g3n_json_scan_fail(s, "model.vocab", "token id out of range");
    if (id >= t->vocab_id_count) {
        int64_t capacity = t->vocab_id_count ? t->vocab_id_count : 1024;
        while (capacity <= id)
            capacity *= 2;
        piece_ref *pieces = realloc(t->vocab_pieces, (size_t)capacity * sizeof(piece_ref));
        if (!pieces)
            return g3n_error_set(s->err, "out of memory for the vocabulary");
        for (int64_t i = t->vocab_id_count; i < capacity; i++)
            pieces[i].length = -1;
        t->vocab_pieces = pieces;
        t->vocab_id_count = capacity;
    }
    if (arena_add(t, s->string.data ? s->string.data : "", s->string.length, &piece, s->err) != G3N_OK)
        return G3N_ERR;
    t->vocab_pieces[id] = piece;
    return string_map_put(&t->vocab_map, t, t->vocab_pieces, (int32_t)id, s->err);
}

/* The ids of one merge (left, right, merged); -1 where a piece is not in the vocabulary. */
static void merge_ids(const g3n_tokenizer *t, piece_ref merged, int32_t split, int32_t ids[3])
{
    const char *text = piece_data(t, merged);
    ids[0] = string_map_get(&t->vocab_map, t, t->vocab_pieces, text, (size_t)split);
    ids[1] = string_map_get(&t->vocab_map, t, t->vocab_pieces, text + split, (size_t)(merged.length - split));
    ids[2] = string_map_get(&t->vocab_map, t, t->vocab_pieces, text, (size_t)merged.length);
}

static int add_merge(g3n_json_scanner *s, g3n_tokenizer *t, load_state *st, const char *left, size_t left_length,
                     const char *right, size_t right_length)
{
    if (st->merge_count == st->merge_capacity) {
        int64_t capacity = st->merge_capacity ? st->merge_capacity * 2 : 1 << 16;
        piece_ref *strings = realloc(st->merge_strings, (size_t)capacity * sizeof(piece_ref));
        int32_t *splits = realloc(st->merge_splits, (size_t)capacity * sizeof(int32_t));
        if (strings)
            st->merge_strings = strings;
        if (splits)
            st->merge_splits = splits;
        if (!strings || !splits)
            return g3n_error_set(s->err, "out of memory for the merges");
        st->merge_capacity = capacity;
    }
    int64_t rank = st->merge_count++;
    st->scratch.length = 0;
    if (g3n_text_buffer_append(&st->scratch, left, left_length, s->err) != G3N_OK ||
        g3n_text_buffer_append(&st->scratch, right, right_length, s->err) != G3N_OK ||
        arena_add(t, st->scratch.data, st->scratch.length, &st->merge_strings[rank], s->err) != G3N_OK)
        return G3N_ERR;
    st->merge_splits[rank] = (int32_t)left_length;
    return G3N_OK;
}

static int scan_merges(g3n_json_scanner *s, g3n_tokenizer *t, load_state *st)
{
    const char *where = "model.merges";
    if (g3n_json_scan_char(s, '[', where) != G3N_OK)
        return G3N_ERR;
    g3n_json_scan_space(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return G3N_OK;
    }
    for (;;) {
        g3n_json_scan_space(s);
        if (s->p < s->end && *s->p == '[') { /* ["left", "right"] */
            s->p++;
            if (g3n_json_scan_string(s, where) != G3N_OK)
                return G3N_ERR;
            st->left.length = 0;
            if (g3n_text_buffer_append(&st->left, s->string.data, s->string.length, s->err) != G3N_OK ||
                g3n_json_scan_char(s, ',', where) != G3N_OK || g3n_json_scan_string(s, where) != G3N_OK ||
                g3n_json_scan_char(s, ']', where) != G3N_OK ||
                add_merge(s, t, st, st->left.data, st->left.length, s->string.data, s->string.length) != G3N_OK)
                return G3N_ERR;
        } else { /* "left right" (older files) */
            if (g3n_json_scan_string(s, where) != G3N_OK)
                return G3N_ERR;
            char *space = memchr(s->string.data, ' ', s->string.length);
            if (!space || memchr(space + 1, ' ', s->string.length - (size_t)(space - s->string.data) - 1))
                return g3n_json_scan_fail(s, where, "a merge string must hold exactly one space");
            size_t left = (size_t)(space - s->string.data);
            if (add_merge(s, t, st, s->string.data, left, space + 1, s->string.length - left - 1) != G3N_OK)
                return G3N_ERR;
        }
        g3n_json_scan_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return G3N_OK;
        }
        return g3n_json_scan_fail(s, where, "expected ',' or ']'");
    }
}

static int model_member(g3n_json_scanner *s, void *target, void *context)
{
    g3n_tokenizer *t = target;
    load_state *st = context;
    const char *key = s->string.data;
    if (strcmp(key, "vocab") == 0) {
        st->has_vocab = 1;
        if (!t->vocab_map.capacity && string_map_init(&t->vocab_map, 1 << 18, s->err) != G3N_OK)
            return G3N_ERR;
        return g3n_json_scan_object(s, "model.vocab", t, vocab_member, NULL);
    }
    if (strcmp(key, "merges") == 0) {
        st->has_merges = 1;
        return scan_merges(s, t, st);
    }
    struct {
        const char *name;
        cJSON **slot;
    } small[] = {{"type", &st->model_type},
                 {"byte_fallback", &st->byte_fallback},
                 {"unk_token", &st->unk_token},
                 {"fuse_unk", &st->fuse_unk},
                 {"dropout", &st->dropout},
                 {"continuing_subword_prefix", &st->continuing_subword_prefix},
                 {"end_of_word_suffix", &st->end_of_word_suffix},
                 {"ignore_merges", &st->ignore_merges}};
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
        if (strcmp(key, small[i].name) == 0) {
            char where[64];
            snprintf(where, sizeof(where), "model.%s", small[i].name);
            return g3n_json_scan_cjson_value(s, where, small[i].slot);
        }
    return g3n_json_scan_skip_value(s, "model", 0);
}

static int top_member(g3n_json_scanner *s, void *target, void *context)
{
    g3n_tokenizer *t = target;
    load_state *st = context;
    const char *key = s->string.data;
    if (strcmp(key, "model") == 0) {
        st->has_model = 1;
        return g3n_json_scan_object(s, "model", t, model_member, st);
    }
    struct {
        const char *name;
        cJSON **slot;
    } small[] = {{"added_tokens", &st->added_tokens},
                 {"normalizer", &st->normalizer},
                 {"pre_tokenizer", &st->pre_tokenizer},
                 {"post_processor", &st->post_processor},
                 {"decoder", &st->decoder}};
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
        if (strcmp(key, small[i].name) == 0)
            return g3n_json_scan_cjson_value(s, small[i].name, small[i].slot);
    return g3n_json_scan_skip_value(s, "top level", 0);
}

static int is_null(const cJSON *value)
{
    return !value || cJSON_IsNull(value);
}

static int bool_value(const cJSON *value, int fallback)
{
    if (cJSON_IsBool(value))
        return cJSON_IsTrue(value);
    return fallback;
}

/* {"String": "x"} -> x; anything else (Regex) is an error. */
static int string_pattern(const char *name, const char *where, const cJSON *pattern, const char **out, g3n_error *err)
{
    const cJSON *string = cJSON_GetObjectItemCaseSensitive(pattern, "String");
    if (!cJSON_IsString(string)) {
        if (cJSON_GetObjectItemCaseSensitive(pattern, "Regex"))
            return g3n_error_set(err, "%s: %s: Regex patterns are not supported (only String)", name, where);
        return g3n_error_set(err, "%s: %s: missing pattern.String", name, where);
    }
    *out = string->valuestring;
    return G3N_OK;
}

static int add_replace_rule(const char *name, const char *where, const cJSON *step, g3n_replace_rule **rules,
                            int *count, g3n_error *err)
{
    const char *pattern = NULL;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(step, "content");
    if (string_pattern(name, where, cJSON_GetObjectItemCaseSensitive(step, "pattern"), &pattern, err) != G3N_OK)
        return G3N_ERR;
    if (!cJSON_IsString(content))
        return g3n_error_set(err, "%s: %s: Replace needs a string 'content'", name, where);
    if (!pattern[0])
        return g3n_error_set(err, "%s: %s: Replace with an empty pattern", name, where);
    g3n_replace_rule *grown = realloc(*rules, (size_t)(*count + 1) * sizeof(g3n_replace_rule));
    if (!grown)
        return g3n_error_set(err, "out of memory");
    *rules = grown;
    g3n_replace_rule *rule = &grown[*count];
    rule->pattern = strdup(pattern);
    rule->content = strdup(content->valuestring);
    if (!rule->pattern || !rule->content) {
        free(rule->pattern);
        free(rule->content);
        return g3n_error_set(err, "out of memory");
    }
    rule->pattern_length = strlen(pattern);
    rule->content_length = strlen(content->valuestring);
    (*count)++;
    return G3N_OK;
}

static int load_normalizer(g3n_tokenizer *t, const char *name, const cJSON *normalizer, g3n_error *err)
{
    if (is_null(normalizer))
        return G3N_OK;
    const char *type = g3n_json_get_string(normalizer, "type", "");
    if (strcmp(type, "Replace") == 0)
        return add_replace_rule(name, "normalizer", normalizer, &t->normalizer_rules, &t->normalizer_rule_count,
                                err);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(normalizer, "normalizers");
        const cJSON *step;
        if (!cJSON_IsArray(steps))
            return g3n_error_set(err, "%s: normalizer: Sequence without a 'normalizers' list", name);
        cJSON_ArrayForEach(step, steps)
        {
            if (strcmp(g3n_json_get_string(step, "type", ""), "Replace") != 0)
                return g3n_error_set(err, "%s: normalizer: type '%s' is not supported (only Replace)", name,
                                     g3n_json_get_string(step, "type", "?"));
            if (add_replace_rule(name, "normalizer", step, &t->normalizer_rules, &t->normalizer_rule_count, err) !=
                G3N_OK)
                return G3N_ERR;
        }
        return G3N_OK;
    }
    return g3n_error_set(err, "%s: normalizer: type '%s' is not supported (only Replace or a Sequence of them)", name,
                         type);
}

static int load_pre_tokenizer(g3n_tokenizer *t, const char *name, const cJSON *pre, g3n_error *err)
{
    if (is_null(pre))
        return G3N_OK;
    const char *type = g3n_json_get_string(pre, "type", "");
    if (strcmp(type, "Split") != 0)
        return g3n_error_set(err, "%s: pre_tokenizer: type '%s' is not supported (only Split)", name, type);
    const char *pattern = NULL;
    if (string_pattern(name, "pre_tokenizer", cJSON_GetObjectItemCaseSensitive(pre, "pattern"), &pattern, err) !=
        G3N_OK)
        return G3N_ERR;
    const char *behavior = g3n_json_get_string(pre, "behavior", "");
    if (strcmp(behavior, "MergedWithPrevious") != 0)
        return g3n_error_set(err, "%s: pre_tokenizer: Split behavior '%s' is not supported (only MergedWithPrevious)",
                             name, behavior);
    if (bool_value(cJSON_GetObjectItemCaseSensitive(pre, "invert"), 0))
        return g3n_error_set(err, "%s: pre_tokenizer: Split with invert=true is not supported", name);
    if (!pattern[0])
        return g3n_error_set(err, "%s: pre_tokenizer: Split with an empty pattern", name);
    t->split_pattern = strdup(pattern);
    if (!t->split_pattern)
        return g3n_error_set(err, "out of memory");
    t->split_pattern_length = strlen(pattern);
    return G3N_OK;
}

/* The id of a TemplateProcessing special token name. */
static int template_special_ids(g3n_tokenizer *t, const char *name, const cJSON *specials, const char *token,
                                int32_t *ids, int *count, g3n_error *err)
{
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(specials, token);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    const cJSON *id;
    if (!cJSON_IsArray(list))
        return g3n_error_set(err, "%s: post_processor: special token '%s' has no 'ids'", name, token);
    cJSON_ArrayForEach(id, list)
    {
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (double)t->id_count)
            return g3n_error_set(err, "%s: post_processor: special token '%s' has a bad id", name, token);
        if (*count >= 16)
            return g3n_error_set(err, "%s: post_processor: too many special tokens", name);
        ids[(*count)++] = (int32_t)id->valuedouble;
    }
    return G3N_OK;
}

static int load_post_processor(g3n_tokenizer *t, const char *name, const cJSON *post, g3n_error *err)
{
    if (is_null(post))
        return G3N_OK;
    const char *type = g3n_json_get_string(post, "type", "");
    if (strcmp(type, "TemplateProcessing") != 0)
        return g3n_error_set(err, "%s: post_processor: type '%s' is not supported (only TemplateProcessing)", name,
                             type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    const cJSON *item;
    int seen_sequence = 0;
    if (!cJSON_IsArray(single))
        return g3n_error_set(err, "%s: post_processor: missing 'single'", name);
    cJSON_ArrayForEach(item, single)
    {
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const cJSON *sequence = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
        if (sequence) {
            if (seen_sequence)
                return g3n_error_set(err, "%s: post_processor: 'single' names the sequence twice", name);
            seen_sequence = 1;
        } else if (special) {
            const char *token = g3n_json_get_string(special, "id", NULL);
            if (!token)
                return g3n_error_set(err, "%s: post_processor: SpecialToken without an id", name);
            if (template_special_ids(t, name, specials, token, seen_sequence ? t->suffix_ids : t->prefix_ids,
                                     seen_sequence ? &t->suffix_count : &t->prefix_count, err) != G3N_OK)
                return G3N_ERR;
        } else {
            return g3n_error_set(err, "%s: post_processor: unknown item in 'single'", name);
        }
    }
    if (!seen_sequence)
        return g3n_error_set(err, "%s: post_processor: 'single' has no Sequence", name);
    return G3N_OK;
}

static int load_decoder(g3n_tokenizer *t, const char *name, const cJSON *decoder, g3n_error *err)
{
    if (is_null(decoder))
        return G3N_OK;
    const char *type = g3n_json_get_string(decoder, "type", "");
    const cJSON *steps = NULL;
    const cJSON *step;
    cJSON *single = NULL;
    if (strcmp(type, "Sequence") == 0) {
        steps = cJSON_GetObjectItemCaseSensitive(decoder, "decoders");
        if (!cJSON_IsArray(steps))
            return g3n_error_set(err, "%s: decoder: Sequence without a 'decoders' list", name);
    } else {
        single = cJSON_CreateArray();
        if (!single)
            return g3n_error_set(err, "out of memory");
        cJSON_AddItemReferenceToArray(single, (cJSON *)decoder);
        steps = single;
    }
    int stage = 0; /* 0: Replace steps, 1: after ByteFallback, 2: after Fuse */
    int status = G3N_OK;
    cJSON_ArrayForEach(step, steps)
    {
        const char *step_type = g3n_json_get_string(step, "type", "");
        if (strcmp(step_type, "Replace") == 0 && stage == 0) {
            status = add_replace_rule(name, "decoder", step, &t->decoder_rules, &t->decoder_rule_count, err);
        } else if (strcmp(step_type, "ByteFallback") == 0 && stage == 0) {
            t->decoder_byte_fallback = 1;
            stage = 1;
        } else if (strcmp(step_type, "Fuse") == 0 && stage < 2) {
            stage = 2; /* decode joins the pieces anyway */
        } else {
            status = g3n_error_set(err,
                                   "%s: decoder: step '%s' is not supported here (supported: Replace..., "
                                   "ByteFallback, Fuse, in that order)",
                                   name, step_type);
        }
        if (status != G3N_OK)
            break;
    }
    cJSON_Delete(single);
    return status;
}

static int trie_new_node(added_trie *trie, g3n_error *err)
{
    if (trie->node_count == trie->node_capacity) {
        int32_t capacity = trie->node_capacity ? trie->node_capacity * 2 : 1024;
        int32_t *ids = realloc(trie->token_id, (size_t)capacity * sizeof(int32_t));
        if (!ids)
            return g3n_error_set(err, "out of memory for the added-token trie");
        trie->token_id = ids;
        trie->node_capacity = capacity;
    }
    trie->token_id[trie->node_count] = -1;
    return trie->node_count++;
}

static int32_t trie_child(const added_trie *trie, int32_t node, uint8_t byte)
{
    if (node == 0)
        return trie->root_child[byte];
    const u64_entry *e = u64_map_get(&trie->edges, ((uint64_t)node << 8) | byte);
    return e ? e->a : -1;
}

static int trie_insert(added_trie *trie, const char *text, size_t length, int32_t id, g3n_error *err)
{
    int32_t node = 0;
    for (size_t i = 0; i < length; i++) {
        uint8_t byte = (uint8_t)text[i];
        int32_t child = trie_child(trie, node, byte);
        if (child < 0) {
            child = trie_new_node(trie, err);
            if (child < 0)
                return G3N_ERR;
            if (node == 0)
                trie->root_child[byte] = child;
            else if (u64_map_put(&trie->edges, ((uint64_t)node << 8) | byte, child, 0, err) != G3N_OK)
                return G3N_ERR;
        }
        node = child;
    }
    trie->token_id[node] = id; /* a later duplicate content wins */
    return G3N_OK;
}

static int load_added_tokens(g3n_tokenizer *t, const char *name, const cJSON *list, g3n_error *err)
{
    if (is_null(list))
        return G3N_OK;
    if (!cJSON_IsArray(list))
        return g3n_error_set(err, "%s: added_tokens: expected a list", name);
    int count = cJSON_GetArraySize(list);
    t->added_pieces = calloc((size_t)count + 1, sizeof(piece_ref));
    t->added_ids = calloc((size_t)count + 1, sizeof(int32_t));
    if (!t->added_pieces || !t->added_ids)
        return g3n_error_set(err, "out of memory for %d added tokens", count);
    if (string_map_init(&t->added_map, (uint64_t)count, err) != G3N_OK)
        return G3N_ERR;
    const cJSON *token;
    int index = 0;
    cJSON_ArrayForEach(token, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(token, "id");
        const char *content = g3n_json_get_string(token, "content", NULL);
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= INT32_MAX || !content)
            return g3n_error_set(err, "%s: added_tokens[%d]: needs a non-negative integer 'id' and a 'content'", name,
                                 index);
        if (!content[0])
            return g3n_error_set(err, "%s: added_tokens[%d]: empty content", name, index);
        static const char *const unsupported[] = {"lstrip", "rstrip", "single_word", "normalized"};
        for (int k = 0; k < 4; k++)
            if (bool_value(cJSON_GetObjectItemCaseSensitive(token, unsupported[k]), 0))
                return g3n_error_set(err, "%s: added_tokens[%d] '%s': %s=true is not supported", name, index, content,
                                     unsupported[k]);
        if (arena_add(t, content, strlen(content), &t->added_pieces[index], err) != G3N_OK)
            return G3N_ERR;
        t->added_ids[index] = (int32_t)id->valuedouble;
        if (string_map_put(&t->added_map, t, t->added_pieces, index, err) != G3N_OK)
            return G3N_ERR;
        index++;
    }
    t->added_count = index;
    return G3N_OK;
}

/* After vocab and added tokens: the id -> piece table, flags, byte ids, trie. */
static int build_id_tables(g3n_tokenizer *t, const cJSON *added_list, g3n_error *err)
{
    int64_t id_count = 0;
    for (int64_t id = 0; id < t->vocab_id_count; id++)
        if (t->vocab_pieces[id].length >= 0)
            id_count = id + 1;
    for (int i = 0; i < t->added_count; i++)
        if (t->added_ids[i] + 1 > id_count)
            id_count = t->added_ids[i] + 1;
    t->id_count = id_count;
    t->pieces = malloc((size_t)(id_count + 1) * sizeof(piece_ref));
    t->id_flags = calloc((size_t)id_count + 1, 1);
    t->byte_of_id = malloc((size_t)(id_count + 1) * sizeof(int16_t));
    t->bmp_char_ids = malloc(65536 * sizeof(int32_t));
    if (!t->pieces || !t->id_flags || !t->byte_of_id || !t->bmp_char_ids)
        return g3n_error_set(err, "out of memory for %lld ids", (long long)id_count);
    for (int64_t id = 0; id < id_count; id++)
        t->pieces[id] = id < t->vocab_id_count ? t->vocab_pieces[id] : (piece_ref){0, -1};
    const cJSON *token = added_list ? added_list->child : NULL;
    for (int i = 0; i < t->added_count; i++, token = token->next) {
        int32_t id = t->added_ids[i];
        t->pieces[id] = t->added_pieces[i];
        t->id_flags[id] |= ID_ADDED;
        if (bool_value(cJSON_GetObjectItemCaseSensitive(token, "special"), 0))
            t->id_flags[id] |= ID_SPECIAL;
        if (trie_insert(&t->trie, piece_data(t, t->added_pieces[i]), (size_t)t->added_pieces[i].length, id, err) !=
            G3N_OK)
            return G3N_ERR;
    }
    /* decoders::ByteFallback: a piece of exactly "<0xNN>" is one byte */
    for (int64_t id = 0; id < id_count; id++) {
        t->byte_of_id[id] = -1;
        piece_ref p = t->pieces[id];
        const char *s = piece_data(t, p);
        uint32_t value;
        char hex[4] = {'0', '0', 0, 0};
        if (p.length == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
            hex[2] = s[3];
            hex[3] = s[4];
            if (g3n_json_hex4(hex, &value))
                t->byte_of_id[id] = (int16_t)value;
        }
    }
    /* BPE::merge_word byte fallback looks up "<0xNN>" (upper-case hex) in the vocabulary */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        t->byte_ids[b] = string_map_get(&t->vocab_map, t, t->vocab_pieces, name, 6);
    }
    /* one-character pieces of the Basic Multilingual Plane, for the first BPE step */
    for (int i = 0; i < 65536; i++)
        t->bmp_char_ids[i] = -1;
    for (uint64_t slot = 0; slot < t->vocab_map.capacity; slot++) {
        int32_t id = t->vocab_map.slots[slot].index;
        if (id < 0)
            continue;
        piece_ref p = t->vocab_pieces[id];
        uint32_t cp;
        if (p.length >= 1 && p.length <= 3 &&
            g3n_utf8_decode((const uint8_t *)piece_data(t, p), (size_t)p.length, &cp) == (size_t)p.length)
            t->bmp_char_ids[cp] = id;
    }
    /* the characters that may precede "▁" inside a piece (see metaspace_cuts) */
    t->metaspace_cuts = t->bmp_char_ids[0x2581] >= 0;
    t->metaspace_blockers = calloc(65536 / 8, 1);
    if (!t->metaspace_blockers)
        return g3n_error_set(err, "out of memory");
    for (int64_t id = 0; id < t->vocab_id_count && t->metaspace_cuts; id++) {
        piece_ref p = t->vocab_pieces[id];
        const uint8_t *s = (const uint8_t *)piece_data(t, p);
        size_t i = 0;
        uint32_t previous = 0x2581, cp;
        while (p.length > 0 && i < (size_t)p.length) {
            size_t n = g3n_utf8_decode(s + i, (size_t)p.length - i, &cp);
            if (!n)
                break;
            if (cp == 0x2581 && i > 0 && previous != 0x2581) {
                if (previous < 65536)
                    t->metaspace_blockers[previous >> 3] |= (uint8_t)(1u << (previous & 7));
                else
                    t->metaspace_blocker_beyond_bmp = 1;
            }
            previous = cp;
            i += n;
        }
    }
    return G3N_OK;
}

/* The merge map: (left, right) -> (rank, merged id); a later duplicate wins,
 * as the Rust HashMap collect does. The string lookups (cache-miss bound)
 * run in parallel. */
static int resolve_merges(g3n_tokenizer *t, const char *name, load_state *st, g3n_error *err)
{
    int64_t count = st->merge_count;
    int32_t *ids = malloc((size_t)(count ? count : 1) * 3 * sizeof(int32_t));
    if (!ids)
        return g3n_error_set(err, "out of memory for %lld merges", (long long)count);
    int64_t first_bad = count;
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (int64_t rank = 0; rank < count; rank++) {
        merge_ids(t, st->merge_strings[rank], st->merge_splits[rank], &ids[3 * rank]);
        if ((ids[3 * rank] < 0 || ids[3 * rank + 1] < 0 || ids[3 * rank + 2] < 0) && rank < first_bad)
            first_bad = rank;
    }
    if (first_bad < count) {
        const int32_t *bad = &ids[3 * first_bad];
        piece_ref merged = st->merge_strings[first_bad];
        int split = st->merge_splits[first_bad];
        g3n_error_set(err, "%s: model.merges[%lld] ('%.*s', '%s'): %s is not in the vocabulary", name,
                      (long long)first_bad, split, piece_data(t, merged), piece_data(t, merged) + split,
                      bad[0] < 0 ? "the left piece" : bad[1] < 0 ? "the right piece" : "the merged piece");
        free(ids);
        return G3N_ERR;
    }
    int status = u64_map_init(&t->merges, (uint64_t)count, err);
    for (int64_t rank = 0; rank < count && status == G3N_OK; rank++) {
        const int32_t *m = &ids[3 * rank];
        status = u64_map_put(&t->merges, ((uint64_t)(uint32_t)m[0] << 32) | (uint32_t)m[1], (int32_t)rank, m[2], err);
    }
    free(ids);
    return status;
}

static int check_model(g3n_tokenizer *t, const char *name, load_state *st, g3n_error *err)
{
    if (!st->has_model)
        return g3n_error_set(err, "%s: no 'model' section", name);
    if (!cJSON_IsString(st->model_type) || strcmp(st->model_type->valuestring, "BPE") != 0)
        return g3n_error_set(err, "%s: model.type is '%s'; only BPE is supported", name,
                             cJSON_IsString(st->model_type) ? st->model_type->valuestring : "(missing)");
    if (!st->has_vocab || !st->has_merges)
        return g3n_error_set(err, "%s: model needs 'vocab' and 'merges'", name);
    if (!is_null(st->dropout))
        return g3n_error_set(err, "%s: model.dropout is set; BPE dropout is not supported", name);
    if (!is_null(st->continuing_subword_prefix) || !is_null(st->end_of_word_suffix))
        return g3n_error_set(err, "%s: continuing_subword_prefix / end_of_word_suffix are not supported", name);
    if (bool_value(st->ignore_merges, 0))
        return g3n_error_set(err, "%s: model.ignore_merges=true is not supported", name);
    t->byte_fallback = bool_value(st->byte_fallback, 0);
    t->fuse_unk = bool_value(st->fuse_unk, 0);
    t->unk_id = -1;
    if (cJSON_IsString(st->unk_token)) {
        const char *unk = st->unk_token->valuestring;
        t->unk_id = string_map_get(&t->vocab_map, t, t->vocab_pieces, unk, strlen(unk));
        if (t->unk_id < 0)
            return g3n_error_set(err, "%s: model.unk_token '%s' is not in the vocabulary", name, unk);
    }
    return G3N_OK;
}

static void load_state_free(load_state *st)
{
    cJSON *all[] = {st->added_tokens, st->normalizer, st->pre_tokenizer, st->post_processor, st->decoder,
                    st->model_type, st->byte_fallback, st->unk_token, st->fuse_unk, st->dropout,
                    st->continuing_subword_prefix, st->end_of_word_suffix, st->ignore_merges};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        cJSON_Delete(all[i]);
    free(st->merge_splits);
    free(st->merge_strings);
    free(st->scratch.data);
    free(st->left.data);
}

int g3n_tokenizer_load_from_memory(g3n_tokenizer **out, const char *json, size_t size, const char *name,
                                   g3n_error *err)
{
    *out = NULL;
    g3n_tokenizer *t = calloc(1, sizeof(*t));
    if (!t)
        return g3n_error_set(err, "out of memory");
    memset(t->trie.root_child, 0xff, sizeof(t->trie.root_child));
    load_state st;
    memset(&st, 0, sizeof(st));
    g3n_json_scanner s = {.begin = json, .p = json, .end = json + size, .name = name, .err = err};
    int status = G3N_OK;
    if (trie_new_node(&t->trie, err) < 0 || u64_map_init(&t->trie.edges, 1 << 16, err) != G3N_OK)
        status = G3N_ERR;
    /* Reserve by the document size so the big arrays are not grown by copying
     * (pages never touched cost nothing): pieces take well under a quarter of
     * the file, a merge at least ~48 bytes of it. */
    if (status == G3N_OK && size > (1u << 22)) {
        t->arena_capacity = size / 4;
        t->arena = malloc(t->arena_capacity);
        st.merge_capacity = (int64_t)(size / 48);
        st.merge_strings = malloc((size_t)st.merge_capacity * sizeof(piece_ref));
        st.merge_splits = malloc((size_t)st.merge_capacity * sizeof(int32_t));
        if (!t->arena || !st.merge_strings || !st.merge_splits)
            status = g3n_error_set(err, "out of memory for a %zu-byte tokenizer.json", size);
    }
    if (status == G3N_OK)
        status = g3n_json_scan_object(&s, "top level", t, top_member, &st);
    if (status == G3N_OK) {
        g3n_json_scan_space(&s);
        if (s.p != s.end)
            status = g3n_json_scan_fail(&s, "top level", "unexpected data after the document");
    }
    if (status == G3N_OK)
        status = check_model(t, name, &st, err);
    if (status == G3N_OK)
        status = load_added_tokens(t, name, st.added_tokens, err);
    if (status == G3N_OK)
        status = build_id_tables(t, st.added_tokens, err);
    if (status == G3N_OK)
        status = resolve_merges(t, name, &st, err);
    if (status == G3N_OK)
        status = load_normalizer(t, name, st.normalizer, err);
    if (status == G3N_OK)
        status = load_pre_tokenizer(t, name, st.pre_tokenizer, err);
    if (status == G3N_OK)
        status = load_post_processor(t, name, st.post_processor, err);
    if (status == G3N_OK)
        status = load_decoder(t, name, st.decoder, err);
    if (status == G3N_OK && t->id_count == 0)
        status = g3n_error_set(err, "%s: the vocabulary is empty", name);
    free(s.string.data);
    load_state_free(&st);
    if (status != G3N_OK) {
        g3n_tokenizer_free(t);
        return g3n_error_one_line(err); /* pieces quoted in the message may hold newlines */
    }
    *out = t;
    return G3N_OK;
}

int g3n_tokenizer_load(g3n_tokenizer **out, const char *path, g3n_error *err)
{
    *out = NULL;
    /* mapped rather than read: no 33 MB copy */
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return g3n_error_set(err, "tokenizer: %s: %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        close(fd);
        return g3n_error_set(err, "tokenizer: %s: not a regular file", path);
    }
    if (info.st_size == 0) {
        close(fd);
        return g3n_error_set(err, "tokenizer: %s: empty file", path);
    }
    void *data = mmap(NULL, (size_t)info.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) {
        char *copy = NULL;
        size_t size = 0;
        if (g3n_read_file(path, &copy, &size, err) != G3N_OK)
            return g3n_error_prefix(err, "tokenizer");
        int status = g3n_tokenizer_load_from_memory(out, copy, size, path, err);
        free(copy);
        return status;
    }
    int status = g3n_tokenizer_load_from_memory(out, data, (size_t)info.st_size, path, err);
    munmap(data, (size_t)info.st_size);
    return status;
}

void g3n_tokenizer_free(g3n_tokenizer *t)
{
    if (!t)
        return;
    free(t->arena);
    free(t->vocab_pieces);
    string_map_free(&t->vocab_map);
    free(t->bmp_char_ids);
    free(t->metaspace_blockers);
    free(t->pieces);
    free(t->id_flags);
    free(t->byte_of_id);
    free(t->added_pieces);
    free(t->added_ids);
    string_map_free(&t->added_map);
    free(t->trie.token_id);
    u64_map_free(&t->trie.edges);
    u64_map_free(&t->merges);
    for (int i = 0; i < t->normalizer_rule_count; i++) {
        free(t->normalizer_rules[i].pattern);
        free(t->normalizer_rules[i].content);
    }
    free(t->normalizer_rules);
    free(t->split_pattern);
    for (int i = 0; i < t->decoder_rule_count; i++) {
        free(t->decoder_rules[i].pattern);
        free(t->decoder_rules[i].content);
    }
    free(t->decoder_rules);
    free(t);
}

/* ------------------------------------------------------------------ lookups */

int64_t g3n_tokenizer_id_count(const g3n_tokenizer *t)
{
    return t->id_count;
}

const char *g3n_tokenizer_piece(const g3n_tokenizer *t, int32_t id, size_t *length)
{
    if (id < 0 || id >= t->id_count || t->pieces[id].length < 0)
        return NULL;
    if (length)
        *length = (size_t)t->pieces[id].length;
    return piece_data(t, t->pieces[id]);
}

int32_t g3n_tokenizer_piece_to_id(const g3n_tokenizer *t, const char *piece, size_t length)
{
    int32_t added = string_map_get(&t->added_map, t, t->added_pieces, piece, length);
    if (added >= 0)
        return t->added_ids[added];
    return string_map_get(&t->vocab_map, t, t->vocab_pieces, piece, length);
}

void g3n_tokenizer_set_word_cuts(g3n_tokenizer *t, int enabled)
{
    t->metaspace_cuts = enabled && t->bmp_char_ids[0x2581] >= 0;
}

int g3n_tokenizer_is_special(const g3n_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->id_count && (t->id_flags[id] & ID_SPECIAL);
}

int32_t g3n_tokenizer_bos_id(const g3n_tokenizer *t)
{
    return t->prefix_count > 0 ? t->prefix_ids[0] : -1;
}

void g3n_token_ids_free(g3n_token_ids *ids)
{
    free(ids->ids);
    memset(ids, 0, sizeof(*ids));
}

static int token_ids_reserve(g3n_token_ids *ids, int64_t extra, g3n_error *err)
{
    if (ids->count + extra <= ids->capacity)
        return G3N_OK;
    int64_t capacity = ids->capacity ? ids->capacity : 64;
    while (capacity < ids->count + extra)
        capacity *= 2;
    int32_t *grown = realloc(ids->ids, (size_t)capacity * sizeof(int32_t));
    if (!grown)
        return g3n_error_set(err, "out of memory for %lld token ids", (long long)capacity);
    ids->ids = grown;
    ids->capacity = capacity;
    return G3N_OK;
}

int g3n_token_ids_append(g3n_token_ids *ids, int32_t id, g3n_error *err)
{
    if (token_ids_reserve(ids, 1, err) != G3N_OK)
        return G3N_ERR;
    ids->ids[ids->count++] = id;
    return G3N_OK;
}

/* ------------------------------------------------------------------ encoding */

typedef struct bpe_symbol {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    int32_t removed;
} bpe_symbol;

typedef struct bpe_merge {
    int32_t rank, pos, new_id;
} bpe_merge;

typedef struct encode_scratch {
    bpe_symbol *symbols;
    int64_t symbol_capacity;
    bpe_merge *heap;
    int64_t heap_count, heap_capacity;
    g3n_text_buffer normalized;
    g3n_text_buffer stages[2];
} encode_scratch;

static void encode_scratch_free(encode_scratch *x)
{
    free(x->symbols);
    free(x->heap);
    free(x->normalized.data);
    free(x->stages[0].data);
    free(x->stages[1].data);
}

/* Word::merge_all orders merges by (rank, position), smallest first. */
static int merge_less(const bpe_merge *a, const bpe_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(encode_scratch *x, bpe_merge m, g3n_error *err)
{
    if (x->heap_count == x->heap_capacity) {
        int64_t capacity = x->heap_capacity ? x->heap_capacity * 2 : 256;
        bpe_merge *heap = realloc(x->heap, (size_t)capacity * sizeof(bpe_merge));
        if (!heap)
            return g3n_error_set(err, "out of memory for the BPE queue");
        x->heap = heap;
        x->heap_capacity = capacity;
    }
    int64_t i = x->heap_count++;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!merge_less(&m, &x->heap[parent]))
            break;
        x->heap[i] = x->heap[parent];
        i = parent;
    }
    x->heap[i] = m;
    return G3N_OK;
}

static bpe_merge heap_pop(encode_scratch *x)
{
    bpe_merge top = x->heap[0];
    bpe_merge last = x->heap[--x->heap_count];
    int64_t i = 0, n = x->heap_count;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && merge_less(&x->heap[child + 1], &x->heap[child]))
            child++;
        if (!merge_less(&x->heap[child], &last))
            break;
        x->heap[i] = x->heap[child];
        i = child;
    }
    if (n > 0)
        x->heap[i] = last;
    return top;
}

static const u64_entry *merge_lookup(const g3n_tokenizer *t, int32_t left, int32_t right)
{
    return u64_map_get(&t->merges, ((uint64_t)(uint32_t)left << 32) | (uint32_t)right);
}

/* BPE::merge_word + Word::merge_all on one pre-tokenized word. */
static int bpe_word(const g3n_tokenizer *t, const char *word, size_t length, encode_scratch *x, g3n_token_ids *out,
                    g3n_error *err)
{
    if ((int64_t)length > x->symbol_capacity) {
        int64_t capacity = x->symbol_capacity ? x->symbol_capacity : 256;
        while (capacity < (int64_t)length)
            capacity *= 2;
        bpe_symbol *symbols = realloc(x->symbols, (size_t)capacity * sizeof(bpe_symbol));
        if (!symbols)
            return g3n_error_set(err, "out of memory for BPE symbols");
        x->symbols = symbols;
        x->symbol_capacity = capacity;
    }
    /* at most one symbol per byte: characters, byte-fallback bytes, fused unks */
    int32_t count = 0;
    int32_t pending_unk = 0; /* fused unk waiting to be added */
    const uint8_t *s = (const uint8_t *)word;
    size_t i = 0;
#define ADD_SYMBOL(token)                        \
    do {                                         \
        x->symbols[count].id = (token);          \
        x->symbols[count].prev = count - 1;      \
        x->symbols[count].next = count + 1;      \
        x->symbols[count].removed = 0;           \
        count++;                                 \
    } while (0)
    while (i < length) {
        uint32_t cp;
        size_t n = s[i] < 0x80 ? (cp = s[i], 1) : g3n_utf8_decode(s + i, length - i, &cp);
        if (!n)
            return g3n_error_set(err, "text is not valid UTF-8");
        int32_t id = cp < 65536 ? t->bmp_char_ids[cp]
                                : string_map_get(&t->vocab_map, t, t->vocab_pieces, word + i, n);
        if (id >= 0) {
            if (pending_unk) {
                ADD_SYMBOL(t->unk_id);
                pending_unk = 0;
            }
            ADD_SYMBOL(id);
        } else {
            int all_bytes = t->byte_fallback;
            for (size_t k = 0; k < n && all_bytes; k++)
                all_bytes = t->byte_ids[s[i + k]] >= 0;
            if (all_bytes) {
                /* as in merge_word, byte fallback does not flush a pending unk */
                for (size_t k = 0; k < n; k++)
                    ADD_SYMBOL(t->byte_ids[s[i + k]]);
            } else if (t->unk_id >= 0) {
                if (pending_unk && !t->fuse_unk)
                    ADD_SYMBOL(t->unk_id);
                pending_unk = 1;
            }
        }
        i += n;
    }
    if (pending_unk)
        ADD_SYMBOL(t->unk_id);
#undef ADD_SYMBOL
    if (count == 0)
        return G3N_OK;
    x->symbols[count - 1].next = -1;

    /* Word::merge_all */
    x->heap_count = 0;
    for (int32_t k = 0; k + 1 < count; k++) {
        const u64_entry *m = merge_lookup(t, x->symbols[k].id, x->symbols[k + 1].id);
        if (m && heap_push(x, (bpe_merge){m->a, k, m->b}, err) != G3N_OK)
            return G3N_ERR;
    }
    while (x->heap_count > 0) {
        bpe_merge top = heap_pop(x);
        bpe_symbol *current = &x->symbols[top.pos];
        if (current->removed || current->next < 0)
            continue;
        bpe_symbol *right = &x->symbols[current->next];
        const u64_entry *m = merge_lookup(t, current->id, right->id);
        if (!m || m->b != top.new_id)
            continue; /* an expired queue entry */
        current->id = top.new_id;
        right->removed = 1;
        current->next = right->next;
        if (right->next >= 0)
            x->symbols[right->next].prev = top.pos;
        if (current->prev >= 0) {
            const u64_entry *left = merge_lookup(t, x->symbols[current->prev].id, current->id);
            if (left && heap_push(x, (bpe_merge){left->a, current->prev, left->b}, err) != G3N_OK)
                return G3N_ERR;
        }
        if (current->next >= 0) {
            const u64_entry *next = merge_lookup(t, current->id, x->symbols[current->next].id);
            if (next && heap_push(x, (bpe_merge){next->a, top.pos, next->b}, err) != G3N_OK)
                return G3N_ERR;
        }
    }
    if (token_ids_reserve(out, count, err) != G3N_OK)
        return G3N_ERR;
    for (int32_t k = 0; k >= 0; k = x->symbols[k].next)
        out->ids[out->count++] = x->symbols[k].id;
    return G3N_OK;
}

/* bpe_word over the independent parts of a word (see metaspace_cuts). */
static int bpe_word_cut(const g3n_tokenizer *t, const char *word, size_t length, encode_scratch *x,
                        g3n_token_ids *out, g3n_error *err)
{
    if (!t->metaspace_cuts || length < 64)
        return bpe_word(t, word, length, x, out, err);
    const uint8_t *s = (const uint8_t *)word;
    size_t start = 0;
    for (size_t i = 1; i + 3 <= length; i++) {
        if (s[i] != 0xE2 || s[i + 1] != 0x96 || s[i + 2] != 0x81)
            continue;
        size_t p = i - 1; /* start of the previous character */
        while (p > 0 && (s[p] & 0xC0) == 0x80)
            p--;
        uint32_t cp;
        if (g3n_utf8_decode(s + p, i - p, &cp) != i - p || cp == 0x2581)
            continue;
        int32_t id = cp < 65536 ? t->bmp_char_ids[cp] : string_map_get(&t->vocab_map, t, t->vocab_pieces, word + p, i - p);
        int blocked = cp < 65536 ? (t->metaspace_blockers[cp >> 3] >> (cp & 7)) & 1 : t->metaspace_blocker_beyond_bmp;
        if (id < 0 || blocked)
            continue;
        if (bpe_word(t, word + start, i - start, x, out, err) != G3N_OK)
            return G3N_ERR;
        start = i;
    }
    return bpe_word(t, word + start, length - start, x, out, err);
}

/* A piece of text between added tokens: normalize, pre-tokenize, BPE. */
static int encode_segment(const g3n_tokenizer *t, const char *text, size_t length, encode_scratch *x,
                          g3n_token_ids *out, g3n_error *err)
{
    if (length == 0)
        return G3N_OK;
    x->normalized.length = 0;
    if (g3n_text_buffer_append_replaced(&x->normalized, text, length, t->normalizer_rules, t->normalizer_rule_count,
                                        x->stages, err) != G3N_OK)
        return G3N_ERR;
    const char *s = x->normalized.data;
    size_t n = x->normalized.length;
    if (!t->split_pattern)
        return bpe_word_cut(t, s, n, x, out, err);
    /* Split(pattern, MergedWithPrevious): each occurrence ends a word */
    size_t start = 0, i = 0;
    while (i + t->split_pattern_length <= n) {
        if (memcmp(s + i, t->split_pattern, t->split_pattern_length) == 0) {
            i += t->split_pattern_length;
            if (bpe_word_cut(t, s + start, i - start, x, out, err) != G3N_OK)
                return G3N_ERR;
            start = i;
        } else {
            i++;
        }
    }
    if (start < n)
        return bpe_word_cut(t, s + start, n - start, x, out, err);
    return G3N_OK;
}

int g3n_tokenizer_encode(const g3n_tokenizer *t, const char *text, size_t length, int add_special_tokens,
                         g3n_token_ids *out, g3n_error *err)
{
    size_t valid = g3n_utf8_valid_prefix(text, length);
    if (valid != length)
        return g3n_error_set(err, "encode: text is not valid UTF-8 at byte %zu", valid);
    encode_scratch x;
    memset(&x, 0, sizeof(x));
    int status = G3N_OK;
    if (add_special_tokens)
        for (int k = 0; k < t->prefix_count && status == G3N_OK; k++)
            status = g3n_token_ids_append(out, t->prefix_ids[k], err);
    /* AddedVocabulary::split_with_indices: leftmost-longest matches of the added tokens */
    size_t segment_start = 0, i = 0;
    while (i < length && status == G3N_OK) {
        int32_t node = t->trie.root_child[(uint8_t)text[i]];
        int32_t match_id = -1;
        size_t match_end = 0, j = i + 1;
        while (node >= 0) {
            if (t->trie.token_id[node] >= 0) {
                match_id = t->trie.token_id[node];
                match_end = j;
            }
            if (j >= length)
                break;
            node = trie_child(&t->trie, node, (uint8_t)text[j]);
            j++;
        }
        if (match_id < 0) {
            i++;
            continue;
        }
        status = encode_segment(t, text + segment_start, i - segment_start, &x, out, err);
        if (status == G3N_OK)
            status = g3n_token_ids_append(out, match_id, err);
        i = segment_start = match_end;
    }
    if (status == G3N_OK)
        status = encode_segment(t, text + segment_start, length - segment_start, &x, out, err);
    if (add_special_tokens)
        for (int k = 0; k < t->suffix_count && status == G3N_OK; k++)
            status = g3n_token_ids_append(out, t->suffix_ids[k], err);
    encode_scratch_free(&x);
    return status;
}

/* ------------------------------------------------------------------ decoding */

static uint8_t *pending_data(g3n_detokenizer *d)
{
    return d->pending_heap ? d->pending_heap : d->pending_bytes;
}

/* ByteFallback: a finished run of bytes is its text if valid UTF-8, else one U+FFFD per byte. */
static int flush_pending(g3n_detokenizer *d, g3n_text_buffer *out, g3n_error *err)
{
    if (d->pending_count == 0)
        return G3N_OK;
    const char *bytes = (const char *)pending_data(d);
    int status;
    if (g3n_utf8_valid(bytes, d->pending_count)) {
        status = g3n_text_buffer_append(out, bytes, d->pending_count, err);
    } else {
        status = g3n_text_buffer_reserve(out, 3 * d->pending_count, err);
        for (size_t k = 0; k < d->pending_count && status == G3N_OK; k++)
            status = g3n_text_buffer_append(out, "\xEF\xBF\xBD", 3, err);
    }
    d->pending_count = 0;
    return status;
}

static int feed(g3n_detokenizer *d, int32_t id, g3n_text_buffer *out, g3n_text_buffer *scratch, g3n_error *err)
{
    const g3n_tokenizer *t = d->tokenizer;
    if (id < 0 || id >= t->id_count || t->pieces[id].length < 0)
        return G3N_OK; /* decode drops ids without a piece */
    if (d->skip_special_tokens && (t->id_flags[id] & ID_SPECIAL))
        return G3N_OK;
    if (t->decoder_byte_fallback && t->byte_of_id[id] >= 0) {
        if (d->pending_count == (d->pending_heap ? d->pending_capacity : sizeof(d->pending_bytes))) {
            size_t capacity = d->pending_count * 2;
            uint8_t *heap = realloc(d->pending_heap, capacity);
            if (!heap)
                return g3n_error_set(err, "out of memory for byte pieces");
            if (!d->pending_heap)
                memcpy(heap, d->pending_bytes, d->pending_count);
            d->pending_heap = heap;
            d->pending_capacity = capacity;
        }
        pending_data(d)[d->pending_count++] = (uint8_t)t->byte_of_id[id];
        return G3N_OK;
    }
    if (flush_pending(d, out, err) != G3N_OK)
        return G3N_ERR;
    piece_ref p = t->pieces[id];
    return g3n_text_buffer_append_replaced(out, piece_data(t, p), (size_t)p.length, t->decoder_rules,
                                           t->decoder_rule_count, scratch, err);
}

int g3n_tokenizer_decode(const g3n_tokenizer *t, const int32_t *ids, int64_t count, int skip_special_tokens,
                         char **text, size_t *length, g3n_error *err)
{
    g3n_detokenizer d;
    g3n_detokenizer_init(&d, t, skip_special_tokens);
    g3n_text_buffer out = {0}, scratch[2] = {{0}, {0}};
    int status = g3n_text_buffer_reserve(&out, 0, err);
    if (status == G3N_OK)
        out.data[0] = '\0';
    for (int64_t k = 0; k < count && status == G3N_OK; k++)
        status = feed(&d, ids[k], &out, scratch, err);
    if (status == G3N_OK)
        status = flush_pending(&d, &out, err);
    g3n_detokenizer_free(&d);
    free(scratch[0].data);
    free(scratch[1].data);
    if (status != G3N_OK) {
        free(out.data);
        *text = NULL;
        return G3N_ERR;
    }
    *text = out.data;
    if (length)
        *length = out.length;
    return G3N_OK;
}

void g3n_detokenizer_init(g3n_detokenizer *d, const g3n_tokenizer *t, int skip_special_tokens)
{
    memset(d, 0, sizeof(*d));
    d->tokenizer = t;
    d->skip_special_tokens = skip_special_tokens;
}

static int detokenizer_step(g3n_detokenizer *d, int32_t id, int flush, const char **text, size_t *length,
                            g3n_error *err)
{
    g3n_text_buffer out = {d->output, 0, d->output_capacity};
    int status = g3n_text_buffer_reserve(&out, 0, err);
    if (status == G3N_OK) {
        out.data[0] = '\0';
        status = flush ? flush_pending(d, &out, err) : feed(d, id, &out, NULL, err);
    }
    d->output = out.data;
    d->output_capacity = out.capacity;
    *text = status == G3N_OK ? out.data : "";
    if (length)
        *length = status == G3N_OK ? out.length : 0;
    return status;
}

int g3n_detokenizer_push(g3n_detokenizer *d, int32_t id, const char **text, size_t *length, g3n_error *err)
{
    return detokenizer_step(d, id, 0, text, length, err);
}

int g3n_detokenizer_flush(g3n_detokenizer *d, const char **text, size_t *length, g3n_error *err)
{
    return detokenizer_step(d, -1, 1, text, length, err);
}

void g3n_detokenizer_free(g3n_detokenizer *d)
{
    free(d->pending_heap);
    free(d->output);
    d->pending_heap = NULL;
    d->output = NULL;
    d->pending_count = d->pending_capacity = d->output_capacity = 0;
}
