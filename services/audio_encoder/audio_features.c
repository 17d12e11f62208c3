/* audio_features.c - Gemma3nAudioFeatureExtractor._extract_spectrogram in C. */
#include "audio_features.h"

#include <libavutil/mem.h>
#include <libavutil/tx.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct g3n_audio_features {
    g3n_audio_feature_config config; /* per-bin arrays owned (copied) */
    float *window;                   /* [frame_length] f32 periodic Hann */
    double *filters;                 /* [feature_size][bins] mel weights, transposed */
    int *filter_first;               /* [feature_size] first nonzero bin */
    int *filter_end;                 /* [feature_size] one past the last nonzero bin */
    int bins;                        /* fft_length / 2 + 1 */
    int contexts;                    /* FFT contexts (one per thread) */
    AVTXContext **tx;
    av_tx_fn tx_fn;
    double **tx_in;                  /* [contexts][fft_length] */
    AVComplexDouble **tx_out;        /* [contexts][bins] */
};

int64_t g3n_audio_padded_samples(const g3n_audio_feature_config *c, int64_t samples)
{
    int64_t m = c->pad_to_multiple_of > 0 ? c->pad_to_multiple_of : 1;
    return (samples + m - 1) / m * m;
}

int64_t g3n_audio_frame_count(const g3n_audio_feature_config *c, int64_t padded_samples)
{
    int64_t size = c->frame_length + 1;
    if (padded_samples < size)
        return 0;
    return (padded_samples - size) / c->hop_length + 1;
}

int64_t g3n_audio_frame_end_sample(const g3n_audio_feature_config *c, int64_t frame)
{
    return frame * c->hop_length + c->frame_length + 1;
}

/* create_fb_matrix (fe:L28-86), norm=None, float64; stored transposed [mel][bin]. */
static void mel_filterbank(const g3n_audio_feature_config *c, int bins, double *filters)
{
    int n_mels = c->feature_size;
    double m_min = 2595.0 * log10(1.0 + c->min_frequency / 700.0);
    double m_max = 2595.0 * log10(1.0 + c->max_frequency / 700.0);
    int points = n_mels + 2;
    double *f_pts = malloc(sizeof(double) * (size_t)points);
    double step = (m_max - m_min) / (double)(points - 1);
    for (int i = 0; i < points; i++) {
        double mel = i == points - 1 ? m_max : (double)i * step + m_min; /* np.linspace */
        f_pts[i] = 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
    }
    /* all_freqs is float32 in the reference: k * (sample_rate / fft_length) rounded to f32 */
    float bin_hz = (float)((double)c->sampling_rate / (double)c->fft_length);
    for (int m = 0; m < n_mels; m++) {
        for (int k = 0; k < bins; k++) {
            double freq = (double)((float)k * bin_hz);
            double down = (-1.0 * (f_pts[m] - freq)) / (f_pts[m + 1] - f_pts[m]);
            double up = (f_pts[m + 2] - freq) / (f_pts[m + 2] - f_pts[m + 1]);
            double v = down < up ? down : up;
            filters[(size_t)m * bins + k] = v > 0.0 ? v : 0.0;
        }
    }
    free(f_pts);
}

void g3n_audio_features_free(g3n_audio_features *f)
{
    if (f == NULL)
        return;
    for (int i = 0; i < f->contexts; i++) {
        if (f->tx)
            av_tx_uninit(&f->tx[i]);
        if (f->tx_in)
            av_free(f->tx_in[i]);
        if (f->tx_out)
            av_free(f->tx_out[i]);
    }
    free(f->tx);
    free(f->tx_in);
    free(f->tx_out);
    free(f->window);
    free(f->filters);
    free(f->filter_first);
    free(f->filter_end);
    g3n_audio_feature_config_free(&f->config);
    free(f);
}

