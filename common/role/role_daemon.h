/* role_daemon.h - the one main of the four worker daemons (g3n-vision-encoder,
 * g3n-audio-encoder, g3n-embedder, g3n-decoder; services/<role>/daemon/main.c
 * passes its role's operations, role.h): flags, loading only the role's
 * tensors, connecting to the orchestrator's broker, serving until
 * SIGTERM/SIGINT (then Goodbye and a clean exit). It refers to no role but the
 * one it is given, so a daemon binary links only its own role's library. */
#ifndef G3N_ROLE_DAEMON_H
#define G3N_ROLE_DAEMON_H

#include "role.h"

/* Returns the process exit code (0, 1 failure, 2 usage). */
int g3n_role_daemon_main(const g3n_role_ops *ops, const char *program, int argc, char **argv);

#endif
