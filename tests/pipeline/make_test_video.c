/* make_test_video.c - writes the unit tests' synthetic video
 * (test_media_util.h: 3.5 s, one colour per second, a 440 Hz tone; Matroska)
 * to the path given, for the shell tests that stream a video through the
 * daemons (live_door.sh). A cmocka program because the writer reports FFmpeg
 * errors as cmocka failures. Usage: g3n_make_test_video PATH */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "test_media_util.h"

static const char *path;

static void write_video(void **state)
{
    (void)state;
    g3n_test_make_colour_video(path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: g3n_make_test_video PATH\n");
        return 2;
    }
    path = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(write_video)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
