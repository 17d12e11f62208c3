/* bench_chat.c - time to first token of a multi-turn chat with and without
 * prefix reuse (bench_chat.h). */
#include "bench_chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conversation.h"
#include "front_door.h"
#include "local_pipeline.h"
#include "model_source.h"
#include "ops.h"
#include "option_groups.h"
#include "prefix_cache.h"

#define MAX_TURNS 64
#define MAX_ANSWER 4096

typedef struct bench_chat_options {
    g3n_model_source source;
    const char *connect;
    g3n_weight_format weight_format;
    int threads;
    int turns;
    int turn_words;
    uint32_t answer_tokens;
    int require_reuse;
    int timeout_ms;
    int exec_turns[4];
    const char *exec_commands[4];
    int exec_count;
} bench_chat_options;

/* One turn's answer as asked one way (reuse off or on). */
typedef struct turn_result {
    int32_t ids[MAX_ANSWER];
    int count;
    int stopped;               /* the last id is an eos (left out of the next turns' token_ids) */
    char text[4 * MAX_ANSWER];
    size_t text_length;
    double first_token_seconds;
    int64_t prompt_tokens, reused_tokens;
    uint32_t rebuilds;
    char decoder[64];
} turn_result;

/* One way of asking: the conversation so far (its own answers) and its results. */
typedef struct chat_run {
    int reuse;
    turn_result turns[MAX_TURNS];
} chat_run;

typedef struct bench_context {
    const bench_chat_options *options;
    /* in this process */
    g3n_local_pipeline local;
    g3n_client *client;
    g3n_prefix_cache *cache;
    const g3n_model_config *config;
    const g3n_tokenizer *tokenizer;
} bench_context;

static const char *const words[] = {"the",   "river", "carried", "small", "boats",  "past",  "old",    "stone",
                                    "walls", "while", "bright",  "birds", "circled", "over", "quiet",  "fields",
                                    "and",   "a",     "keeper",  "wrote", "notes",  "about", "weather", "lights"};

static void user_text(int turn, int count, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "Question %d:", turn + 1);
    uint32_t state = 2166136261u ^ (uint32_t)turn;
    for (int w = 0; w < count && n + 16 < size; w++) {
        state = state * 1664525u + 1013904223u;
        n += (size_t)snprintf(out + n, size - n, " %s", words[(state >> 16) % (sizeof(words) / sizeof(words[0]))]);
    }
    snprintf(out + n, size - n, "?");
}

typedef struct ask_state {
    turn_result *result;
    double start;
    int first;
} ask_state;

static void take_token(ask_state *a, int32_t id, const char *text, size_t length)
{
    turn_result *r = a->result;
    if (!a->first) {
        a->first = 1;
        r->first_token_seconds = g3n_now_seconds() - a->start;
    }
    if (id >= 0 && r->count < MAX_ANSWER)
        r->ids[r->count++] = id;
    if (text && length && r->text_length + length < sizeof(r->text)) {
        memcpy(r->text + r->text_length, text, length);
        r->text_length += length;
        r->text[r->text_length] = '\0';
    }
}

static int on_remote_event(void *user, const G3n__TokenEvent *event)
{
    ask_state *a = user;
    take_token(a, event->id, event->text, event->text ? strlen(event->text) : 0);
    if (event->finish != G3N__FINISH_REASON__FINISH_NONE) {
        a->result->stopped = event->finish == G3N__FINISH_REASON__FINISH_STOP;
        if (event->timings) {
            a->result->prompt_tokens = event->timings->prompt_tokens;
            a->result->reused_tokens = event->timings->reused_tokens;
            a->result->rebuilds = event->timings->rebuilds;
            snprintf(a->result->decoder, sizeof(a->result->decoder), "%s",
                     event->timings->decoder ? event->timings->decoder : "");
        }
    }
    return 0;
}

static int on_local_text(void *user, const char *text, size_t length)
{
    ask_state *a = user;
    turn_result *r = a->result;
    if (length && r->text_length + length < sizeof(r->text)) {
        memcpy(r->text + r->text_length, text, length);
        r->text_length += length;
        r->text[r->text_length] = '\0';
    }
    return 0;
}

static int on_local_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    (void)step;
    (void)logits;
    (void)vocab;
    take_token(user, token, NULL, 0);
    return 0;
}

