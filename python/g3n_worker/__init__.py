"""g3n_worker: a g3n worker in Python, around your own function.

The wire protocol (proto/g3n.proto, proto/README.md) is the contract between
g3n's orchestrator and its workers, so a worker need not be g3n's C daemon:
this package speaks the worker side (Hello, heartbeats both ways, requests,
replies, errors, Ping, Cancel, a graceful drain on SIGTERM, CurveZMQ keys) and
calls your function for each request of its role. For example, a vision
encoder on a GPU:

    from g3n_worker import Worker, WorkerError, pb

    def encode(request, worker):              # request: pb.EncodeImageRequest
        tokens = my_tower(request.image)       # [soft_tokens, vision_hidden] float32
        return pb.EncodeImageReply(tokens=worker.tensor_f32(tokens_bytes, [256, 2048]))

    Worker(role="vision-encoder", endpoint="tcp://orchestrator:5555",
           handler=encode).run()

Needs pyzmq and protobuf (Debian: python3-zmq python3-protobuf) and the
generated g3n_pb2 module: `protoc --python_out=DIR proto/g3n.proto` with DIR on
sys.path, or protoc on PATH (Debian: protobuf-compiler), in which case it is
generated on first import from the repository's proto/g3n.proto (or the file
named by G3N_PROTO).
"""
import importlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import queue
from concurrent.futures import ThreadPoolExecutor

import zmq

PROTOCOL_VERSION = 2  # common/net/wire.h G3N_PROTOCOL_VERSION


def _load_pb2():
    try:
        return importlib.import_module("g3n_pb2")
    except ImportError:
        pass
    proto = os.environ.get("G3N_PROTO") or os.path.join(os.path.dirname(__file__), "..", "..", "proto", "g3n.proto")
    proto = os.path.abspath(proto)
    if not os.path.exists(proto):
        raise ImportError("g3n_pb2 not found and no proto/g3n.proto to generate it from (set G3N_PROTO)")
    out = os.path.join(tempfile.gettempdir(), "g3n_pb2-%d" % os.getuid())
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "--python_out=" + out, "-I" + os.path.dirname(proto), proto], check=True)
    sys.path.insert(0, out)
    return importlib.import_module("g3n_pb2")


pb = _load_pb2()

ROLES = {"vision-encoder": pb.ROLE_VISION_ENCODER, "audio-encoder": pb.ROLE_AUDIO_ENCODER,
         "embedder": pb.ROLE_EMBEDDER, "decoder": pb.ROLE_DECODER}
# the request body each role serves, and the reply body it answers with
REQUEST_BODY = {pb.ROLE_VISION_ENCODER: "encode_image", pb.ROLE_AUDIO_ENCODER: "encode_audio",
                pb.ROLE_EMBEDDER: "embed", pb.ROLE_DECODER: None}
REPLY_BODY = {"EncodeImageReply": "encode_image_reply", "EncodeAudioReply": "encode_audio_reply",
              "EmbedReply": "embed_reply", "StepReply": "step_reply", "Ack": "ack"}


class WorkerError(Exception):
    """Raise from a handler to answer an Error: code is a pb.ERROR_* value."""

    def __init__(self, message, code=pb.ERROR_BAD_REQUEST):
        super().__init__(message)
        self.code = code


