/* tokenizer_check.c - `g3n check` kind "tokenizer": every encode case of
 * case.json (ids with <bos>, ids without, pieces) and every decode case (with
 * and without special tokens, whole and through the streaming detokenizer)
 * must match the Hugging Face `tokenizers` output exactly. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_kinds.h"
#include "json_util.h"
#include "tokenizer.h"

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Index of the first difference between ids and a JSON list of ints, -1 if equal. */
static int64_t first_difference(const int32_t *ids, int64_t count, const cJSON *expected)
{
    int64_t n = cJSON_GetArraySize(expected);
    int64_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, expected)
    {
        if (i >= count || !cJSON_IsNumber(item) || (int64_t)item->valuedouble != ids[i])
            return i;
        i++;
    }
    return count == n ? -1 : n;
}

/* The case text shortened for a result line. */
static void short_text(const char *text, char *out, size_t size)
{
    size_t j = 0;
    for (size_t i = 0; text[i] && j + 8 < size; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        } else if (ch < 0x20) {
            j += (size_t)snprintf(out + j, size - j, "\\x%02x", ch);
        } else {
            out[j++] = (char)ch;
        }
        if (j > 32 && ((unsigned char)text[i + 1] & 0xC0) != 0x80) {
            if (text[i + 1])
                memcpy(out + j, "...", 3), j += 3;
            break;
        }
    }
    out[j] = '\0';
}

static int check_encode(g3n_check_case *c, const g3n_tokenizer *tok, int index, const cJSON *entry, g3n_error *err)
{
    const char *text = g3n_json_get_string(entry, "text", NULL);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    const cJSON *ids_no_bos = cJSON_GetObjectItemCaseSensitive(entry, "ids_no_bos");
    const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(entry, "pieces");
    if (!text || !cJSON_IsArray(ids) || !cJSON_IsArray(ids_no_bos))
        return g3n_error_set(err, "case.json: encode[%d] needs text, ids and ids_no_bos", index);
    g3n_token_ids with_bos = {0}, without_bos = {0};
    char name[64], shown[64], detail[160] = "";
    snprintf(name, sizeof(name), "encode[%d]", index);
    short_text(text, shown, sizeof(shown));
    if (g3n_tokenizer_encode(tok, text, strlen(text), 1, &with_bos, err) != G3N_OK ||
        g3n_tokenizer_encode(tok, text, strlen(text), 0, &without_bos, err) != G3N_OK) {
        g3n_token_ids_free(&with_bos);
        g3n_token_ids_free(&without_bos);
        g3n_check_record(c, name, 0, "'%s' %s", shown, err->message);
        return G3N_OK;
    }
    int64_t d1 = first_difference(with_bos.ids, with_bos.count, ids);
    int64_t d2 = first_difference(without_bos.ids, without_bos.count, ids_no_bos);
    int64_t d3 = -1;
    if (cJSON_IsArray(pieces)) {
        int64_t i = 0;
        const cJSON *piece;
        cJSON_ArrayForEach(piece, pieces)
        {
            const char *mine = i < without_bos.count ? g3n_tokenizer_piece(tok, without_bos.ids[i], NULL) : NULL;
            if (!cJSON_IsString(piece) || !mine || strcmp(mine, piece->valuestring) != 0) {
                d3 = i;
                break;
            }
            i++;
        }
        if (d3 < 0 && i != without_bos.count)
            d3 = i;
    }
    if (d1 >= 0)
        snprintf(detail, sizeof(detail), "ids differ at %lld (got %d)", (long long)d1,
                 d1 < with_bos.count ? with_bos.ids[d1] : -1);
    else if (d2 >= 0)
        snprintf(detail, sizeof(detail), "ids_no_bos differ at %lld", (long long)d2);
    else if (d3 >= 0)
        snprintf(detail, sizeof(detail), "pieces differ at %lld", (long long)d3);
    g3n_check_record(c, name, d1 < 0 && d2 < 0 && d3 < 0, "'%s' tokens=%lld exact%s%s", shown,
                     (long long)with_bos.count, detail[0] ? ": " : "", detail);
    g3n_token_ids_free(&with_bos);
    g3n_token_ids_free(&without_bos);
    return G3N_OK;
}

