/* g3n-audio-encoder - the audio-encoder role as a daemon (common/role/role_daemon.h). */
#include "role_daemon.h"
#include "audio_role.h"

int main(int argc, char **argv)
{
    return g3n_role_daemon_main(&g3n_audio_role_ops, "g3n-audio-encoder", argc, argv);
}
