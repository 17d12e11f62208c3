/* g3n-vision-encoder - the vision-encoder role as a daemon (orchestrator/daemon.h). */
#include "daemon.h"
#include "wire.h"

int main(int argc, char **argv)
{
    return g3n_daemon_main(G3N_ROLE_VISION_ENCODER, "g3n-vision-encoder", argc, argv);
}