/* Asks turn `turn` of run: the system message, every earlier turn with run's own answers, the new question. */
static int ask(bench_context *c, chat_run *run, int turn, char (*questions)[4096], g3n_error *err)
{
    const bench_chat_options *o = c->options;
    G3n__ChatMessage messages[2 * MAX_TURNS + 1], *pointers[2 * MAX_TURNS + 1];
    size_t n = 0;
    g3n__chat_message__init(&messages[n]);
    messages[n].role = "system";
    messages[n].text = "You are a careful assistant. Answer each question briefly.";
    n++;
    for (int t = 0; t <= turn; t++) {
        g3n__chat_message__init(&messages[n]);
        messages[n].role = "user";
        messages[n].text = questions[t];
        n++;
        if (t == turn)
            break;
        turn_result *previous = &run->turns[t];
        g3n__chat_message__init(&messages[n]);
        messages[n].role = "assistant";
        messages[n].text = previous->text;
        messages[n].token_ids = previous->ids;
        messages[n].n_token_ids = (size_t)(previous->count - (previous->stopped && previous->count > 0));
        n++;
    }
    for (size_t i = 0; i < n; i++)
        pointers[i] = &messages[i];
    G3n__ChatRequest request;
    G3n__SamplingParams sampling;
    g3n__chat_request__init(&request);
    g3n__sampling_params__init(&sampling);
    request.messages = pointers;
    request.n_messages = n;
    request.sampling = &sampling; /* greedy */
    request.max_new_tokens = o->answer_tokens;
    request.no_prefix_cache = !run->reuse;
    turn_result *r = &run->turns[turn];
    memset(r, 0, sizeof(*r));
    ask_state a = {r, g3n_now_seconds(), 0};
    if (o->connect)
        return g3n_front_door_chat(o->connect, &request, o->timeout_ms, on_remote_event, &a, err);
    /* in this process: what the front door does with a ChatRequest */
    g3n_chat_prompt prompt;
    g3n_pipeline_windows files;
    if (g3n_conversation_render(&request, c->config, c->tokenizer, 64, &prompt, &files, err) != G3N_OK)
        return G3N_ERR;
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(c->config);
    params.max_new_tokens = o->answer_tokens;
    params.on_token = on_local_token;
    params.user = &a;
    g3n_conversation_options co = {run->reuse ? c->cache : NULL, NULL, NULL};
    g3n_pipeline_stats stats;
    int rc = g3n_pipeline_conversation(c->client, &co, c->tokenizer, prompt.ids.ids, prompt.ids.count, files.files,
                                       files.count, &params, on_local_text, &a, &stats, err);
    r->stopped = stats.stopped_on_eos;
    r->prompt_tokens = stats.prompt_tokens;
    r->reused_tokens = stats.reused_tokens;
    r->rebuilds = (uint32_t)stats.rebuilds;
    snprintf(r->decoder, sizeof(r->decoder), "%s", stats.decoder);
    g3n_chat_prompt_free(&prompt);
    g3n_pipeline_windows_free(&files);
    return rc;
}

static const g3n_command_spec bench_chat_spec = {
    .name = "g3n bench chat",
    .usage = "g3n bench chat (--model DIR | --synth CONFIG:SEED --tokenizer FILE | --demo | --connect ENDPOINT)\n"
             "                      [--weights f32|bf16|q8|q4] [--threads N] [--turns N] [--turn-words N]\n"
             "                      [--answer-tokens N] [--require-reuse] [--timeout-s N]",
    .about = "A chat of --turns turns (default 10; a system message, then user turns of about --turn-words\n"
             "words each (default 40) and the model's greedy answers of at most --answer-tokens tokens\n"
             "(default 16)), asked twice, turn by turn interleaved: once with prefix reuse off and once on\n"
             "(the turn's prompt extends the previous prompt and its answer, so with reuse only the new\n"
             "suffix is prefilled). Each answer goes back as the assistant turn with its token ids\n"
             "(ChatMessage.token_ids). Prints each turn's time to first token both ways, the prompt\n"
             "positions reused, and the speed-up of the last turn; exits 1 if the tokens of any turn differ.\n",
    .footer = "Timings on a shared, busy machine are noisy: compare runs made together.\n",
    .help_column = 24,
};

