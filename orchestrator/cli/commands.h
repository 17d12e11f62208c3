/* commands.h - the `g3n` subcommands. Each takes the arguments after the
 * subcommand name (argv[0] is the subcommand) and returns the process exit
 * code (0 success, 1 failure, 2 usage error). `--help` works on every one. */
#ifndef G3N_COMMANDS_H
#define G3N_COMMANDS_H

#include "quant.h"

int g3n_command_check(int argc, char **argv);        /* orchestrator/cli/cmd_check.c */
int g3n_command_synth(int argc, char **argv);        /* orchestrator/cli/cmd_synth.c */
int g3n_command_bench(int argc, char **argv);        /* orchestrator/cli/cmd_bench.c */
int g3n_command_tokenize(int argc, char **argv);     /* orchestrator/cli/cmd_tokenize.c */
int g3n_command_detokenize(int argc, char **argv);   /* orchestrator/cli/cmd_tokenize.c */
int g3n_command_generate(int argc, char **argv);     /* orchestrator/cli/cmd_generate.c */
int g3n_command_encode_audio(int argc, char **argv); /* orchestrator/cli/cmd_encode_audio.c */
int g3n_command_encode_image(int argc, char **argv); /* orchestrator/cli/cmd_encode_image.c */
int g3n_command_run(int argc, char **argv);          /* orchestrator/cli/cmd_run.c */
int g3n_command_video(int argc, char **argv);        /* orchestrator/cli/cmd_video.c */
int g3n_command_live(int argc, char **argv);         /* orchestrator/cli/cmd_live.c */
int g3n_command_check_pipeline(int argc, char **argv); /* orchestrator/cli/cmd_check_pipeline.c */
int g3n_command_serve(int argc, char **argv);        /* orchestrator/cli/cmd_serve.c */
int g3n_command_slice(int argc, char **argv);        /* orchestrator/cli/cmd_slice.c */
int g3n_command_keygen(int argc, char **argv);       /* orchestrator/cli/cmd_keygen.c */

/* The --weights of g3n run and g3n serve when none is given: q8 for a
 * checkpoint folder (--model; README "Precision": its measured error budget),
 * f32 for --synth and --demo (synthetic test models, held to the exact path). */
g3n_weight_format g3n_default_weight_format(int checkpoint);
/* "g3n COMMAND: weights q8 (the default for a checkpoint; --weights f32 for the
 * exact path)" or "g3n COMMAND: weights q4 (--weights)" on stderr. */
void g3n_report_weight_format(const char *command, g3n_weight_format format, int given);

#endif