int g3n_audio_features_create(g3n_audio_features **out, const g3n_audio_feature_config *config, g3n_error *err)
{
    *out = NULL;
    if (config->frame_length <= 0 || config->hop_length <= 0 || config->feature_size <= 0 ||
        config->fft_length < config->frame_length)
        return g3n_error_set(err, "audio features: invalid frame %d / hop %d / fft %d / mel %d", config->frame_length,
                             config->hop_length, config->fft_length, config->feature_size);
    g3n_audio_features *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return g3n_error_set(err, "audio features: out of memory");
    f->config = *config;
    f->config.per_bin_mean = NULL;
    f->config.per_bin_stddev = NULL;
    size_t n_mels = (size_t)config->feature_size;
    if (config->per_bin_mean) {
        f->config.per_bin_mean = malloc(sizeof(double) * n_mels);
        if (f->config.per_bin_mean)
            memcpy(f->config.per_bin_mean, config->per_bin_mean, sizeof(double) * n_mels);
    }
    if (config->per_bin_stddev) {
        f->config.per_bin_stddev = malloc(sizeof(double) * n_mels);
        if (f->config.per_bin_stddev)
            memcpy(f->config.per_bin_stddev, config->per_bin_stddev, sizeof(double) * n_mels);
    }
    f->bins = config->fft_length / 2 + 1;
    f->window = malloc(sizeof(float) * (size_t)config->frame_length);
    f->filters = malloc(sizeof(double) * n_mels * (size_t)f->bins);
    f->filter_first = malloc(sizeof(int) * n_mels);
    f->filter_end = malloc(sizeof(int) * n_mels);
    f->contexts = omp_get_max_threads();
    if (f->contexts < omp_get_num_procs())
        f->contexts = omp_get_num_procs();
    if (f->contexts < 1)
        f->contexts = 1;
    f->tx = calloc((size_t)f->contexts, sizeof(AVTXContext *));
    f->tx_in = calloc((size_t)f->contexts, sizeof(double *));
    f->tx_out = calloc((size_t)f->contexts, sizeof(AVComplexDouble *));
    if (f->window == NULL || f->filters == NULL || f->filter_first == NULL || f->filter_end == NULL ||
        f->tx == NULL || f->tx_in == NULL || f->tx_out == NULL ||
        (config->per_bin_mean && f->config.per_bin_mean == NULL) ||
        (config->per_bin_stddev && f->config.per_bin_stddev == NULL)) {
        g3n_audio_features_free(f);
        return g3n_error_set(err, "audio features: out of memory");
    }
    /* Hann window as NumPy float32: 0.5 * (1 - cos(f32(2*pi) * n / frame_length)), every op in f32. */
    const float two_pi = (float)(2.0 * M_PI);
    for (int n = 0; n < config->frame_length; n++) {
        float arg = two_pi * (float)n / (float)config->frame_length;
        float c = (float)cos((double)arg);
        f->window[n] = 0.5f * (1.0f - c);
    }
    mel_filterbank(&f->config, f->bins, f->filters);
    for (size_t m = 0; m < n_mels; m++) {
        const double *row = f->filters + m * (size_t)f->bins;
        int first = f->bins, end = 0;
        for (int k = 0; k < f->bins; k++)
            if (row[k] != 0.0) {
                if (k < first)
                    first = k;
                end = k + 1;
            }
        if (first > end)
            first = end = 0;
        f->filter_first[m] = first;
        f->filter_end[m] = end;
    }
    double scale = 1.0;
    for (int i = 0; i < f->contexts; i++) {
        int rc = av_tx_init(&f->tx[i], &f->tx_fn, AV_TX_DOUBLE_RDFT, 0, config->fft_length, &scale, 0);
        f->tx_in[i] = av_malloc(sizeof(double) * (size_t)(config->fft_length + 2));
        f->tx_out[i] = av_malloc(sizeof(AVComplexDouble) * (size_t)(f->bins + 1));
        if (rc < 0 || f->tx_in[i] == NULL || f->tx_out[i] == NULL) {
            g3n_audio_features_free(f);
            return g3n_error_set(err, "audio features: cannot set up a %d-point real FFT (av_tx)", config->fft_length);
        }
    }
    *out = f;
    return G3N_OK;
}

const g3n_audio_feature_config *g3n_audio_features_config(const g3n_audio_features *f)
{
    return &f->config;
}