/* The --exec-after-turn pairs (N, CMD) into o: -1 to go on, else the exit code. */
static int take_exec_pairs(bench_chat_options *o, const g3n_option_list *pairs)
{
    for (int i = 0; i + 1 < pairs->count; i += 2) {
        char *end;
        long turn = strtol(pairs->items[i], &end, 10);
        if (*end || turn < 1 || turn > MAX_TURNS)
            return g3n_options_usage_error(&bench_chat_spec, "--exec-after-turn: expected a turn from 1 to %d, got '%s'",
                                           MAX_TURNS, pairs->items[i]);
        o->exec_turns[o->exec_count] = (int)turn;
        o->exec_commands[o->exec_count++] = pairs->items[i + 1];
    }
    return -1;
}

/* -1 to go on, else the exit code. */
static int parse(int argc, char **argv, bench_chat_options *o)
{
    memset(o, 0, sizeof(*o));
    o->weight_format = G3N_WEIGHTS_EXACT;
    o->turns = 10;
    o->turn_words = 40;
    int answer_tokens = 16, timeout_s = 600;
    const char *exec_items[8];
    g3n_option_list exec_pairs = {exec_items, 8, 0};
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&o->source.model_dir, "the embedder and decoder as threads of this process (the\n"
                                               "conversation code of g3n-orchestrator's front door); or:"),
        G3N_OPTION_SYNTH(&o->source.synth_spec),
        G3N_OPTION_TOKENIZER(&o->source.tokenizer_path, "tokenizer.json (with --synth; default DIR/tokenizer.json)"),
        G3N_FLAG("demo", &o->source.demo, "the repository's tiny synthetic demo model"),
        G3N_STRING("connect", &o->connect, "ENDPOINT",
                   "instead: a g3n-orchestrator's client endpoint (its reuse must be on;\n"
                   "the off runs set ChatRequest.no_prefix_cache)"),
        G3N_OPTION_WEIGHTS(&o->weight_format, NULL, "what the decoder computes with in this process (default f32)"),
        G3N_OPTION_THREADS_FOR(&o->threads, "its OpenMP threads (default: all cores)"),
        G3N_INT("turns", &o->turns, 2, MAX_TURNS, "N", "turns of the chat (default 10)"),
        G3N_INT("turn-words", &o->turn_words, 1, 500, "N", "words of each user turn (default 40)"),
        G3N_INT("answer-tokens", &answer_tokens, 1, MAX_ANSWER, "N", "tokens of each answer at most (default 16)"),
        G3N_FLAG("require-reuse", &o->require_reuse, "exit 1 unless every turn after the first reused positions"),
        G3N_INT("timeout-s", &timeout_s, 1, 86400, "N", "how long one answer may take (default 600)"),
        G3N_PAIR("exec-after-turn", &exec_pairs, "N CMD",
                 "runs the shell command CMD after turn N (repeatable, 4 at most; tests:\n"
                 "e.g. stop a decoder), with G3N_BENCH_DECODER = the decoder holding the\n"
                 "reused session (as the front door's timings tell)"),
    };
    int rc = g3n_options_main(&bench_chat_spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    o->answer_tokens = (uint32_t)answer_tokens;
    o->timeout_ms = timeout_s * 1000;
    const int sources = (o->source.model_dir != NULL) + (o->source.synth_spec != NULL) + o->source.demo +
                        (o->connect != NULL);
    if (sources != 1)
        return g3n_options_usage_error(&bench_chat_spec, "give one of --model, --synth, --demo, --connect");
    return take_exec_pairs(o, &exec_pairs);
}

static int start_local(bench_context *c, g3n_error *err)
{
    bench_chat_options *o = (bench_chat_options *)c->options;
    if (g3n_model_source_find_demo(&o->source, err) != G3N_OK ||
        (!o->source.tokenizer_path && g3n_model_source_default_tokenizer(&o->source, err) != G3N_OK) ||
        g3n_local_pipeline_load(&c->local, &o->source, err) != G3N_OK)
        return G3N_ERR;
    if (o->threads > 0)
        g3n_set_threads(o->threads);
    g3n_transport_options transport = g3n_transport_default_options();
    if (g3n_local_pipeline_start_broker(&c->local, "inproc://g3n-bench-chat", NULL, &transport, err) != G3N_OK)
        return G3N_ERR;
    g3n_role_options ro = {.weight_format = o->weight_format, .threads = o->threads, .max_sessions = 8};
    const unsigned mask = (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER);
    if (g3n_local_pipeline_start_roles(&c->local, &o->source, ro, mask, err) != G3N_OK ||
        g3n_local_pipeline_wait(&c->local, mask, 60000, err) != G3N_OK ||
        g3n_client_open(&c->client, c->local.broker, err) != G3N_OK)
        return G3N_ERR;
    g3n_prefix_cache_options co = g3n_prefix_cache_default_options();
    co.max_entries = 4;
    if (g3n_prefix_cache_create(&c->cache, &co, err) != G3N_OK)
        return G3N_ERR;
    c->config = &c->local.config;
    c->tokenizer = c->local.tokenizer;
    return G3N_OK;
}

