/* daemon.h - the shared main of the four worker daemons (g3n-vision-encoder,
 * g3n-audio-encoder, g3n-embedder, g3n-decoder): flags, loading only the
 * role's tensors, connecting to the orchestrator's broker, serving until
 * SIGTERM/SIGINT (then Goodbye and a clean exit). */
#ifndef G3N_DAEMON_H
#define G3N_DAEMON_H

/* Returns the process exit code (0, 1 failure, 2 usage). */
int g3n_daemon_main(int role, const char *program, int argc, char **argv);

#endif
