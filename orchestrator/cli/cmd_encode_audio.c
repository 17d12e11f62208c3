#include <stdio.h>

#include "commands.h"

int g3n_command_encode_audio(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "g3n encode-audio: error: not built yet\n");
    return 1;
}
