/* test_media_util.h - FFmpeg helpers shared by the unit tests that encode media
 * (test_audio_decode, test_run_video, test_video_ingest). Kept apart from
 * test_util so that only these tests compile against FFmpeg's headers
 * (tests/CMakeLists.txt adds test_media_util.c to them alone). */
#ifndef G3N_TEST_MEDIA_UTIL_H
#define G3N_TEST_MEDIA_UTIL_H

#include <stdint.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

/* Sends frame to the open encoder codec (NULL flushes it) and writes every
 * packet it gives back to stream of format, rescaled from the codec's time
 * base to the stream's. Returns 0, or the first negative AVERROR. The caller
 * keeps ownership of all four; the packets are freed here. */
int g3n_test_write_packets(AVCodecContext *codec, AVFormatContext *format, AVStream *stream, AVFrame *frame);

/* The synthetic video that g3n_test_make_colour_video writes: Matroska with
 * FFV1 frames (YUV 4:4:4) and PCM s16le stereo audio. */
#define G3N_TEST_VIDEO_WIDTH 64
#define G3N_TEST_VIDEO_HEIGHT 48
#define G3N_TEST_VIDEO_FPS 10
#define G3N_TEST_VIDEO_SECONDS 3.5
#define G3N_TEST_VIDEO_AUDIO_RATE 44100
#define G3N_TEST_VIDEO_TONE_HZ 440.0
/* RGB colour of second k of the video, k = 0..3. */
extern const uint8_t g3n_test_video_colours[4][3];

/* Writes the test video to path: second k shows g3n_test_video_colours[k]
 * (with a darker 8x8 square in a corner, so frames are not flat), the audio is
 * a G3N_TEST_VIDEO_TONE_HZ tone at 0.5 in both channels; video and audio
 * frames are interleaved in time order. Fails the running cmocka test on any
 * FFmpeg error. */
void g3n_test_make_colour_video(const char *path);

/* A cmocka group fixture holding the test video: setup makes a temporary
 * directory (dir) and writes the video into it (video = dir/colours.mkv);
 * teardown removes the directory and frees the fixture, which setup
 * allocated and stored in *state. */
typedef struct g3n_test_video_fixture {
    char dir[512];
    char video[600];
} g3n_test_video_fixture;
int g3n_test_video_setup(void **state);
int g3n_test_video_teardown(void **state);

#endif
