/* bench_towers.c - `g3n bench vision`, `g3n bench audio`, `g3n bench gemm`:
 * the towers' speed (issue 8: a 768x768 image in <= 2 s, 30 s of audio in
 * <= 1 s on 2 threads) at each compute precision, with what the machine gave
 * us (load average, the CPU share the process actually got) since the hosts
 * are shared; and the packed GEMM against g3n_matmul on the towers' shapes. */
#include "bench_towers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_config.h"
#include "audio_encoder.h"
#include "audio_features.h"
#include "bench_util.h"
#include "commands.h"
#include "config.h"
#include "gemm_packed.h"
#include "matmul.h"
#include "ops.h"
#include "option_groups.h"
#include "synth.h"
#include "vision_encoder.h"
#include "weights.h"

int g3n_bench_towers_handles(const char *name)
{
    return strcmp(name, "vision") == 0 || strcmp(name, "audio") == 0 || strcmp(name, "gemm") == 0;
}

/* ---- measuring on a shared host ---- */

typedef struct run_meter {
    double wall, cpu;
} run_meter;

static run_meter meter_start(void)
{
    run_meter m = {g3n_now_seconds(), g3n_bench_process_cpu_seconds()};
    return m;
}

/* Seconds since start; *share = CPU time / (wall x threads). */
static double meter_stop(run_meter m, double *share)
{
    double wall = g3n_now_seconds() - m.wall, cpu = g3n_bench_process_cpu_seconds() - m.cpu;
    *share = wall > 0.0 ? cpu / (wall * g3n_get_threads()) : 0.0;
    return wall;
}

typedef struct summary {
    double median, min, max, share;
    double projected; /* median x share: the seconds with the threads' cores to ourselves (CPU time / threads) */
    double cpu_min, cpu_median; /* per run: CPU time / threads (wall x its own share), least and median */
} summary;

static summary summarise(double *seconds, double *shares, int count)
{
    double share = 0.0, cpu[64];
    const int cpu_count = count < 64 ? count : 64;
    for (int i = 0; i < count; i++)
        share += shares[i];
    for (int i = 0; i < cpu_count; i++)
        cpu[i] = seconds[i] * (shares[i] < 1.0 ? shares[i] : 1.0);
    summary s = {0};
    s.median = g3n_bench_median(seconds, count, &s.min, &s.max);
    s.share = share / count;
    s.projected = s.median * (s.share < 1.0 ? s.share : 1.0);
    s.cpu_median = g3n_bench_median(cpu, cpu_count, &s.cpu_min, NULL);
    return s;
}

static double rel_l2(const float *a, const float *b, int64_t count)
{
    double diff = 0.0, norm = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double d = (double)a[i] - b[i];
        diff += d * d;
        norm += (double)b[i] * b[i];
    }
    return norm > 0.0 ? sqrt(diff / norm) : sqrt(diff);
}

/* ---- options ---- */

typedef struct bench_options {
    const char *model_dir, *synth_spec, *shapes;
    g3n_precision precisions[3];
    int precision_count;
    int threads, repeat, json;
    double seconds;
} bench_options;

/* --precision f32,bf16,...: up to three precisions into a bench_options. */
static int parse_precision_list(const char *value, void *field, g3n_error *err)
{
    bench_options *o = field;
    char list[64];
    if (strlen(value) >= sizeof list)
        return g3n_error_set(err, "--precision: at most three precisions");
    snprintf(list, sizeof list, "%s", value);
    o->precision_count = 0;
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (o->precision_count == 3)
            return g3n_error_set(err, "--precision: at most three precisions");
        if (g3n_precision_parse(p, &o->precisions[o->precision_count], err) != G3N_OK)
            return g3n_error_prefix(err, "--precision");
        o->precision_count++;
    }
    return o->precision_count > 0 ? G3N_OK : g3n_error_set(err, "--precision: give at least one precision");
}

