#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/NAME/), small valid
inputs of each parser, with the standard library only. Run from anywhere:
    python3 tests/fuzz/make_seeds.py
The JPEG, WebP, GIF and TIFF image seeds (corpus/image/seed-rgb.{jpg,webp,gif,tif})
were written once by libvips from seed-rgb.png (vips_image_write_to_buffer)
and are kept as they are."""
import base64, json, math, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
CORPUS = os.path.join(HERE, "corpus")
SEP = b"\n--g3n--\n"


def put(name, file, data):
    folder = os.path.join(CORPUS, name)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, file), "wb") as f:
        f.write(data)


# ---- media ----
def png(width, height, channels=3, depth=8):
    kinds = {1: 0, 2: 4, 3: 2, 4: 6}
    raw = b""
    for y in range(height):
        raw += b"\0" + bytes(((x * 37 + y * 11 + c * 70) & 0xFF) for x in range(width) for c in range(channels))
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, depth, kinds[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def bmp(width, height):
    row = (width * 3 + 3) & ~3
    pixels = b"".join(bytes(((x * 5 + y * 9 + c * 40) & 0xFF) for x in range(width) for c in range(3)).ljust(row, b"\0")
                      for y in range(height))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def wav(samples, rate=16000, channels=1, bits=16):
    if bits == 16:
        data = b"".join(struct.pack("<h", max(-32768, min(32767, int(v * 32767)))) for v in samples)
        fmt = 1
    else:
        data = b"".join(struct.pack("<f", v) for v in samples)
        fmt = 3
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * block, block, bits) + b"data" +
            struct.pack("<I", len(data)) + data)


def tone(count, freq=440.0, rate=16000):
    return [0.5 * math.sin(2 * math.pi * freq * i / rate) for i in range(count)]


# ---- protobuf, by hand ----
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def fixed32(number, value):
    return varint(number << 3 | 5) + struct.pack("<f", value)


def tensor(dtype, shape, data):
    packed = b"".join(varint(d) for d in shape)
    return field(1, dtype) + field(2, packed) + field(3, data)


F32, BF16, F16, I32, I64, U8 = 1, 2, 3, 4, 5, 6


def f32(values):
    return b"".join(struct.pack("<f", v) for v in values)


def envelope(body_field, body, request_id=7, partial=False):
    out = field(1, 1) + field(2, request_id)
    if partial:
        out += field(3, 1)
    return out + field(body_field, body)


def main():
    hidden, layers, per_layer = 64, 30, 16  # mm-tiny
    image = png(8, 8)
    clip = wav(tone(1600))
    # wire: every request and reply body
    w = {
        "hello": envelope(10, field(1, 1) + field(2, "synth") + field(3, 1) + field(4, "w1") + field(5, 9)),
        "heartbeat": envelope(11, field(1, 2) + field(2, 1) + field(3, 0)),
        "goodbye": envelope(12, field(1, "bye")),
        "error": envelope(13, field(1, 1) + field(2, "bad")),
        "cancel": envelope(14, b""),
        "ping": envelope(15, field(1, b"abc") + field(2, 1)),
        "pong": envelope(16, field(1, b"abc") + field(2, "w1")),
        "encode_image_bytes": envelope(20, field(1, image)),
        "encode_image_pixels": envelope(20, field(2, tensor(F32, [3, 4, 4], f32([0.5] * 48))) + field(3, 1) + field(4, 2)),
        "encode_image_reply": envelope(21, field(1, tensor(F32, [2, 4], f32([0.1] * 8)))),
        "encode_audio_bytes": envelope(22, field(1, clip)),
        "encode_audio_samples": envelope(22, field(2, tensor(F32, [800], f32(tone(800)))) + field(3, "s1") + field(4, 1)),
        "encode_audio_features": envelope(22, field(5, tensor(F32, [16, 128], f32([0.0] * 2048))) +
                                          field(6, tensor(U8, [16], bytes(16)))),
        "encode_audio_reply": envelope(23, field(1, tensor(F32, [2, 4], f32([0.1] * 8))) + field(2, tensor(U8, [2], b"\0\1")) + field(3, 1)),
        "embed": envelope(24, field(1, tensor(I32, [4], struct.pack("<4i", 2, 105, 3, 9)))),
        "embed_media": envelope(24, field(1, tensor(I32, [3], struct.pack("<3i", 2, 262145, 3))) +
                                field(2, field(1, 1) + field(2, tensor(F32, [1, 2048], f32([0.01] * 2048))))),
        "embed_reply": envelope(25, field(1, tensor(F32, [1, hidden], f32([0.0] * hidden))) +
                                field(2, tensor(F32, [1, layers, per_layer], f32([0.0] * layers * per_layer)))),
        "prefill": envelope(26, field(1, "sess") + field(2, 1) +
                            field(3, tensor(F32, [2, hidden], f32([0.01] * 2 * hidden))) +
                            field(4, tensor(F32, [2, layers, per_layer], f32([0.01] * 2 * layers * per_layer))) +
                            field(5, field(1, 0)) + field(7, 1) + field(8, 32)),
        "decode_step": envelope(27, field(1, "sess") + field(2, tensor(F32, [1, hidden], f32([0.01] * hidden))) +
                                field(3, tensor(F32, [1, layers, per_layer], f32([0.01] * layers * per_layer))) + field(4, 1)),
        "step_reply": envelope(28, field(1, 5) + field(2, 3) + field(3, tensor(F32, [4], f32([0.0] * 4)))),
        "end_session": envelope(29, field(1, "sess")),
        "ack": envelope(30, b""),
        "chat": envelope(31, field(1, field(1, "user") + field(2, "hi") + field(3, image)) + field(3, 4)),
        "token": envelope(32, field(1, 5) + field(2, "hi") + field(3, 1) + field(4, field(5, 3))),
    }
    for name, data in w.items():
        put("wire", name, data)
    # replies, in the order the pipeline asks: image, audio, embed, prefill, steps
    steps = [w["encode_image_reply"], w["encode_audio_reply"], w["embed_reply"], w["step_reply"], w["embed_reply"],
             w["step_reply"]]
    put("wire_replies", "chat", SEP.join(steps))
    put("wire_replies", "errors", SEP.join([w["error"], b"junk", w["ack"]]))
    put("wire_replies", "partial", SEP.join([envelope(21, field(2, b"\0" * 8), partial=True), w["encode_image_reply"]]))
    # the front door: a client's message, then the rogue workers' replies
    put("front_door", "chat-image", SEP.join([w["chat"], w["encode_image_reply"], w["embed_reply"], w["step_reply"],
                                              w["embed_reply"], w["step_reply"]]))
    text_chat = envelope(31, field(1, field(1, "system") + field(2, "Be brief.")) + field(1, field(1, "user") + field(2, "Hi")) +
                         field(2, field(1, 1) + fixed32(2, 0.7) + field(3, 5) + field(6, 9)) + field(3, 3))
    put("front_door", "chat-text", SEP.join([text_chat, w["embed_reply"], w["step_reply"], w["error"]]))
    put("front_door", "not-a-chat", w["embed"])
    # live sessions (LiveRequest = envelope field 33; the harness opens a session for every op but open)
    def live(op, body=b""):
        return envelope(33, field(1, op) + body)
    put("front_door", "live-open", live(1, field(3, "You watch a stream.") + field(4, 2048)))
    put("front_door", "live-frame-rgb", SEP.join([live(2, field(7, tensor(U8, [4, 6, 3], bytes(range(72)))) +
                                                       varint(8 << 3 | 1) + struct.pack("<d", 1.5)),
                                                  w["encode_image_reply"], w["embed_reply"], w["step_reply"]]))
    put("front_door", "live-frame-image", SEP.join([live(2, field(6, image)), w["encode_image_reply"], w["error"]]))
    put("front_door", "live-audio", SEP.join([live(3, field(9, tensor(F32, [800], f32(tone(800)))) + field(10, 1)),
                                              w["encode_audio_reply"], w["embed_reply"], w["step_reply"]]))
    put("front_door", "live-ask", SEP.join([live(4, field(11, "What is it?") + field(12, field(1, 0)) + field(13, 3)),
                                            w["embed_reply"], w["step_reply"], w["embed_reply"], w["step_reply"]]))
    put("front_door", "live-state", live(6))
    put("front_door", "live-close", live(5))
    # config.json
    for file in ("scripts/demo-config.json", "tests/fixtures/mm-tiny/hf-checkpoint/config.json"):
        with open(os.path.join(ROOT, file), "rb") as f:
            put("config", os.path.basename(os.path.dirname(file)) + "-config.json", f.read())
    # safetensors
    def safetensors(tensors, metadata=None):
        header, data = {}, b""
        if metadata:
            header["__metadata__"] = metadata
        for name, dtype, shape, raw in tensors:
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
            data += raw
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + data
    put("safetensors", "three", safetensors([("a", "F32", [2, 2], f32([1, 2, 3, 4])), ("b", "BF16", [3], b"\0\x3f" * 3),
                                             ("c", "I64", [1], struct.pack("<q", 5))], {"format": "pt"}))
    put("safetensors", "scalar", safetensors([("s", "F16", [], b"\0\x3c"), ("e", "U8", [0], b"")]))
    put("safetensors_index", "index.json", json.dumps({"metadata": {"total_size": 44}, "weight_map": {
        "x": "a.safetensors", "y": "b.safetensors", "z": "b.safetensors"}}))
    # tokenizer.json (a tiny BPE, as tests/unit/test_tokenizer.c)
    tiny = {"version": "1.0", "added_tokens": [
        {"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
        {"id": 9, "content": "<x>", "special": False}],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                    {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "vocab": {"<unk>": 0, "<s>": 1, "a": 2, "b": 3, "aa": 4, "ab": 5, "aab": 6, "\u2581": 7, "<0x41>": 8,
                            "<x>": 9, "<0xC3>": 10, "<0xA9>": 11},
                  "merges": [["a", "a"], ["a", "b"], ["aa", "b"]]}}
    put("tokenizer_json", "tiny.json", json.dumps(tiny))
    tiny["normalizer"] = {"type": "Sequence", "normalizers": [tiny["normalizer"]]}
    tiny["model"]["merges"] = ["a a", "a b", "aa b"]
    put("tokenizer_json", "tiny-sequence.json", json.dumps(tiny))
    # tokenizer: mode byte + text, or ids
    put("tokenizer", "text", b"\x00Hello world, how are you?\n\n<start_of_turn>user")
    put("tokenizer", "bos", b"\x02\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80   tabs\there")
    put("tokenizer", "ids", b"\x01" + struct.pack("<6i", 2, 105, 2364, 107, 236743, 239))
    put("tokenizer", "bytes", b"\x03" + struct.pack("<4i", 238, 450, 451, -1))
    # chat template
    put("chat_template", "turns", SEP.join([b"\x00Be brief.", b"\x01Hello \x01 and \x02 please", b"\x02Hi.", b"\x01More"]))
    put("chat_template", "bad-order", SEP.join([b"\x02model first", b"\x04tool"]))
    # HTTP chat bodies
    data_png = "data:image/png;base64," + base64.b64encode(image).decode()
    data_wav = base64.b64encode(clip).decode()
    put("http_chat", "text", json.dumps({"model": "g", "messages": [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "stop": ["\n", "x"],
        "stream": True, "stream_options": {"include_usage": True}, "seed": 3}))
    put("http_chat", "media", json.dumps({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": data_png}},
        {"type": "input_audio", "input_audio": {"data": data_wav, "format": "wav"}},
        {"type": "audio_url", "audio_url": {"url": "file:///tmp/x/clip.wav"}}]},
        {"role": "assistant", "content": "ok"}, {"role": "developer", "content": [{"type": "text", "text": "d"}]}],
        "max_completion_tokens": 4, "top_k": 5, "min_p": 0.1}))
    # multipart upload
    boundary = "XyZ123"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nfr\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\ntext\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + clip + f"\r\n--{boundary}--\r\n".encode()
    put("http_multipart", "upload", f"multipart/form-data; boundary={boundary}".encode() + SEP + form)
    put("http_multipart", "quoted", b'multipart/form-data; boundary="a b"' + SEP +
        b'--a b\r\nContent-Disposition: form-data; name="file"; filename="x.raw"\r\n\r\n\x00\x01\r\n--a b--')
    # live endpoints: action byte, content-type byte, query; then the body
    pcm = struct.pack("<1600h", *[int(v * 20000) for v in tone(1600)])
    put("http_live", "create", b"\x00\x00" + SEP + json.dumps({"system": "Watch.", "context": 2048}).encode())
    put("http_live", "frame-png", b"\x01\x01seconds=1.5" + SEP + image)
    put("http_live", "frame-json", b"\x01\x00" + SEP + json.dumps({"image_url": {"url": data_png}, "seconds": 2}).encode())
    put("http_live", "audio-wav", b"\x02\x02end=1" + SEP + clip)
    put("http_live", "audio-pcm", b"\x02\x03format=s16le" + SEP + pcm)
    put("http_live", "audio-json", b"\x02\x00" + SEP + json.dumps({"input_audio": {"data": data_wav, "format": "wav"},
                                                                     "end": True}).encode())
    put("http_live", "ask", b"\x03\x00" + SEP + json.dumps({"question": "What?", "max_tokens": 2}).encode())
    put("http_live", "ask-stream", b"\x03\x00" + SEP + json.dumps({"question": "Go", "stream": True,
                                                                   "temperature": 0.7, "seed": 1}).encode())
    put("http_live", "get", b"\x04\x04")
    # image bytes
    put("image", "seed-rgb.png", image)
    put("image", "seed-grey-alpha.png", png(5, 3, channels=2))
    put("image", "seed-rgba.png", png(3, 4, channels=4))
    put("image", "seed.bmp", bmp(6, 5))
    put("image", "seed.ppm", b"P6\n4 3\n255\n" + bytes(range(36)))
    # audio bytes
    put("audio", "mono16k.wav", clip)
    put("audio", "stereo44k.wav", wav(tone(882, rate=44100), rate=44100, channels=2))
    put("audio", "float8k.wav", wav(tone(400, rate=8000), rate=8000, bits=32))


if __name__ == "__main__":
    main()
