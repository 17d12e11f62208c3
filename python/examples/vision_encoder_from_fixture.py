#!/usr/bin/env python3
"""An example vision encoder in Python: answers EncodeImageRequests from a
reference tower output stored in a safetensors file, for the one image it
knows (by the image file's bytes or by its pixel_values), and refuses any
other image with a clear error. A real one would run its own tower (a GPU
model, say) where this looks the answer up.

    python3 python/examples/vision_encoder_from_fixture.py --connect tcp://127.0.0.1:5555 \\
        --tower-output tower.safetensors:tower_output \\
        --pixel-values tests/fixtures/image-preprocess/golden.safetensors:pixel_values_png \\
        --image tests/fixtures/image-preprocess/image.png
"""
import argparse
import array
import hashlib
import json
import math
import os
import re
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from g3n_worker import Worker, WorkerError, pb  # noqa: E402


def read_tensor(spec):
    """FILE:NAME of a safetensors file -> (dtype, shape, raw little-endian bytes)."""
    path, name = spec.rsplit(":", 1)
    with open(path, "rb") as f:
        header_size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_size))
        if name not in header:
            raise SystemExit("%s has no tensor %s" % (path, name))
        begin, end = header[name]["data_offsets"]
        f.seek(8 + header_size + begin)
        return header[name]["dtype"], header[name]["shape"], f.read(end - begin)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connect", default="tcp://127.0.0.1:5555", help="the orchestrator's worker endpoint")
    p.add_argument("--name", help="worker name (default vision-encoder-HOST-pyPID)")
    p.add_argument("--tower-output", required=True,
                   help="FILE:TENSOR, the tower output [1, hidden, 16, 16] f32 times sqrt(hidden), as the vision "
                        "fixtures' tower_output and `g3n encode-image --save-tower` store it")
    p.add_argument("--pixel-values", help="FILE:TENSOR, the pixel_values [1, 3, S, S] it belongs to")
    p.add_argument("--image", help="the image file it belongs to (requests with its bytes)")
    p.add_argument("--heartbeat-ms", type=int, default=1000)
    p.add_argument("--heartbeat-timeout-ms", type=int, default=5000)
    p.add_argument("--drain-timeout-s", type=float, default=30.0)
    p.add_argument("--server-key", help="CurveZMQ: the orchestrator's public key file (g3n keygen's server.key)")
    p.add_argument("--key", help="CurveZMQ: this worker's secret key file (g3n keygen's NAME.key_secret, mode 0600)")
    a = p.parse_args()
    dtype, shape, data = read_tensor(a.tower_output)
    if dtype != "F32" or len(shape) != 4 or shape[0] != 1:
        raise SystemExit("the tower output must be f32 [1, hidden, h, w], got %s %s" % (dtype, shape))
    hidden, tokens = shape[1], shape[2] * shape[3]
    channels_first = array.array("f", data)
    if sys.byteorder != "little":
        channels_first.byteswap()
    # [hidden, tokens] -> token-major [tokens, hidden], as EncodeImageReply carries it
    # the fixtures' tower_output is last_hidden_state * sqrt(hidden) (the reference scales it in place);
    # the wire carries the tower's own output, which the embedder scales
    scale = math.sqrt(hidden)
    channels_first = array.array("f", (x / scale for x in channels_first))
    token_major = array.array("f", bytes(4 * hidden * tokens))
    for c in range(hidden):
        token_major[c::hidden] = channels_first[c * tokens:(c + 1) * tokens]
    answer = token_major.tobytes()
    known_pixels = known_image = None
    if a.pixel_values:
        known_pixels = hashlib.sha256(read_tensor(a.pixel_values)[2]).digest()
    if a.image:
        known_image = hashlib.sha256(open(a.image, "rb").read()).digest()

    def encode(request, worker):
        if request.image:
            if hashlib.sha256(request.image).digest() != known_image:
                raise WorkerError("encode_image.image: this example knows only %s" % a.image)
        elif request.HasField("pixel_values"):
            if hashlib.sha256(request.pixel_values.data).digest() != known_pixels:
                raise WorkerError("encode_image.pixel_values: this example knows only %s" % a.pixel_values)
        else:
            raise WorkerError("encode_image: give image bytes or pixel_values")
        return pb.EncodeImageReply(tokens=worker.tensor_f32(answer, [tokens, hidden]), seconds=0.0)

    curve = {}
    if a.server_key or a.key:
        if not (a.server_key and a.key):
            raise SystemExit("--server-key and --key go together")
        def read(path, name):  # g3n keygen's files (ZeroMQ certificate text) or one bare Z85 key
            text = open(path).read()
            found = re.search(name + r'\s*=\s*"([^"]{40})"', text)
            return found.group(1) if found else text.split()[0]
        if os.stat(a.key).st_mode & 0o077:
            raise SystemExit("%s is readable by group or others: chmod 600 it" % a.key)
        curve = dict(server_public_key=read(a.server_key, "public-key"), public_key=read(a.key, "public-key"),
                     secret_key=read(a.key, "secret-key"))
    worker = Worker("vision-encoder", a.connect, encode, name=a.name, model_id="python example (fixture)",
                    heartbeat_ms=a.heartbeat_ms, heartbeat_timeout_ms=a.heartbeat_timeout_ms,
                    drain_timeout_s=a.drain_timeout_s, **curve)
    sys.exit(worker.run())


if __name__ == "__main__":
    main()
