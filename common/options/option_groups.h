/* option_groups.h - the options several binaries share, defined once as
 * table entries for options.h: the model source (--model, --synth,
 * --tokenizer, --weights, --submodel) and the transport's security
 * (--keys / --key + --server-key, --insecure). Each macro takes pointers to
 * the command's own fields; a command lists only the ones it accepts. */
#ifndef G3N_OPTION_GROUPS_H
#define G3N_OPTION_GROUPS_H

#include "curve_keys.h"
#include "gemm_packed.h"
#include "options.h"
#include "quant.h"

/* --weights f32|bf16|q8|q4 (also "exact") into a g3n_weight_format. */
int g3n_option_parse_weight_format(const char *value, void *format, g3n_error *err);

/* --precision f32|bf16|int8 (also "exact") into a g3n_precision: the towers' products. */
int g3n_option_parse_precision(const char *value, void *precision, g3n_error *err);

#define G3N_OPTION_MODEL(field, help_text) G3N_STRING("model", field, "DIR", help_text)
#define G3N_OPTION_MODEL_DEFAULT(field) G3N_OPTION_MODEL(field, "checkpoint folder (config.json, safetensors shards)")
#define G3N_OPTION_SYNTH(field) \
    G3N_STRING("synth", field, "CONFIG:SEED", "synthetic bf16 weights for a config.json instead (tests)")
#define G3N_OPTION_TOKENIZER(field, help_text) G3N_STRING("tokenizer", field, "FILE", help_text)
/* format: g3n_weight_format *; given: int * (or NULL) set when --weights was given. */
#define G3N_OPTION_WEIGHTS(format, given_field, help_text)                                                 \
    {.name = "weights", .kind = G3N_OPTION_CUSTOM, .value = (format), .parse = g3n_option_parse_weight_format, \
     .value_name = "F", .help = (help_text), .given = (given_field)}
#define G3N_OPTION_PRECISION(precision, help_text)                                                       \
    {.name = "precision", .kind = G3N_OPTION_CUSTOM, .value = (precision), .parse = g3n_option_parse_precision, \
     .value_name = "P", .help = (help_text)}
#define G3N_OPTION_SUBMODEL(field, help_text) G3N_STRING("submodel", field, "SPEC", help_text)

/* A binding side (g3n_security_flags *flags): --keys DIR, --insecure. */
#define G3N_OPTIONS_SECURITY_BIND(flags)                                                                        \
    G3N_STRING("keys", &(flags)->keys_dir, "DIR",                                                              \
               "CurveZMQ on tcp://: DIR/server.key_secret is this side's key, DIR/ROLE/*.key\n"                \
               "and DIR/clients/*.key the peers allowed in (g3n keygen; re-read on SIGHUP)"),                 \
        G3N_FLAG("insecure", &(flags)->insecure,                                                               \
                 "allow plain tcp:// without keys (trusted networks only; logs a warning)")
/* A connecting side: --key FILE, --server-key FILE, --insecure. */
#define G3N_OPTIONS_SECURITY_CONNECT(flags)                                                                     \
    G3N_STRING("key", &(flags)->key_file, "FILE",                                                              \
               "CurveZMQ on tcp://: this side's secret key (NAME.key_secret, mode 0600)"),                     \
        G3N_STRING("server-key", &(flags)->server_key_file, "FILE",                                            \
                   "the orchestrator's public key (its keys folder's server.key)"),                            \
        G3N_FLAG("insecure", &(flags)->insecure,                                                               \
                 "allow plain tcp:// without keys (trusted networks only; logs a warning)")

#endif
