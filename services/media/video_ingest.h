/* video_ingest.h - a video file or stream -> sampled RGB frames and 16 kHz
 * mono audio, in timestamp order, through FFmpeg (libavformat, libavcodec,
 * libswscale, libswresample).
 *
 * Input: anything libavformat opens: a file path, "-" (= "pipe:0", stdin), a
 * pipe, or a network URL (tcp://, udp://, http://, rtp://...). Nothing is
 * buffered whole: packets are decoded as they arrive, so a live stream is
 * delivered while it plays.
 *
 * Frames: sampled at `fps` per second of media time (default 1): the k-th
 * sample is the first decoded frame whose timestamp is >= k / fps (so a
 * 25 fps video sampled at 1 fps gives the frames at 0 s, 1 s, 2 s, ...);
 * when the video skips past several sampling times, one frame is taken and
 * the next sampling time follows it. At most max_frames frames (then the
 * video stream is ignored; the audio goes on). Frames are converted to packed
 * RGB24 at their own size (libswscale) for the image preprocessing.
 * Timestamps are seconds from the start of the stream (the container's
 * start_time, or the first packet's).
 *
 * Audio: the best audio track, resampled to sample_rate (libswresample,
 * channel layout kept) and averaged to mono, as audio_decode.h does. Audio
 * time is the count of samples delivered (sample i is at i / sample_rate).
 *
 * Order: on_audio and on_frame calls come in timestamp order: a frame at t is
 * delivered after every audio sample before round(t * sample_rate) and before
 * any later one. Frames wait (a few, copied) until the audio has reached
 * them; if the audio lags by more than `max_pending_frames` frames, the
 * oldest frame is delivered anyway (its audio follows it).
 *
 * Ownership: the buffers passed to the callbacks are borrowed for the call.
 */
#ifndef G3N_VIDEO_INGEST_H
#define G3N_VIDEO_INGEST_H

#include <stdint.h>

#include "status.h"

typedef struct g3n_video_options {
    double fps;             /* frames sampled per second of media time (default 1) */
    int max_frames;         /* cap on sampled frames (default 32; <= 0: no cap) */
    int want_video;         /* deliver frames (default 1) */
    int want_audio;         /* deliver audio (default 1) */
    int sample_rate;        /* audio output rate (default 16000) */
    int64_t max_pixels;     /* frames larger than this are an error (default: image default) */
    int max_pending_frames; /* frames held waiting for audio (default 8) */
    const volatile int *cancel; /* when set and nonzero, blocking reads give up (another thread sets it) */
} g3n_video_options;

g3n_video_options g3n_video_default_options(void);

/* rgb: height rows of width * 3 bytes. Return G3N_OK to go on, G3N_ERR (with
 * err set) to stop the ingest with that error. */
typedef int (*g3n_video_frame_callback)(void *user, int index, double seconds, const uint8_t *rgb, int width,
                                        int height, g3n_error *err);
/* samples: count mono samples at sample_rate, first one at `seconds`. */
typedef int (*g3n_video_audio_callback)(void *user, double seconds, const float *samples, int64_t count,
                                        g3n_error *err);

typedef struct g3n_video_info {
    int has_video, has_audio;  /* the input had such a stream (and it was wanted) */
    int width, height;         /* of the video stream */
    int frames;                /* frames delivered */
    int64_t audio_samples;     /* samples delivered */
    double duration;           /* container duration in seconds (0 if unknown) */
} g3n_video_info;

/* Ingests until the end of the input (or a callback's error). Either
 * callback may be NULL (that kind is then not decoded). info may be NULL.
 * Errors: unopenable input, no wanted stream, decoder failures (naming the url). */
int g3n_video_ingest(const char *url, const g3n_video_options *options, g3n_video_frame_callback on_frame,
                     g3n_video_audio_callback on_audio, void *user, g3n_video_info *info, g3n_error *err);

#endif
