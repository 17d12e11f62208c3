/* cmd_tokenize.c - `g3n tokenize` (text -> ids and pieces) and
 * `g3n detokenize` (ids -> text). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "json_util.h"
#include "option_groups.h"
#include "tokenizer.h"

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

typedef struct tokenize_args {
    const char *tokenizer_path, *file;
    int no_bos, ids_only, timing;
    g3n_option_list words; /* TEXT... */
} tokenize_args;

/* -1 to go on, else the exit code (args->words.items: argc entries, the caller's). */
static int parse_tokenize_args(tokenize_args *args, int argc, char **argv)
{
    g3n_option options[] = {
        G3N_OPTION_TOKENIZER(&args->tokenizer_path, "tokenizer.json (required)"),
        G3N_STRING("file", &args->file, "PATH", "read the text from PATH"),
        G3N_FLAG("no-bos", &args->no_bos, "add_special_tokens=False (no <bos>)"),
        G3N_FLAG("ids-only", &args->ids_only, "print only the ids line"),
        G3N_FLAG("time", &args->timing, "print load time and encode speed (MB/s) to stderr"),
    };
    options[0].required = 1;
    const g3n_command_spec spec = {
        .name = "g3n tokenize",
        .usage = "g3n tokenize --tokenizer FILE [options] [TEXT...]",
        .about = "Encodes TEXT (the arguments joined by spaces; stdin when none and no --file) as the\n"
                 "Hugging Face tokenizer does, and prints the ids on one line, then one line per token:\n"
                 "its index, id and piece (control characters escaped). A TEXT word that begins with\n"
                 "'--' goes after '--'.\n",
        .positionals = &args->words,
        .help_column = 20,
    };
    return g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
}

/* The text to encode: --file's, the words joined by spaces, or stdin. */
static char *tokenize_input(const tokenize_args *args, size_t *length, g3n_error *err)
{
    char *text = NULL;
    if (args->file)
        return g3n_read_file(args->file, &text, length, err) == G3N_OK ? text : NULL;
    if (args->words.count == 0) {
        text = read_stream(stdin, length);
        if (!text)
            g3n_error_set(err, "cannot read stdin: %s", strerror(errno));
        return text;
    }
    size_t capacity = 1;
    for (int i = 0; i < args->words.count; i++)
        capacity += strlen(args->words.items[i]) + 1;
    text = calloc(1, capacity);
    if (!text) {
        g3n_error_set(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < args->words.count; i++) {
        if (i)
            strcat(text, " ");
        strcat(text, args->words.items[i]);
    }
    *length = strlen(text);
    return text;
}

int g3n_command_tokenize(int argc, char **argv)
{
    tokenize_args args = {0};
    args.words.items = calloc((size_t)argc, sizeof(char *));
    args.words.capacity = argc;
    if (!args.words.items) {
        fprintf(stderr, "g3n tokenize: error: out of memory\n");
        return 1;
    }
    int rc = parse_tokenize_args(&args, argc, argv);
    if (rc >= 0) {
        free(args.words.items);
        return rc;
    }
    g3n_error err = {{0}};
    size_t length = 0;
    char *text = tokenize_input(&args, &length, &err);
    free(args.words.items);
    if (!text) {
        fprintf(stderr, "g3n tokenize: error: %s\n", err.message);
        return 1;
    }
    const char *tokenizer_path = args.tokenizer_path;
    int add_bos = !args.no_bos, ids_only = args.ids_only, timing = args.timing;
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

typedef struct detokenize_args {
    const char *tokenizer_path;
    int skip_special, stream;
    g3n_option_list words; /* ID[,ID...] [ID...] */
} detokenize_args;

/* -1 to go on, else the exit code. */
static int parse_detokenize_args(detokenize_args *args, int argc, char **argv)
{
    g3n_option options[] = {
        G3N_OPTION_TOKENIZER(&args->tokenizer_path, "tokenizer.json (required)"),
        G3N_FLAG("skip-special", &args->skip_special, "drop special tokens (<bos>, <eos>, <start_of_turn>, ...)"),
        G3N_FLAG("stream", &args->stream, "decode one id at a time with the streaming detokenizer and\n"
                                          "print each chunk as it is released, one per line, quoted"),
    };
    options[0].required = 1;
    const g3n_command_spec spec = {
        .name = "g3n detokenize",
        .usage = "g3n detokenize --tokenizer FILE [options] ID[,ID...] [ID...]",
        .about = "Decodes token ids (separated by commas or spaces) to text, as the Hugging Face\n"
                 "tokenizer does, and prints it.\n",
        .positionals = &args->words,
        .help_column = 20,
    };
    return g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
}

/* Appends the ids in word ("1,2 3") to ids: -1 to go on, else the exit code. */
static int append_ids(const char *word, g3n_token_ids *ids)
{
    g3n_error err = {{0}};
    const char *p = word;
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
            return 2;
        }
        if (g3n_token_ids_append(ids, (int32_t)value, &err) != G3N_OK) {
            fprintf(stderr, "g3n detokenize: error: %s\n", err.message);
            return 1;
        }
        p = end;
    }
    return -1;
}

int g3n_command_detokenize(int argc, char **argv)
{
    detokenize_args args = {0};
    args.words.items = calloc((size_t)argc, sizeof(char *));
    args.words.capacity = argc;
    if (!args.words.items)
        return 1;
    int rc = parse_detokenize_args(&args, argc, argv);
    g3n_token_ids ids = {0};
    g3n_error err = {{0}};
    for (int i = 0; i < args.words.count && rc < 0; i++)
        rc = append_ids(args.words.items[i], &ids);
    free(args.words.items);
    if (rc >= 0) {
        g3n_token_ids_free(&ids);
        return rc;
    }
    const char *tokenizer_path = args.tokenizer_path;
    int skip_special = args.skip_special, stream = args.stream;
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
