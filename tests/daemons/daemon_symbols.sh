#!/usr/bin/env bash
# daemon_symbols.sh BIN_DIR - each role daemon carries only its own role's code
# (issue 16 item 4): nm finds none of the other roles', the orchestrator's, the
# tokenizer's or the HTTP server's functions in it, and ldd no library that only
# another role needs (libmicrohttpd; libvips outside the vision encoder; FFmpeg
# outside the audio encoder). A control checks the same way that g3n-orchestrator
# does hold such symbols, so that a check finding nothing is not a pass by accident.
set -u
dir=${1:?usage: daemon_symbols.sh BIN_DIR}
failed=0

# defined symbols (text, data, read-only) of a binary, one a line
defined() { nm --defined-only "$1" | awk '{print $3}'; }

# check BINARY OWN_SYMBOL FORBIDDEN_REGEX FORBIDDEN_LIBS_REGEX
check() {
    local bin=$dir/$1 own=$2 forbidden=$3 libs=$4
    if [ ! -x "$bin" ]; then
        echo "FAIL $1: no such binary $bin"; failed=1; return
    fi
    local symbols; symbols=$(defined "$bin")
    if ! grep -qx "$own" <<<"$symbols"; then
        echo "FAIL $1: its own role's $own is missing (nm read nothing?)"; failed=1
    fi
    local found; found=$(grep -E "$forbidden" <<<"$symbols" | head -5 | tr '\n' ' ')
    if [ -n "$found" ]; then
        echo "FAIL $1: carries code of another part of g3n: $found"; failed=1
    fi
    local linked; linked=$(ldd "$bin" | awk '{print $1}' | grep -E "$libs" | tr '\n' ' ')
    if [ -n "$linked" ]; then
        echo "FAIL $1: links $linked"; failed=1
    fi
    [ -z "$found$linked" ] && echo "ok $1: $(wc -l <<<"$symbols") symbols, none of another role's"
}

# Never in a role daemon: the orchestrator (pipeline, sessions' records, prefix cache, front door, HTTP), the
# four roles' registry (orchestrator/roles.c), the tokenizer, libmicrohttpd.
client='^(g3n_pipeline_|g3n_local_roles|g3n_role_ops_for$|g3n_role_open$|g3n_front_door_|g3n_http_|g3n_prefix_cache_|g3n_session_record_|g3n_tokenizer_|g3n_chat_|MHD_)'
vision='^(g3n_vision_encoder_|g3n_vision_role_ops$|g3n_image_)'
audio='^(g3n_audio_encoder_|g3n_audio_role_ops$|g3n_audio_stream_table_|g3n_audio_decode_)'
embedder='^(g3n_embedder_)' # the embedder's merge and its role (g3n_embedder_role_ops)
decoder='^(g3n_text_model_|g3n_text_session_|g3n_text_batch_|g3n_decoder_role_ops$|g3n_sampler_)'

check g3n-vision-encoder g3n_vision_role_ops "$client|$audio|$embedder|$decoder" 'libmicrohttpd|libavformat|libavcodec'
check g3n-audio-encoder g3n_audio_role_ops "$client|$vision|$embedder|$decoder" 'libmicrohttpd|libvips'
check g3n-embedder g3n_embedder_role_ops "$client|$vision|$audio|$decoder" 'libmicrohttpd|libvips|libavformat|libavcodec'
check g3n-decoder g3n_decoder_role_ops "$client|$vision|$audio|$embedder" 'libmicrohttpd|libvips|libavformat|libavcodec'

# The control: the orchestrator holds the tokenizer and the HTTP server, so the check above can see them.
control=$(defined "$dir/g3n-orchestrator" 2>/dev/null | grep -cE '^(g3n_tokenizer_|MHD_|g3n_http_)')
if [ "${control:-0}" -lt 3 ] || ! ldd "$dir/g3n-orchestrator" | grep -q libmicrohttpd; then
    echo "FAIL control: nm/ldd found no tokenizer or HTTP code in g3n-orchestrator either ($control symbols)"
    failed=1
fi
exit $failed