int g3n_bench_chat(int argc, char **argv)
{
    static bench_chat_options o; /* large results: off the stack */
    int parsed = parse(argc, argv, &o);
    if (parsed >= 0)
        return parsed;
    static bench_context c;
    static chat_run runs[2];
    static char questions[MAX_TURNS][4096];
    memset(&c, 0, sizeof(c));
    c.options = &o;
    runs[0].reuse = 0;
    runs[1].reuse = 1;
    g3n_error err = {{0}};
    int rc = 1;
    if (!o.connect && start_local(&c, &err) != G3N_OK)
        goto done;
    for (int t = 0; t < o.turns; t++)
        user_text(t, o.turn_words, questions[t], sizeof(questions[t]));
    printf("chat of %d turns, answers of at most %u tokens, greedy; %s\n", o.turns, o.answer_tokens,
           o.connect ? o.connect : "in this process");
    printf("%4s %8s %12s %12s %8s %8s %6s\n", "turn", "prompt", "ttft off s", "ttft on s", "speedup", "reused",
           "same");
    int same_all = 1, reuse_all = 1;
    for (int t = 0; t < o.turns; t++) {
        for (int k = 1; k >= 0; k--) /* interleaved: the machine's load drifts alike for both */
            if (ask(&c, &runs[k], t, questions, &err) != G3N_OK) {
                g3n_error_prefix(&err, "turn %d (reuse %s)", t + 1, runs[k].reuse ? "on" : "off");
                goto done;
            }
        const turn_result *off = &runs[0].turns[t], *on = &runs[1].turns[t];
        const int same =
            off->count == on->count && memcmp(off->ids, on->ids, sizeof(int32_t) * (size_t)off->count) == 0;
        same_all &= same;
        if (t > 0 && on->reused_tokens <= 0)
            reuse_all = 0;
        printf("%4d %8lld %12.4f %12.4f %7.2fx %8lld %6s%s%s\n", t + 1, (long long)on->prompt_tokens,
               off->first_token_seconds, on->first_token_seconds,
               off->first_token_seconds / (on->first_token_seconds + 1e-12), (long long)on->reused_tokens,
               same ? "yes" : "NO", on->rebuilds ? " (rebuilt) on " : on->decoder[0] ? " on " : "", on->decoder);
        fflush(stdout);
        for (int e = 0; e < o.exec_count; e++)
            if (o.exec_turns[e] == t + 1) {
                setenv("G3N_BENCH_DECODER", on->decoder, 1);
                int status = system(o.exec_commands[e]);
                printf("after turn %d: ran '%s' (status %d)\n", t + 1, o.exec_commands[e], status);
                fflush(stdout);
            }
    }
    const turn_result *off = &runs[0].turns[o.turns - 1], *on = &runs[1].turns[o.turns - 1];
    printf("turn %d: time to first token %.4f s without reuse, %.4f s with reuse (%lld of %lld prompt positions "
           "reused): %.2fx\n",
           o.turns, off->first_token_seconds, on->first_token_seconds, (long long)on->reused_tokens,
           (long long)on->prompt_tokens, off->first_token_seconds / (on->first_token_seconds + 1e-12));
    printf("tokens with and without reuse: %s\n", same_all ? "identical in every turn" : "DIFFERENT");
    if (!same_all) {
        printf("note: the f32 path (the stored weights, --weights f32) gives the same tokens; the bf16/q8/q4 paths\n"
               "round a position's products by how many rows share its forward (an answer token fed by a decode\n"
               "step, with reuse, vs inside a prefill chunk, without), which can flip a near-tied greedy pick\n");
        g3n_error_set(&err, "the greedy tokens with reuse differ from those without it");
        goto done;
    }
    if (o.require_reuse && !reuse_all) {
        g3n_error_set(&err, "--require-reuse: a turn after the first reused no positions");
        goto done;
    }
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "g3n bench chat: error: %s\n", err.message);
    g3n_prefix_cache_free(c.cache, c.client);
    g3n_client_close(c.client);
    g3n_local_pipeline_stop(&c.local);
    return rc;
}