/* -1 to go on, else the exit code. */
static int parse_options(int argc, char **argv, bench_options *o, const char *name)
{
    memset(o, 0, sizeof *o);
    o->precisions[0] = G3N_PRECISION_F32;
    o->precisions[1] = G3N_PRECISION_BF16;
    o->precision_count = 2;
    o->repeat = strcmp(name, "gemm") == 0 ? 5 : 3;
    o->seconds = 30.0;
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&o->model_dir, "vision, audio: a checkpoint folder"),
        G3N_OPTION_SYNTH(&o->synth_spec),
        G3N_CUSTOM("precision", o, parse_precision_list, "P,P", "the precisions to measure (default f32,bf16)"),
        G3N_DOUBLE("seconds", &o->seconds, 0.001, 3600, "S", "audio: seconds of the synthetic clip (default 30)"),
        G3N_STRING("shapes", &o->shapes, "MxKxN,...", "gemm: the shapes (default: the towers')"),
        G3N_OPTION_THREADS(&o->threads),
        G3N_INT("repeat", &o->repeat, 1, 1000000, "R", "runs (default 3; gemm 5)"),
        G3N_FLAG("json", &o->json, "one JSON object on stdout"),
    };
    char command[64];
    snprintf(command, sizeof command, "g3n bench %s", name);
    const g3n_command_spec spec = {
        .name = command,
        .usage = "g3n bench vision (--model DIR | --synth CONFIG:SEED) [--precision f32,bf16] [--threads N]\n"
                 "                        [--repeat R] [--json]\n"
                 "       g3n bench audio  (--model DIR | --synth CONFIG:SEED) [--seconds S] [--precision f32,bf16]\n"
                 "                        [--threads N] [--repeat R] [--json]\n"
                 "       g3n bench gemm   [--shapes MxKxN,...] [--threads N] [--repeat R] [--json]",
        .about = "vision: seconds per image (tower + embed_vision) at the config's image size (768x768),\n"
                 "        from synthetic pixels; median/min/max of R runs (default 3) after one warm-up.\n"
                 "audio:  the audio tower on S seconds (default 30) of a synthetic 16 kHz clip: log-mel\n"
                 "        features once, then the conformer encoder R times; real-time factor =\n"
                 "        encoder seconds / audio seconds (< 1 is faster than real time).\n"
                 "gemm:   GFLOP/s of y = x·Wᵀ on bf16 weights: g3n_matmul against g3n_gemm_packed\n"
                 "        (f32 exact and bf16 compute), best of R (default 5); default shapes are the\n"
                 "        towers' (vision 1x1 convs at 48x48 and 96x96, audio conformer chunks).\n",
        .footer = "Each precision in --precision is measured (default f32,bf16; int8 too if asked: f32 = the\n"
                  "exact path, bf16 = AVX512-BF16 products, int8 = AVX512-VNNI; later ones are compared with\n"
                  "the first as rel-L2). Without AVX-512 (or with G3N_ISA=avx2) the AVX2 kernels run: bf16 =\n"
                  "bf16 weights with f32 FMAs, int8 = AVX-VNNI where the CPU has it (G3N_AVX_VNNI=0: without),\n"
                  "else vpmaddubsw; each row names the ISA and the GEMM kernels that ran.\n"
                  "The host is shared: the report gives the load average and the CPU share the run got\n"
                  "(process CPU time / (wall time x threads)), and the median x that share: the CPU seconds per\n"
                  "thread, i.e. the time with the cores to itself (an estimate: serial parts count only once).\n"
                  "audio also gives each run's own CPU seconds per thread, least and median: steadier than the\n"
                  "median x the average share when the load swings between runs.\n"
                  "OMP_WAIT_POLICY=passive suits loaded hosts (idle threads sleep instead of spinning).\n",
        .help_column = 22,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    if (strcmp(name, "gemm") != 0 && (o->model_dir == NULL) == (o->synth_spec == NULL))
        return g3n_options_usage_error(&spec, "give exactly one of --model DIR or --synth CONFIG:SEED");
    if (o->threads > 0)
        g3n_set_threads(o->threads);
    return -1;
}

