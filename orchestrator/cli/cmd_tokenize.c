/* cmd_tokenize.c - `g3n tokenize` (text -> ids and pieces) and
 * `g3n detokenize` (ids -> text). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "json_util.h"
#include "tokenizer.h"

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: g3n tokenize --tokenizer FILE [options] [TEXT...]\n"
            "Encodes TEXT (the arguments joined by spaces; stdin when none and no --file) as the\n"
            "Hugging Face tokenizer does, and prints the ids on one line, then one line per token:\n"
            "its index, id and piece (control characters escaped).\n"
            "options:\n"
            "  --tokenizer FILE  tokenizer.json (required)\n"
            "  --file PATH       read the text from PATH\n"
            "  --no-bos          add_special_tokens=False (no <bos>)\n"
            "  --ids-only        print only the ids line\n"
            "  --time            print load time and encode speed (MB/s) to stderr\n");
}

static void detokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: g3n detokenize --tokenizer FILE [options] ID[,ID...] [ID...]\n"
            "Decodes token ids (separated by commas or spaces) to text, as the Hugging Face\n"
            "tokenizer does, and prints it.\n"
            "options:\n"
            "  --tokenizer FILE  tokenizer.json (required)\n"
            "  --skip-special    drop special tokens (<bos>, <eos>, <start_of_turn>, ...)\n"
            "  --stream          decode one id at a time with the streaming detokenizer and\n"
            "                    print each chunk as it is released, one per line, quoted\n");
}

/* Prints a piece with control characters escaped and the "▁" kept. */
static void print_piece(const char *piece, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        unsigned char ch = (unsigned char)piece[i];
        if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch == '\r')
            fputs("\\r", stdout);
        else if (ch == '\\')
            fputs("\\\\", stdout);
        else if (ch < 0x20 || ch == 0x7F)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
}

static char *read_stream(FILE *f, size_t *size)
{
    size_t length = 0, capacity = 4096;
    char *data = malloc(capacity);
    while (data) {
        if (length + 4096 + 1 > capacity) {
            char *grown = realloc(data, capacity *= 2);
            if (!grown) {
                free(data);
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + length, 1, 4096, f);
        length += got;
        if (got < 4096)
            break;
    }
    if (data)
        data[length] = '\0';
    *size = length;
    return data;
}

int g3n_command_tokenize(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        tokenize_usage(stdout);
        return 0;
    }
    const char *tokenizer_path = NULL, *file = NULL;
    int add_bos = 1, ids_only = 0, timing = 0;
    size_t text_capacity = 1;
    for (int i = 1; i < argc; i++)
        text_capacity += strlen(argv[i]) + 1;
    char *joined = calloc(1, text_capacity);
    if (!joined) {
        fprintf(stderr, "g3n tokenize: error: out of memory\n");
        return 1;
    }
    int text_args = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            tokenizer_path = argv[++i];
        } else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--no-bos") == 0) {
            add_bos = 0;
        } else if (strcmp(argv[i], "--ids-only") == 0) {
            ids_only = 1;
        } else if (strcmp(argv[i], "--time") == 0) {
            timing = 1;
        } else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
            fprintf(stderr, "g3n tokenize: error: unknown option '%s'\n", argv[i]);
            tokenize_usage(stderr);
            free(joined);
            return 2;
        } else {
            if (text_args++)
                strcat(joined, " ");
            strcat(joined, argv[i]);
        }
    }
    if (!tokenizer_path) {
        fprintf(stderr, "g3n tokenize: error: --tokenizer FILE is required\n");
        tokenize_usage(stderr);
        free(joined);
        return 2;
    }
    g3n_error err = {{0}};
    char *text = joined;
    size_t length = strlen(joined);
    if (file) {
        free(joined);
        joined = NULL;
        if (g3n_read_file(file, &text, &length, &err) != G3N_OK) {
            fprintf(stderr, "g3n tokenize: error: %s\n", err.message);
            return 1;
        }
    } else if (!text_args) {
        free(joined);
        joined = NULL;
        text = read_stream(stdin, &length);
        if (!text) {
            fprintf(stderr, "g3n tokenize: error: cannot read stdin: %s\n", strerror(errno));
            return 1;
        }
    }
    g3n_tokenizer *tok = NULL;
    double t0 = seconds_now();
    if (g3n_tokenizer_load(&tok, tokenizer_path, &err) != G3N_OK) {
        fprintf(stderr, "g3n tokenize: error: %s\n", err.message);
        free(text);
        return 1;
    }
    double t1 = seconds_now();
    g3n_token_ids ids = {0};
    int status = g3n_tokenizer_encode(tok, text, length, add_bos, &ids, &err);
    double t2 = seconds_now();
    if (status != G3N_OK) {
        fprintf(stderr, "g3n tokenize: error: %s\n", err.message);
    } else {
        for (int64_t k = 0; k < ids.count; k++)
            printf("%s%d", k ? "," : "", ids.ids[k]);
        printf("\n");
        for (int64_t k = 0; k < ids.count && !ids_only; k++) {
            size_t n = 0;
            const char *piece = g3n_tokenizer_piece(tok, ids.ids[k], &n);
            printf("%lld\t%d\t", (long long)k, ids.ids[k]);
            print_piece(piece ? piece : "", piece ? n : 0);
            printf("\n");
        }
        if (timing)
            fprintf(stderr, "load %.3f s; encode %zu bytes -> %lld tokens in %.3f s = %.2f MB/s\n", t1 - t0, length,
                    (long long)ids.count, t2 - t1, (double)length / 1e6 / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    }
    g3n_token_ids_free(&ids);
    g3n_tokenizer_free(tok);
    free(text);
    return status == G3N_OK ? 0 : 1;
}