/* One frame: _extract_spectrogram for frame samples s[0 .. frame_length]. */
static void one_frame(const g3n_audio_features *f, int context, const float *s, float *out)
{
    const g3n_audio_feature_config *c = &f->config;
    int length = c->frame_length;
    double *in = f->tx_in[context];
    AVComplexDouble *spectrum = f->tx_out[context];
    float scale = (float)c->input_scale_factor;
    int scaled = c->input_scale_factor != 1.0;
#define SAMPLE(i) (scaled ? s[i] * scale : s[i])
    /* preemphasis (f32 like the reference's float32 frames) then the window (f32 product) */
    if (c->preemphasis > 0.0) {
        float p = (float)c->preemphasis;
        if (c->preemphasis_htk) {
            float first = (float)(1.0 - c->preemphasis);
            in[0] = (double)((SAMPLE(0) * first) * f->window[0]);
            for (int n = 1; n < length; n++) {
                float v = SAMPLE(n) - p * SAMPLE(n - 1);
                in[n] = (double)(v * f->window[n]);
            }
        } else {
            for (int n = 0; n < length; n++) {
                float v = SAMPLE(n + 1) - p * SAMPLE(n);
                in[n] = (double)(v * f->window[n]);
            }
        }
    } else {
        for (int n = 0; n < length; n++)
            in[n] = (double)(SAMPLE(n) * f->window[n]);
    }
#undef SAMPLE
    for (int n = length; n < c->fft_length; n++)
        in[n] = 0.0;
    /* np.fft.rfft(frames, n=fft_length) in double: av_tx real-to-complex */
    f->tx_fn(f->tx[context], spectrum, in, sizeof(double));
    double magnitude[f->bins];
    for (int k = 0; k < f->bins; k++)
        magnitude[k] = hypot(spectrum[k].re, spectrum[k].im);
    for (int m = 0; m < c->feature_size; m++) {
        const double *row = f->filters + (size_t)m * f->bins;
        double mel = 0.0;
        for (int k = f->filter_first[m]; k < f->filter_end[m]; k++)
            mel += magnitude[k] * row[k];
        double v = log(mel > c->mel_floor ? mel : c->mel_floor);
        if (c->per_bin_mean)
            v -= c->per_bin_mean[m];
        if (c->per_bin_stddev)
            v /= c->per_bin_stddev[m];
        out[m] = (float)v;
    }
}

void g3n_audio_features_frames(const g3n_audio_features *f, const float *samples, int64_t first, int64_t count,
                               float *out)
{
    int threads = f->contexts;
    if (threads > omp_get_max_threads())
        threads = omp_get_max_threads();
    if (count < 8)
        threads = 1;
    const int64_t hop = f->config.hop_length, width = f->config.feature_size;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < count; i++)
        one_frame(f, omp_get_thread_num(), samples + (first + i) * hop, out + i * width);
}

int g3n_audio_features_batch(const g3n_audio_features *f, const float *const *clips, const int64_t *lengths,
                             int batch, float **out_features, uint8_t **out_mask, int64_t *frames, g3n_error *err)
{
    const g3n_audio_feature_config *c = &f->config;
    *out_features = NULL;
    *out_mask = NULL;
    *frames = 0;
    if (batch <= 0)
        return g3n_error_set(err, "audio features: empty batch");
    int64_t longest = 0;
    for (int b = 0; b < batch; b++) {
        int64_t length = lengths[b] < c->max_samples ? lengths[b] : c->max_samples; /* truncation */
        if (length > longest)
            longest = length;
    }
    int64_t padded = g3n_audio_padded_samples(c, longest);
    int64_t n = g3n_audio_frame_count(c, padded);
    if (n <= 0)
        return g3n_error_set(err, "audio features: the longest clip (%lld samples) is too short for one frame "
                             "(needs %d samples)", (long long)longest, c->frame_length + 1);
    float *features = malloc(sizeof(float) * (size_t)(batch * n * c->feature_size));
    uint8_t *mask = malloc((size_t)(batch * n));
    float *wave = calloc((size_t)padded, sizeof(float));
    if (features == NULL || mask == NULL || wave == NULL) {
        free(features);
        free(mask);
        free(wave);
        return g3n_error_set(err, "audio features: out of memory for %lld frames", (long long)(batch * n));
    }
    for (int b = 0; b < batch; b++) {
        int64_t length = lengths[b] < c->max_samples ? lengths[b] : c->max_samples;
        memcpy(wave, clips[b], sizeof(float) * (size_t)length);
        memset(wave + length, 0, sizeof(float) * (size_t)(padded - length));
        g3n_audio_features_frames(f, wave, 0, n, features + (size_t)b * n * c->feature_size);
        for (int64_t t = 0; t < n; t++) /* attention_mask[::hop][:N] */
            mask[b * n + t] = t * c->hop_length < length;
    }
    free(wave);
    *out_features = features;
    *out_mask = mask;
    *frames = n;
    return G3N_OK;
}