/* Config + weights from --model or --synth (synth in bf16, as a checkpoint stores them). */
static int open_model(const bench_options *o, g3n_model_config *config, g3n_weights **weights, g3n_error *err)
{
    if (o->model_dir)
        return g3n_config_load(config, o->model_dir, err) != G3N_OK ||
                       g3n_weights_open_checkpoint(weights, o->model_dir, err) != G3N_OK
                   ? G3N_ERR
                   : G3N_OK;
    char config_path[1024];
    uint64_t seed;
    if (g3n_parse_synth_spec(o->synth_spec, config_path, sizeof config_path, &seed, err) != G3N_OK ||
        g3n_config_load(config, config_path, err) != G3N_OK ||
        g3n_weights_open_synth(weights, seed, G3N_DTYPE_BF16, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

static void print_header(const char *what, const bench_options *o, const g3n_weights *weights)
{
    if (!o->json)
        printf("%s (%s), %d threads, %s kernels, load average %.2f at start\n", what,
               weights ? g3n_weights_describe(weights) : "synthetic", g3n_get_threads(), g3n_isa_name(g3n_isa_active()),
               g3n_bench_load_average());
}

/* ---- a tower at each precision ---- */

/* A tower under test, for bench_precisions: state holds its encoder and the
 * prepared input. */
typedef struct tower_bench {
    void *state;
    int64_t output_count;                  /* floats one encode writes, compared across precisions */
    const char *rel_l2_key, *rel_l2_label; /* that comparison's JSON key and text label */
    int (*load)(void *state, g3n_precision precision, g3n_error *err);
    int (*encode)(void *state, float *output, g3n_error *err);
    void (*unload)(void *state);
    /* the tower's own figures in a report row, between the precision and the load time */
    void (*print_figures)(const void *state, const bench_options *o, const summary *s);
} tower_bench;

/* Each --precision in turn: loads the tower (timed), encodes once to warm up,
 * then o->repeat measured times; prints a row per precision (later ones with
 * their rel-L2 to the first's output) and the closing line. */
static int bench_precisions(const bench_options *o, const tower_bench *t, g3n_error *err)
{
    float *outputs[3] = {NULL, NULL, NULL};
    double *seconds = malloc(sizeof(double) * (size_t)o->repeat), *shares = malloc(sizeof(double) * (size_t)o->repeat);
    int status = seconds && shares ? G3N_OK : g3n_error_set(err, "out of memory");
    for (int pi = 0; status == G3N_OK && pi < o->precision_count; pi++) {
        g3n_precision precision = o->precisions[pi];
        double t0 = g3n_now_seconds();
        status = t->load(t->state, precision, err);
        if (status != G3N_OK)
            break;
        double load_seconds = g3n_now_seconds() - t0;
        outputs[pi] = malloc(sizeof(float) * (size_t)t->output_count);
        status = outputs[pi] ? t->encode(t->state, outputs[pi], err) : g3n_error_set(err, "out of memory");
        for (int r = 0; status == G3N_OK && r < o->repeat; r++) {
            run_meter m = meter_start();
            status = t->encode(t->state, outputs[pi], err);
            seconds[r] = meter_stop(m, &shares[r]);
        }
        t->unload(t->state);
        if (status != G3N_OK)
            break;
        summary s = summarise(seconds, shares, o->repeat);
        double accuracy = pi > 0 ? rel_l2(outputs[pi], outputs[0], t->output_count) : 0.0;
        if (o->json) {
            printf("%s{\"precision\":\"%s\"", pi ? "," : "", g3n_precision_name(precision));
            t->print_figures(t->state, o, &s);
            printf(",\"load_seconds\":%.2f,\"%s\":%.3e,\"isa\":\"%s\",\"gemm_kernels\":\"%s\"}", load_seconds,
                   t->rel_l2_key, accuracy, g3n_isa_name(g3n_isa_active()), g3n_gemm_packed_kernel_name(precision));
        } else {
            printf("  %-5s ", g3n_precision_name(precision));
            t->print_figures(t->state, o, &s);
            printf(", load/pack %.1f s", load_seconds);
            if (pi > 0)
                printf(", %s %.2e", t->rel_l2_label, accuracy);
            printf(", GEMM kernels %s\n", g3n_gemm_packed_kernel_name(precision));
        }
    }
    if (status == G3N_OK) {
        if (o->json)
            printf("],\"load_average_end\":%.2f}\n", g3n_bench_load_average());
        else
            printf("  load average %.2f at end\n", g3n_bench_load_average());
    }
    free(seconds);
    free(shares);
    for (int i = 0; i < 3; i++)
        free(outputs[i]);
    return status;
}

/* ---- vision ---- */

typedef struct vision_bench {
    const g3n_model_config *config;
    g3n_weights *weights;
    g3n_vision_encoder *encoder;
    const float *pixels;
    float *embeds;
    int side;
} vision_bench;

static int load_vision(void *state, g3n_precision precision, g3n_error *err)
{
    vision_bench *v = state;
    return g3n_vision_encoder_load_precision(&v->encoder, v->config, v->weights, precision, err);
}

static int encode_vision(void *state, float *output, g3n_error *err)
{
    vision_bench *v = state;
    return g3n_vision_encoder_encode(v->encoder, v->pixels, 1, v->side, v->side, output, v->embeds, err);
}

static void unload_vision(void *state)
{
    vision_bench *v = state;
    g3n_vision_encoder_free(v->encoder);
    v->encoder = NULL;
}

static void print_vision_figures(const void *state, const bench_options *o, const summary *s)
{
    const vision_bench *v = state;
    if (o->json)
        printf(",\"image\":%d,\"seconds_median\":%.4f,\"seconds_min\":%.4f,\"seconds_max\":%.4f,\"cpu_share\":%.3f,"
               "\"cpu_seconds_per_thread\":%.4f",
               v->side, s->median, s->min, s->max, s->share, s->projected);
    else
        printf("%dx%d: %.3f s per image (median of %d; min %.3f, max %.3f), cpu share %.0f%% -> %.3f s with the cores "
               "to itself",
               v->side, v->side, s->median, o->repeat, s->min, s->max, 100.0 * s->share, s->projected);
}

static int bench_vision(const bench_options *o)
{
    g3n_error err = {{0}};
    g3n_model_config config = {0};
    g3n_weights *weights = NULL;
    g3n_vision_config vc;
    float *pixels = NULL, *embeds = NULL;
    int status = 1;
    if (open_model(o, &config, &weights, &err) != G3N_OK)
        goto done;
    print_header("vision tower", o, weights);
    if (o->json)
        printf("{\"benchmark\":\"vision\",\"threads\":%d,\"isa\":\"%s\",\"load_average_start\":%.2f,\"runs\":[",
               g3n_get_threads(), g3n_isa_name(g3n_isa_active()), g3n_bench_load_average());
    if (g3n_vision_config_parse(&config, &vc, &err) != G3N_OK) {
        g3n_error_prefix(&err, "vision encoder"); /* as loading the encoder says it */
        goto done;
    }
    int side = (int)vc.image_size;
    int64_t plane = (int64_t)side * side;
    pixels = malloc(sizeof(float) * (size_t)(3 * plane));
    embeds = malloc(sizeof(float) * (size_t)(vc.soft_tokens * config.text.hidden_size));
    if (!pixels || !embeds) {
        g3n_error_set(&err, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < 3 * plane; i++) /* smooth gradients + a little texture, in [0, 1] */
        pixels[i] = 0.5f + 0.4f * sinf(0.013f * (float)(i % side) + 0.029f * (float)((i / side) % side) +
                                       1.7f * (float)(i / plane)) * cosf(0.31f * (float)(i % 7));
    vision_bench v = {&config, weights, NULL, pixels, embeds, side};
    tower_bench tower = {.state = &v, .output_count = vc.soft_tokens * vc.hidden_size,
                         .rel_l2_key = "tower_rel_l2_vs_f32", .rel_l2_label = "tower rel-L2 vs f32",
                         .load = load_vision, .encode = encode_vision, .unload = unload_vision,
                         .print_figures = print_vision_figures};
    if (bench_precisions(o, &tower, &err) != G3N_OK)
        goto done;
    status = 0;
done:
    if (status != 0)
        fprintf(stderr, "g3n bench vision: error: %s\n", err.message);
    free(pixels);
    free(embeds);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    return status;
}

/* ---- audio ---- */

typedef struct audio_bench {
    const g3n_audio_config *config;
    g3n_weights *weights;
    g3n_audio_encoder encoder;
    const float *features;
    const uint8_t *padding;
    int64_t frames;
} audio_bench;

static int load_audio(void *state, g3n_precision precision, g3n_error *err)
{
    audio_bench *a = state;
    return g3n_audio_encoder_load_precision(&a->encoder, a->config, a->weights, precision, err);
}

static int encode_audio(void *state, float *output, g3n_error *err)
{
    audio_bench *a = state;
    return g3n_audio_encoder_encode(&a->encoder, a->features, a->padding, a->frames, output, NULL, err);
}

static void unload_audio(void *state)
{
    audio_bench *a = state;
    g3n_audio_encoder_free(&a->encoder);
}

static void print_audio_figures(const void *state, const bench_options *o, const summary *s)
{
    (void)state;
    if (o->json)
        printf(",\"seconds_median\":%.4f,\"seconds_min\":%.4f,\"seconds_max\":%.4f,\"real_time_factor\":%.4f,"
               "\"cpu_share\":%.3f,\"cpu_seconds_per_thread\":%.4f,\"cpu_seconds_per_thread_min\":%.4f,"
               "\"cpu_seconds_per_thread_median\":%.4f",
               s->median, s->min, s->max, s->median / o->seconds, s->share, s->projected, s->cpu_min, s->cpu_median);
    else
        printf("encoder %.3f s (median of %d; min %.3f, max %.3f): real-time factor %.3f, cpu share %.0f%% -> %.3f s "
               "with the cores to itself (per run CPU s/thread: min %.3f, median %.3f)",
               s->median, o->repeat, s->min, s->max, s->median / o->seconds, 100.0 * s->share, s->projected,
               s->cpu_min, s->cpu_median);
}

static int bench_audio(const bench_options *o)
{
    g3n_error err = {{0}};
    g3n_model_config config = {0};
    g3n_weights *weights = NULL;
    g3n_audio_config audio;
    g3n_audio_feature_config fc;
    g3n_audio_feature_config_default(&fc);
    g3n_audio_features *extractor = NULL;
    float *samples = NULL, *features = NULL;
    uint8_t *mask = NULL, *padding = NULL;
    int status = 1;
    if (open_model(o, &config, &weights, &err) != G3N_OK)
        goto done;
    if (o->model_dir) {
        char path[1200];
        snprintf(path, sizeof path, "%s/preprocessor_config.json", o->model_dir);
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            if (g3n_audio_feature_config_load(&fc, path, &err) != G3N_OK)
                goto done;
        }
    }
    if (g3n_audio_config_parse(&audio, &config, &err) != G3N_OK ||
        g3n_audio_features_create(&extractor, &fc, &err) != G3N_OK)
        goto done;
    int64_t count = (int64_t)(o->seconds * fc.sampling_rate);
    samples = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
    if (!samples) {
        g3n_error_set(&err, "out of memory");
        goto done;
    }
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < count; i++) { /* a gliding tone, a formant-ish pair and noise */
        double t = (double)i / fc.sampling_rate;
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        double noise = ((double)(state >> 40) / (double)(1ull << 24)) - 0.5;
        samples[i] = (float)(0.3 * sin(2 * M_PI * (220.0 + 40.0 * sin(0.7 * t)) * t) +
                             0.1 * sin(2 * M_PI * 1250.0 * t) * (0.5 + 0.5 * sin(3.0 * t)) + 0.05 * noise);
    }
    print_header("audio tower", o, weights);
    const float *clips[1] = {samples};
    int64_t frames = 0;
    run_meter fm = meter_start();
    if (g3n_audio_features_batch(extractor, clips, &count, 1, &features, &mask, &frames, &err) != G3N_OK)
        goto done;
    double feature_share, feature_seconds = meter_stop(fm, &feature_share);
    int64_t tokens = g3n_audio_encoder_token_count(&audio, frames);
    padding = malloc((size_t)frames);
    if (!padding) {
        g3n_error_set(&err, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < frames; i++)
        padding[i] = !mask[i];
    if (o->json)
        printf("{\"benchmark\":\"audio\",\"threads\":%d,\"isa\":\"%s\",\"audio_seconds\":%.2f,\"frames\":%lld,"
               "\"tokens\":%lld,\"features_seconds\":%.4f,\"load_average_start\":%.2f,\"runs\":[",
               g3n_get_threads(), g3n_isa_name(g3n_isa_active()), o->seconds, (long long)frames, (long long)tokens, feature_seconds,
               g3n_bench_load_average());
    else
        printf("  %.1f s of audio: %lld feature frames -> %lld tokens; features %.3f s\n", o->seconds,
               (long long)frames, (long long)tokens, feature_seconds);
    audio_bench a = {.config = &audio, .weights = weights, .features = features, .padding = padding, .frames = frames};
    tower_bench tower = {.state = &a, .output_count = tokens * audio.hidden_size,
                         .rel_l2_key = "rel_l2_vs_f32", .rel_l2_label = "rel-L2 vs f32",
                         .load = load_audio, .encode = encode_audio, .unload = unload_audio,
                         .print_figures = print_audio_figures};
    if (bench_precisions(o, &tower, &err) != G3N_OK)
        goto done;
    status = 0;
done:
    if (status != 0)
        fprintf(stderr, "g3n bench audio: error: %s\n", err.message);
    free(samples);
    free(features);
    free(mask);
    free(padding);
    g3n_audio_features_free(extractor);
    g3n_audio_feature_config_free(&fc);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    return status;
}

/* ---- gemm ---- */

static double best_seconds(int repeat, void (*run)(void *), void *user)
{
    run(user); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        double t0 = g3n_now_seconds();
        run(user);
        double t = g3n_now_seconds() - t0;
        best = t < best ? t : best;
    }
    return best;
}

typedef struct gemm_case {
    const float *x;
    int64_t m;
    const g3n_matrix *w;
    const g3n_packed_matrix *packed;
    float *y;
} gemm_case;

static void run_matmul(void *user)
{
    gemm_case *c = user;
    g3n_matmul(c->x, c->m, (size_t)c->w->cols, c->w, c->y, (size_t)c->w->rows);
}

static void run_packed(void *user)
{
    gemm_case *c = user;
    g3n_gemm_packed(c->x, c->m, (size_t)c->w->cols, c->packed, c->y, (size_t)c->w->rows, NULL);
}

static int bench_gemm(const bench_options *o)
{
    const char *shapes = o->shapes ? o->shapes : "2304x640x2560,2304x2560x640,9216x256x1024,96x1536x6144,96x6144x1536";
    print_header("gemm, bf16 weights", o, NULL);
    if (o->json)
        printf("{\"benchmark\":\"gemm\",\"threads\":%d,\"isa\":\"%s\",\"shapes\":[", g3n_get_threads(),
               g3n_isa_name(g3n_isa_active()));
    else
        printf("  %-18s %14s %14s %14s %14s  (GFLOP/s, best of %d)\n", "M x K x N", "g3n_matmul", "packed f32",
               "packed bf16", "packed int8", o->repeat);
    int first = 1;
    for (const char *p = shapes; *p;) {
        long long m, k, n;
        int used = 0;
        if (sscanf(p, "%lldx%lldx%lld%n", &m, &k, &n, &used) != 3 || m < 1 || k < 1 || n < 1) {
            fprintf(stderr, "g3n bench gemm: error: bad shape list '%s' (want MxKxN,...)\n", p);
            return 2;
        }
        p += used;
        if (*p == ',')
            p++;
        float *x = malloc(sizeof(float) * (size_t)(m * k)), *y = malloc(sizeof(float) * (size_t)(m * n));
        uint16_t *w = malloc(sizeof(uint16_t) * (size_t)(n * k));
        if (!x || !y || !w) {
            free(x);
            free(y);
            free(w);
            fprintf(stderr, "g3n bench gemm: error: out of memory\n");
            return 1;
        }
        int64_t x_shape[2] = {m, k}, w_shape[2] = {n, k};
        g3n_synth_fill_f32("bench.x", 2, x_shape, 1, 0, m * k, x);
        g3n_synth_fill_bf16("bench.w", 2, w_shape, 1, 0, n * k, w);
        g3n_matrix matrix = {G3N_DTYPE_BF16, n, k, (size_t)k * sizeof(uint16_t), w};
        g3n_packed_matrix exact = {0}, fast = {0}, int8 = {0};
        g3n_error err = {{0}};
        if (g3n_packed_matrix_pack(&exact, &matrix, G3N_PRECISION_F32, &err) != G3N_OK ||
            g3n_packed_matrix_pack(&fast, &matrix, G3N_PRECISION_BF16, &err) != G3N_OK ||
            g3n_packed_matrix_pack(&int8, &matrix, G3N_PRECISION_INT8, &err) != G3N_OK) {
            fprintf(stderr, "g3n bench gemm: error: %s\n", err.message);
            return 1;
        }
        gemm_case c = {x, m, &matrix, &exact, y};
        double flop = 2.0 * (double)m * (double)k * (double)n;
        double rate_matmul = flop / best_seconds(o->repeat, run_matmul, &c) / 1e9;
        double rate_exact = flop / best_seconds(o->repeat, run_packed, &c) / 1e9;
        c.packed = &fast;
        double rate_fast = flop / best_seconds(o->repeat, run_packed, &c) / 1e9;
        c.packed = &int8;
        double rate_int8 = flop / best_seconds(o->repeat, run_packed, &c) / 1e9;
        if (o->json)
            printf("%s{\"m\":%lld,\"k\":%lld,\"n\":%lld,\"matmul_gflops\":%.2f,\"packed_f32_gflops\":%.2f,"
                   "\"packed_bf16_gflops\":%.2f,\"packed_int8_gops\":%.2f}",
                   first ? "" : ",", m, k, n, rate_matmul, rate_exact, rate_fast, rate_int8);
        else {
            char label[64];
            snprintf(label, sizeof label, "%lldx%lldx%lld", m, k, n);
            printf("  %-18s %14.1f %14.1f %14.1f %14.1f\n", label, rate_matmul, rate_exact, rate_fast, rate_int8);
        }
        first = 0;
        g3n_packed_matrix_free(&exact);
        g3n_packed_matrix_free(&fast);
        g3n_packed_matrix_free(&int8);
        free(x);
        free(y);
        free(w);
    }
    if (o->json)
        printf("],\"load_average\":%.2f}\n", g3n_bench_load_average());
    else
        printf("  load average %.2f at end\n", g3n_bench_load_average());
    return 0;
}

int g3n_bench_towers(int argc, char **argv)
{
    bench_options o;
    int rc = parse_options(argc, argv, &o, argv[0]);
    if (rc >= 0)
        return rc;
    if (strcmp(argv[0], "vision") == 0)
        return bench_vision(&o);
    if (strcmp(argv[0], "audio") == 0)
        return bench_audio(&o);
    return bench_gemm(&o);
}
