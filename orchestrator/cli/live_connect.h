/* live_connect.h - `g3n live --connect` and `g3n run --video --connect`: the
 * media are ingested here (FFmpeg, video_ingest.h) and streamed to a live
 * session on g3n-orchestrator's front door (live_client.h), which runs it
 * through its daemons; nothing is loaded here. */
#ifndef G3N_LIVE_CONNECT_H
#define G3N_LIVE_CONNECT_H

#include <stdint.h>

#include "transport.h"
#include "video_ingest.h"
#include "wire.h"

/* 1 if argv holds --connect (g3n live then runs g3n_command_live_connect). */
int g3n_live_connect_wanted(int argc, char **argv);
int g3n_command_live_connect(int argc, char **argv);

/* g3n run --video URL --connect ENDPOINT PROMPT: the frames and audio of url in
 * timestamp order, then the prompt; the answer to stdout. Returns the exit code. */
int g3n_run_video_connected(const char *endpoint, const g3n_transport_options *transport, const char *system,
                            const char *prompt, const char *url, const g3n_video_options *video,
                            int64_t max_new_tokens, const G3n__SamplingParams *sampling, int quiet);

#endif
