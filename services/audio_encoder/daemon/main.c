/* g3n-audio-encoder - the audio-encoder role as a daemon (orchestrator/daemon.h). */
#include "daemon.h"
#include "wire.h"

int main(int argc, char **argv)
{
    return g3n_daemon_main(G3N_ROLE_AUDIO_ENCODER, "g3n-audio-encoder", argc, argv);
}
