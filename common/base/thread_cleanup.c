/* thread_cleanup.c - a pthread key whose destructor runs every registered
 * release function in the exiting thread; see thread_cleanup.h. */
#include "thread_cleanup.h"

#include <pthread.h>
#include <stdatomic.h>

static pthread_key_t cleanup_key;
static pthread_once_t cleanup_once = PTHREAD_ONCE_INIT;
static int cleanup_key_made;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*_Atomic registry[G3N_THREAD_CLEANUP_MAX])(void);

static void run_releases(void *unused)
{
    (void)unused;
    for (int i = 0; i < G3N_THREAD_CLEANUP_MAX; i++) {
        void (*release)(void) = atomic_load(&registry[i]);
        if (release)
            release();
    }
}

static void make_key(void)
{
    cleanup_key_made = pthread_key_create(&cleanup_key, run_releases) == 0;
}

static void register_release(void (*release)(void))
{
    for (int i = 0; i < G3N_THREAD_CLEANUP_MAX; i++)
        if (atomic_load(&registry[i]) == release)
            return;
    pthread_mutex_lock(&registry_lock);
    int known = 0;
    for (int i = 0; i < G3N_THREAD_CLEANUP_MAX && !known; i++)
        known = atomic_load(&registry[i]) == release;
    for (int i = 0; i < G3N_THREAD_CLEANUP_MAX && !known; i++)
        if (!atomic_load(&registry[i])) {
            atomic_store(&registry[i], release);
            known = 1;
        }
    pthread_mutex_unlock(&registry_lock);
}

void g3n_thread_cleanup_arm(void (*release)(void))
{
    register_release(release);
    pthread_once(&cleanup_once, make_key);
    if (cleanup_key_made && !pthread_getspecific(cleanup_key))
        pthread_setspecific(cleanup_key, (void *)&cleanup_key);
}
