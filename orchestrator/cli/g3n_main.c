/* g3n - the command-line front door. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "openmp_waits.h"

typedef struct g3n_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} g3n_command;

static const g3n_command commands[] = {
    {"run", g3n_command_run, "answer a prompt with images and audio: every role in this process, streamed"},
    {"serve", g3n_command_serve, "serve the OpenAI chat API over HTTP (streamed; images, audio); every role here"},
    {"video", g3n_command_video, "answer a prompt about a video file or stream (frames + audio, in this process)"},
    {"live", g3n_command_live, "stream audio/video into a live session and answer questions typed meanwhile"},
    {"check", g3n_command_check, "run fixture cases through g3n and compare with the reference goldens"},
    {"check-pipeline", g3n_command_check_pipeline, "text/multimodal cases through the daemons' transport (threads or TCP)"},
    {"synth", g3n_command_synth, "write a synthetic checkpoint folder (Hugging Face layout) for a config"},
    {"slice", g3n_command_slice, "write a MatFormer sub-model (fewer layers, narrower MLPs) as a checkpoint"},
    {"generate", g3n_command_generate, "generate token ids from prompt ids with the language model"},
    {"tokenize", g3n_command_tokenize, "text -> token ids and pieces"},
    {"detokenize", g3n_command_detokenize, "token ids -> text"},
    {"encode-audio", g3n_command_encode_audio, "audio file -> soft tokens, with the real-time factor"},
    {"encode-image", g3n_command_encode_image, "image files -> soft tokens, with seconds per image"},
    {"bench", g3n_command_bench, "benchmarks (matmul, ...)"},
    {"keygen", g3n_command_keygen, "CurveZMQ key pairs and the orchestrator's keys folder (secure tcp://)"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: g3n COMMAND [ARGS...]   (g3n COMMAND --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
}

g3n_weight_format g3n_default_weight_format(int checkpoint)
{
    return checkpoint ? G3N_WEIGHTS_Q8 : G3N_WEIGHTS_EXACT;
}

void g3n_report_weight_format(const char *command, g3n_weight_format format, int given)
{
    if (given)
        fprintf(stderr, "g3n %s: weights %s (--weights)\n", command, g3n_weight_format_name(format));
    else if (format == G3N_WEIGHTS_EXACT)
        fprintf(stderr, "g3n %s: weights f32, the exact path (the default for synthetic weights; --weights q8|q4 "
                        "for speed)\n", command);
    else
        fprintf(stderr, "g3n %s: weights %s (the default for a checkpoint; --weights f32 for the exact path)\n",
                command, g3n_weight_format_name(format));
}

int main(int argc, char **argv)
{
    g3n_openmp_default_waits(argv); /* a short spin, then sleep: openmp_waits.h */
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "g3n: error: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return 2;
}
