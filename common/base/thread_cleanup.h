/* thread_cleanup.h - freeing per-thread (_Thread_local) buffers when their
 * thread ends. Kernels keep scratch per thread between calls (no allocation
 * per token); role, engine and handler threads come and go with sessions and
 * daemons, and their buffers must go with them.
 *
 * A module calls g3n_thread_cleanup_arm(release) before its buffers may grow;
 * release (a function of the module that frees the CALLING thread's buffers
 * and zeroes them) then runs in every thread that armed it, when that thread
 * exits. At most G3N_THREAD_CLEANUP_MAX distinct release functions. The main
 * thread's buffers stay until the process ends. */
#ifndef G3N_THREAD_CLEANUP_H
#define G3N_THREAD_CLEANUP_H

#define G3N_THREAD_CLEANUP_MAX 8

void g3n_thread_cleanup_arm(void (*release)(void));

#endif