int g3n_command_detokenize(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        detokenize_usage(stdout);
        return 0;
    }
    const char *tokenizer_path = NULL;
    int skip_special = 0, stream = 0;
    g3n_token_ids ids = {0};
    g3n_error err = {{0}};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            tokenizer_path = argv[++i];
        } else if (strcmp(argv[i], "--skip-special") == 0) {
            skip_special = 1;
        } else if (strcmp(argv[i], "--stream") == 0) {
            stream = 1;
        } else if (strncmp(argv[i], "--", 2) == 0) {
            fprintf(stderr, "g3n detokenize: error: unknown option '%s'\n", argv[i]);
            detokenize_usage(stderr);
            g3n_token_ids_free(&ids);
            return 2;
        } else {
            const char *p = argv[i];
            while (*p) {
                if (*p == ',' || *p == ' ') {
                    p++;
                    continue;
                }
                char *end;
                errno = 0;
                long value = strtol(p, &end, 10);
                if (end == p || errno || value < 0 || value > INT32_MAX) {
                    fprintf(stderr, "g3n detokenize: error: '%s' is not a token id\n", p);
                    g3n_token_ids_free(&ids);
                    return 2;
                }
                if (g3n_token_ids_append(&ids, (int32_t)value, &err) != G3N_OK) {
                    fprintf(stderr, "g3n detokenize: error: %s\n", err.message);
                    g3n_token_ids_free(&ids);
                    return 1;
                }
                p = end;
            }
        }
    }
    if (!tokenizer_path) {
        fprintf(stderr, "g3n detokenize: error: --tokenizer FILE is required\n");
        detokenize_usage(stderr);
        g3n_token_ids_free(&ids);
        return 2;
    }
    g3n_tokenizer *tok = NULL;
    if (g3n_tokenizer_load(&tok, tokenizer_path, &err) != G3N_OK) {
        fprintf(stderr, "g3n detokenize: error: %s\n", err.message);
        g3n_token_ids_free(&ids);
        return 1;
    }
    int status = G3N_OK;
    if (stream) {
        g3n_detokenizer d;
        g3n_detokenizer_init(&d, tok, skip_special);
        for (int64_t k = 0; k <= ids.count && status == G3N_OK; k++) {
            const char *chunk;
            size_t n;
            status = k < ids.count ? g3n_detokenizer_push(&d, ids.ids[k], &chunk, &n, &err)
                                   : g3n_detokenizer_flush(&d, &chunk, &n, &err);
            if (status == G3N_OK) {
                printf("%s\"", k < ids.count ? "" : "flush ");
                print_piece(chunk, n);
                printf("\"\n");
            }
        }
        g3n_detokenizer_free(&d);
    } else {
        char *text = NULL;
        size_t length = 0;
        status = g3n_tokenizer_decode(tok, ids.ids, ids.count, skip_special, &text, &length, &err);
        if (status == G3N_OK) {
            fwrite(text, 1, length, stdout);
            printf("\n");
        }
        free(text);
    }
    if (status != G3N_OK)
        fprintf(stderr, "g3n detokenize: error: %s\n", err.message);
    g3n_tokenizer_free(tok);
    g3n_token_ids_free(&ids);
    return status == G3N_OK ? 0 : 1;
}