class Worker:
    """One worker: connect(), then run() until SIGTERM/SIGINT (drains) or stop()."""

    def __init__(self, role, endpoint, handler, name=None, model_id="python", capacity=1,
                 heartbeat_ms=1000, heartbeat_timeout_ms=5000, max_message_bytes=512 << 20,
                 drain_timeout_s=30.0, server_public_key=None, public_key=None, secret_key=None, log=None):
        if role not in ROLES:
            raise ValueError("role must be one of %s" % ", ".join(sorted(ROLES)))
        self.role_name, self.role = role, ROLES[role]
        self.endpoint, self.handler = endpoint, handler
        self.name = name or "%s-%s-py%d" % (role, socket.gethostname()[:24], os.getpid())
        self.model_id, self.capacity = model_id, max(1, int(capacity))
        self.heartbeat_ms, self.heartbeat_timeout_ms = heartbeat_ms, heartbeat_timeout_ms
        self.max_message_bytes, self.drain_timeout_s = max_message_bytes, drain_timeout_s
        # CurveZMQ: the orchestrator's public key and this worker's key pair (Z85 text)
        self.curve = (server_public_key, public_key, secret_key) if server_public_key else None
        self.log = log or (lambda text: print("g3n_worker %s: %s" % (self.name, text), file=sys.stderr, flush=True))
        self.incarnation = random.getrandbits(64)
        self.context = zmq.Context.instance()
        self.socket = None
        self.replies = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=self.capacity)
        self.running = {}  # request id -> cancelled flag (threading.Event)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.draining = False
        self.drain_acknowledged = False
        self.broker_seen = 0.0
        self.served = 0

    # ---- tensors
    @staticmethod
    def tensor_f32(data, shape):
        """A float32 pb.Tensor from little-endian bytes (or an array('f') / buffer) and a shape."""
        data = bytes(data)
        numel = 1
        for s in shape:
            numel *= s
        if len(data) != numel * 4:
            raise ValueError("tensor of shape %s needs %d bytes, got %d" % (shape, numel * 4, len(data)))
        return pb.Tensor(dtype=pb.DTYPE_F32, shape=list(shape), data=data)

    # ---- the socket
    def _envelope(self, request_id=0, partial=False, **body):
        return pb.Envelope(protocol_version=PROTOCOL_VERSION, request_id=request_id, partial=partial, **body)

    def _send(self, envelope):
        data = envelope.SerializeToString()
        if len(data) > self.max_message_bytes:
            raise WorkerError("reply of %d bytes is over the message limit" % len(data), pb.ERROR_TOO_LARGE)
        self.socket.send(data, zmq.DONTWAIT)

    def _connect(self):
        s = self.context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 500)
        s.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes + 4096)
        s.setsockopt(zmq.ROUTING_ID, self.name.encode())
        if self.curve:
            s.curve_serverkey = self.curve[0].encode()
            s.curve_publickey = self.curve[1].encode()
            s.curve_secretkey = self.curve[2].encode()
        s.connect(self.endpoint)
        self.socket = s
        self._send(self._envelope(hello=pb.Hello(role=self.role, model_id=self.model_id, capacity=self.capacity,
                                                 name=self.name, incarnation=self.incarnation)))
        self.broker_seen = time.monotonic()

    def _heartbeat(self):
        with self.lock:
            outstanding = len(self.running)
        self._send(self._envelope(heartbeat=pb.Heartbeat(role=self.role, capacity=self.capacity,
                                                         outstanding=outstanding, draining=self.draining)))

    def _error(self, request_id, code, message):
        return self._envelope(request_id, error=pb.Error(code=code, message=message))

    # ---- requests
    def _run_request(self, envelope, cancelled):
        body = envelope.WhichOneof("body")
        try:
            if body == "ping":
                if envelope.ping.delay_ms:
                    cancelled.wait(min(envelope.ping.delay_ms, 600000) / 1000.0)
                reply = self._envelope(envelope.request_id, pong=pb.Pong(payload=envelope.ping.payload,
                                                                          worker=self.name))
            elif body != REQUEST_BODY[self.role]:
                reply = self._error(envelope.request_id, pb.ERROR_UNSUPPORTED,
                                    "this %s worker does not serve %s" % (self.role_name, body))
            else:
                result = self.handler(getattr(envelope, body), self)
                field = REPLY_BODY.get(type(result).__name__)
                if field is None:
                    raise TypeError("the handler returned %r, not a reply message" % type(result).__name__)
                reply = self._envelope(envelope.request_id, **{field: result})
        except WorkerError as e:
            reply = self._error(envelope.request_id, e.code, str(e))
        except Exception as e:  # the handler failed: the client gets ERROR_INTERNAL with the reason
            reply = self._error(envelope.request_id, pb.ERROR_INTERNAL, "%s: %s" % (type(e).__name__, e))
        if cancelled.is_set() and body != "ping":
            reply = self._error(envelope.request_id, pb.ERROR_CANCELLED, "cancelled")
        self.replies.put((envelope.request_id, reply))

    def _on_message(self):
        frames = self.socket.recv_multipart()
        self.broker_seen = time.monotonic()
        if len(frames) != 2:
            self.log("a message of %d frames from the broker was dropped" % len(frames))
            return
        frame_id = int.from_bytes(frames[0], "little") if len(frames[0]) == 8 else 0
        envelope = pb.Envelope()
        try:
            envelope.ParseFromString(frames[1])
        except Exception as e:
            self._send(self._error(frame_id, pb.ERROR_BAD_REQUEST, "malformed envelope: %s" % e))
            return
        if envelope.protocol_version != PROTOCOL_VERSION:
            self._send(self._error(envelope.request_id or frame_id, pb.ERROR_VERSION_MISMATCH,
                                   "protocol_version %d, this worker speaks %d" % (envelope.protocol_version,
                                                                                   PROTOCOL_VERSION)))
            return
        body = envelope.WhichOneof("body")
        if body == "heartbeat":
            if envelope.heartbeat.draining and self.draining:
                self.drain_acknowledged = True
            return
        if body == "cancel":
            with self.lock:
                flag = self.running.get(envelope.request_id)
            if flag:
                flag.set()
            return
        if body in ("hello", "goodbye", "error", None):
            return
        if frame_id and envelope.request_id != frame_id:
            self._send(self._error(frame_id, pb.ERROR_BAD_REQUEST, "request_id does not match its routing frame"))
            return
        cancelled = threading.Event()
        with self.lock:
            self.running[envelope.request_id] = cancelled
        self.pool.submit(self._run_request, envelope, cancelled)

    def _flush_replies(self):
        while True:
            try:
                request_id, reply = self.replies.get_nowait()
            except queue.Empty:
                return
            try:
                self._send(reply)
            except WorkerError as e:
                self._send(self._error(request_id, e.code, str(e)))
            with self.lock:
                self.running.pop(request_id, None)
            self.served += 1

    # ---- life cycle
    def stop(self):
        """Ends run() at once (no drain); safe from any thread."""
        self.stopping.set()

    def drain(self):
        """Starts a graceful drain: run() returns once the held requests are done."""
        self.draining = True

    def run(self, install_signals=True):
        """Serves until stop(), or until a drain (SIGTERM/SIGINT; a second one stops at once) completes.
        Returns 0 after a complete drain or stop, 1 when the drain timed out."""
        if install_signals:
            def on_signal(signum, frame):
                if self.draining:
                    self.stop()
                self.drain()
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        self._connect()
        self.log("serving %s for %s" % (self.role_name, self.endpoint))
        last_sent = time.monotonic()
        drain_started = None
        status = 0
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stopping.is_set():
            events = dict(poller.poll(10))
            if self.socket in events:
                for _ in range(64):
                    self._on_message()
                    if not self.socket.poll(0):
                        break
            self._flush_replies()
            now = time.monotonic()
            if self.draining and drain_started is None:
                drain_started = now
                self.log("draining: no new requests; finishing those held")
                last_sent = 0  # tell the broker now
            if now - last_sent >= self.heartbeat_ms / 1000.0:
                self._heartbeat()
                last_sent = now
            if drain_started is not None:
                silent = now - self.broker_seen > self.heartbeat_timeout_ms / 1000.0
                with self.lock:
                    held = len(self.running)
                if (self.drain_acknowledged or silent) and held == 0 and self.replies.empty():
                    break
                if now - drain_started > self.drain_timeout_s:
                    self.log("drain timed out with %d request(s) held" % held)
                    status = 1
                    break
            elif now - self.broker_seen > self.heartbeat_timeout_ms / 1000.0:
                self.log("broker at %s silent: reconnecting" % self.endpoint)
                poller.unregister(self.socket)
                self.socket.close(0)
                self._connect()
                poller.register(self.socket, zmq.POLLIN)
        self._send(self._envelope(goodbye=pb.Goodbye(reason="worker stopping")))
        self.socket.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.log("stopped (%d requests served)" % self.served)
        return status