/* Decodes through the streaming detokenizer; checks every chunk is valid UTF-8. */
static int stream_decode(const g3n_tokenizer *tok, const int32_t *ids, int64_t count, int skip, char **text,
                         int *chunks_valid, g3n_error *err)
{
    g3n_detokenizer d;
    g3n_detokenizer_init(&d, tok, skip);
    size_t length = 0, capacity = 64;
    char *all = malloc(capacity);
    int status = all ? G3N_OK : g3n_error_set(err, "out of memory");
    *chunks_valid = 1;
    for (int64_t k = 0; k <= count && status == G3N_OK; k++) {
        const char *chunk;
        size_t n;
        status = k < count ? g3n_detokenizer_push(&d, ids[k], &chunk, &n, err)
                           : g3n_detokenizer_flush(&d, &chunk, &n, err);
        if (status != G3N_OK)
            break;
        if (!g3n_utf8_valid(chunk, n))
            *chunks_valid = 0;
        if (length + n + 1 > capacity) {
            while (length + n + 1 > capacity)
                capacity *= 2;
            char *grown = realloc(all, capacity);
            if (!grown) {
                status = g3n_error_set(err, "out of memory");
                break;
            }
            all = grown;
        }
        memcpy(all + length, chunk, n);
        length += n;
    }
    g3n_detokenizer_free(&d);
    if (status != G3N_OK) {
        free(all);
        return G3N_ERR;
    }
    all[length] = '\0';
    *text = all;
    return G3N_OK;
}

static int check_decode(g3n_check_case *c, const g3n_tokenizer *tok, int index, const cJSON *entry, g3n_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    const char *expected[2] = {g3n_json_get_string(entry, "text", NULL),
                               g3n_json_get_string(entry, "text_skip_special", NULL)};
    if (!cJSON_IsArray(list) || !expected[0] || !expected[1])
        return g3n_error_set(err, "case.json: decode[%d] needs ids, text and text_skip_special", index);
    int64_t count = cJSON_GetArraySize(list);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(count ? count : 1));
    if (!ids)
        return g3n_error_set(err, "out of memory");
    int64_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list) ids[i++] = (int32_t)item->valuedouble;
    int whole_ok = 1, stream_ok = 1, chunks_ok = 1;
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL, *streamed = NULL;
        int chunks_valid = 0;
        if (g3n_tokenizer_decode(tok, ids, count, skip, &text, NULL, err) != G3N_OK ||
            stream_decode(tok, ids, count, skip, &streamed, &chunks_valid, err) != G3N_OK) {
            free(text);
            free(ids);
            return G3N_ERR;
        }
        whole_ok &= strcmp(text, expected[skip]) == 0;
        stream_ok &= strcmp(streamed, expected[skip]) == 0;
        chunks_ok &= chunks_valid;
        free(text);
        free(streamed);
    }
    char name[64];
    snprintf(name, sizeof(name), "decode[%d]", index);
    g3n_check_record(c, name, whole_ok, "ids=%lld text and text_skip_special exact", (long long)count);
    snprintf(name, sizeof(name), "decode_stream[%d]", index);
    g3n_check_record(c, name, stream_ok && chunks_ok, "one id at a time: %s, %s", stream_ok ? "same text" : "DIFFERS",
                     chunks_ok ? "every chunk valid UTF-8" : "BROKEN UTF-8 chunk");
    free(ids);
    return G3N_OK;
}

int g3n_check_kind_tokenizer(g3n_check_case *c, g3n_error *err)
{
    char path[1200];
    g3n_check_case_file(c, "tokenizer.json", path, sizeof(path));
    FILE *probe = fopen(path, "rb");
    if (probe)
        fclose(probe);
    else if (c->tokenizer_path)
        snprintf(path, sizeof(path), "%s", c->tokenizer_path);
    else
        return g3n_error_set(err, "%s: no tokenizer.json in the case and no --tokenizer", c->case_dir);
    g3n_tokenizer *tok = NULL;
    double start = seconds_now();
    if (g3n_tokenizer_load(&tok, path, err) != G3N_OK)
        return G3N_ERR;
    fprintf(c->out ? c->out : stdout, "loaded %s: %lld ids in %.3f s\n", path, (long long)g3n_tokenizer_id_count(tok),
            seconds_now() - start);
    const cJSON *encode = cJSON_GetObjectItemCaseSensitive(c->case_json, "encode");
    const cJSON *decode = cJSON_GetObjectItemCaseSensitive(c->case_json, "decode");
    int status = G3N_OK;
    if (!cJSON_IsArray(encode) || !cJSON_IsArray(decode))
        status = g3n_error_set(err, "%s/case.json: needs 'encode' and 'decode' lists", c->case_dir);
    int index = 0;
    const cJSON *entry;
    if (status == G3N_OK)
        cJSON_ArrayForEach(entry, encode)
        {
            if ((status = check_encode(c, tok, index++, entry, err)) != G3N_OK)
                break;
        }
    index = 0;
    if (status == G3N_OK)
        cJSON_ArrayForEach(entry, decode)
        {
            if ((status = check_decode(c, tok, index++, entry, err)) != G3N_OK)
                break;
        }
    g3n_tokenizer_free(tok);
    return status;
}
