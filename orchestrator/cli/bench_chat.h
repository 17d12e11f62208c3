/* bench_chat.h - `g3n bench chat` (bench_chat.c), dispatched from
 * cmd_bench.c: a multi-turn chat (default 10 turns) asked twice, turn by
 * turn interleaved, once with prefix reuse off and once on: the greedy tokens
 * of every turn must be the same (exit 1 otherwise), and the time to first
 * token of each turn is compared. Either in this process (--model, --synth,
 * --demo: the embedder and decoder as threads, the front door's conversation
 * code called directly) or as a client of a g3n-orchestrator front door
 * (--connect ENDPOINT; its reuse is switched off per request with
 * ChatRequest.no_prefix_cache). argv[0] is "chat". Returns the exit code
 * (0, 1 failure or different tokens, 2 usage). */
#ifndef G3N_BENCH_CHAT_H
#define G3N_BENCH_CHAT_H

int g3n_bench_chat(int argc, char **argv);

#endif
