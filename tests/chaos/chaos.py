#!/usr/bin/env python3
"""Chaos under load (issue 18, item 11): the daemons over TCP on loopback
(g3n-orchestrator with its HTTP API, two workers of every role, the demo
model), several concurrent multimodal chats (an image, an audio clip and text,
greedy) while workers of every role are SIGKILLed (and started again, as a
supervisor would) or SIGSTOPped then SIGCONTed, and the orchestrator is
restarted. Then it checks:
  - every request completed with the same text as an undisturbed run of the
    same prompt (greedy: the same tokens), or got a clear error (an HTTP error
    with a message, or a refused/reset connection while the orchestrator was
    down) within BOUND_SECONDS; none hung (each client has a hard timeout);
  - the daemons recover by themselves: once the faults stop, /health is ok
    with every worker back within RECOVERY_SECONDS, and a request per prompt
    completes with the undisturbed text;
  - each daemon's resident memory and open fds are back near their idle level
    (after the undisturbed run), within a margin.
It prints its counts (requests, completed, failed with error, hung) and exits
non-zero on any failed check. Standard library only. Whole run: about 2 min.

Usage: chaos.py BUILD_DIR [--seconds N] [--clients N] [--zmq-clients N] [--seed N] [--keep-logs]
(--zmq-clients: chats through the ZeroMQ front door, `g3n run --connect`, as well.)
"""
import argparse
import base64
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG = os.path.join(ROOT, "scripts", "demo-config.json")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "tokenizer.json")
ROLES = ["vision-encoder", "audio-encoder", "embedder", "decoder"]
WORKERS_PER_ROLE = 2
# Flags every daemon and client gets for plain tcp:// on loopback (CurveZMQ keys are the
# default since issue 17; one place to change).
TRANSPORT_FLAGS = ["--insecure"]
HEARTBEAT = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "1000"]
BOUND_SECONDS = 60          # every request is answered (text or error) within this
RECOVERY_SECONDS = 30       # the daemons are back this long after the last fault
MAX_TOKENS = 6
PROMPTS = ["Describe the image.", "Transcribe the audio.", "What do you see and hear?"]
RSS_MARGIN = (1.30, 48 << 10)   # back to at most idle x 1.30 + 48 MiB (kB units)
FD_MARGIN = 8                   # back to at most idle + 8 open fds


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message):
    print(f"chaos: [{time.monotonic() - START:6.1f} s] {message}", flush=True)


START = time.monotonic()


class Daemon:
    """One daemon process in a slot (its role and index); restarting keeps the slot."""

    def __init__(self, slot, argv, logs):
        self.slot, self.argv, self.logs = slot, argv, logs
        self.proc = None
        self.generation = 0
        self.stopped = False

    def start(self):
        self.generation += 1
        path = os.path.join(self.logs, f"{self.slot}.{self.generation}.log")
        argv = [a.replace("{gen}", str(self.generation)) for a in self.argv]
        self.proc = subprocess.Popen(argv, stdout=open(path, "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
        self.stopped = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False
        elif sig == signal.SIGKILL and self.proc is not None:
            self.proc.wait()

    def terminate(self):
        if not self.alive():
            return True
        if self.stopped:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False

    def usage(self):
        """(resident kB, open fds) of the live process."""
        pid = self.proc.pid
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return rss, len(os.listdir(f"/proc/{pid}/fd"))


def clip(path, seconds):
    """The first seconds of a WAV file, as a WAV file (short requests: more of them meet the faults)."""
    with wave.open(path, "rb") as w:
        params = w.getparams()
        frames = w.readframes(int(seconds * w.getframerate()))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
    return out.getvalue()


def request_body(prompt, image, audio):
    return json.dumps({
        "model": "gemma-3n",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + image}},
            {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
            {"type": "text", "text": prompt}]}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }).encode()


def chat(port, body, bound):
    """('completed', text) | ('error', what) | ('hung', what), and the seconds it took."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=bound)
    try:
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        elapsed = time.monotonic() - t0
        if elapsed > bound:
            return "hung", f"answered after {elapsed:.1f} s (bound {bound} s)", elapsed
        try:
            obj = json.loads(data)
        except ValueError:
            return "unclear", f"HTTP {response.status} with a body that is not JSON: {data[:200]!r}", elapsed
        if response.status == 200:
            return "completed", obj["choices"][0]["message"]["content"], elapsed
        message = obj.get("error", {}).get("message") if isinstance(obj, dict) else None
        if response.status >= 400 and message:
            return "error", f"HTTP {response.status}: {message}", elapsed
        return "unclear", f"HTTP {response.status} without an error message: {data[:200]!r}", elapsed
    except socket.timeout:
        return "hung", f"no answer within {bound} s", time.monotonic() - t0
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        # the orchestrator was killed or restarting: refused or reset, at once
        return "error", f"connection: {type(e).__name__}: {e}", time.monotonic() - t0
    finally:
        conn.close()


def run_connect(g3n, front, prompt, image_path, audio_path, bound):
    """The same chat through the ZeroMQ front door (`g3n run --connect`), with a hard timeout."""
    t0 = time.monotonic()
    argv = [g3n, "run", "--connect", front, "--image", image_path, "--audio", audio_path, "--max-new-tokens",
            str(MAX_TOKENS), *TRANSPORT_FLAGS, prompt]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=bound, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "hung", f"g3n run --connect: no answer within {bound} s", time.monotonic() - t0
    elapsed = time.monotonic() - t0
    if done.returncode == 0:
        return "completed", done.stdout.decode(errors="replace").rstrip("\n"), elapsed
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    if lines:
        return "error", f"g3n run --connect: {lines[-1]}", elapsed
    return "unclear", f"g3n run --connect: exit {done.returncode} without a message", elapsed


def health(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/health")
        response = conn.getresponse()
        obj = json.loads(response.read())
        conn.close()
        return response.status, obj
    except (OSError, ValueError, http.client.HTTPException):
        return 0, {}


def wait_ready(port, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, obj = health(port)
        workers = obj.get("workers", {})
        if status == 200 and all(workers.get(r, 0) >= WORKERS_PER_ROLE for r in ROLES):
            return True
        time.sleep(0.2)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", help="folder of the g3n-* daemons (build/release)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the fault phase (default 60)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent chat clients (default 4)")
    parser.add_argument("--zmq-clients", type=int, default=2,
                        help="more clients through the ZeroMQ front door (g3n run --connect; default 2)")
    parser.add_argument("--g3n", default=None, help="the g3n program (default BUILD/orchestrator/g3n)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log(f"seed {args.seed} (--seed {args.seed} repeats the same faults)")
    with open(os.path.join(ROOT, "assets", "demo-image.jpg"), "rb") as f:
        image = base64.b64encode(f.read()).decode()
    audio = base64.b64encode(clip(os.path.join(ROOT, "assets", "demo-speech.wav"), 2.0)).decode()
    bodies = [request_body(p, image, audio) for p in PROMPTS]

    logs = tempfile.mkdtemp(prefix="g3n-chaos-")
    image_path, audio_path = os.path.join(ROOT, "assets", "demo-image.jpg"), os.path.join(logs, "clip.wav")
    with open(audio_path, "wb") as f:
        f.write(base64.b64decode(audio))
    g3n = args.g3n or os.path.join(args.build, "orchestrator", "g3n")
    broker, front, http_port = free_port(), free_port(), free_port()
    endpoint = f"tcp://127.0.0.1:{broker}"
    orchestrator = Daemon("orchestrator", [
        os.path.join(args.build, "g3n-orchestrator"), "--config", CONFIG, "--tokenizer", TOKENIZER,
        "--bind", endpoint, "--listen", f"tcp://127.0.0.1:{front}", "--http", str(http_port),
        "--http-max-sessions", str(args.clients), "--model-name", "gemma-3n", "--no-worker-wait-ms", "5000",
        # kept sessions (prefix reuse) hold decoder memory on purpose: off here, so that the memory check
        # after the faults measures leaks, not the cache (test_sessions and pipeline_session_reuse cover it)
        "--no-prefix-cache", *HEARTBEAT, *TRANSPORT_FLAGS], logs)
    workers = []
    for role in ROLES:
        for i in range(WORKERS_PER_ROLE):
            workers.append(Daemon(f"{role}-{i}", [
                os.path.join(args.build, f"g3n-{role}"), "--synth", CONFIG + ":1", "--connect", endpoint,
                "--name", f"{role}-{i}-{{gen}}", "--threads", "1", *HEARTBEAT, *TRANSPORT_FLAGS], logs))
    daemons = [orchestrator] + workers
    failures = []
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # nine OpenMP processes share the cores
    try:
        for d in daemons:
            d.start()
        if not wait_ready(http_port, 60):
            raise SystemExit(f"chaos: the daemons did not become ready (logs in {logs})")

        # 1. the undisturbed run: each prompt's text, and the daemons' idle levels after it
        expected = {}
        for index, body in enumerate(bodies):
            kind, text, seconds = chat(http_port, body, BOUND_SECONDS)
            if kind != "completed":
                raise SystemExit(f"chaos: the undisturbed run of prompt {index} failed: {text}")
            expected[index] = text
            log(f"undisturbed: prompt {index} -> {text!r} ({seconds:.1f} s)")
        time.sleep(1.0)
        idle = {d.slot: d.usage() for d in daemons}
        # workers of a role run the same model: the role's idle level is its larger one (which
        # worker served the undisturbed requests is the broker's choice)
        for role in ROLES:
            slots = [w.slot for w in workers if w.slot.startswith(role)]
            level = (max(idle[s][0] for s in slots), max(idle[s][1] for s in slots))
            for s in slots:
                idle[s] = level

        # 2. faults while clients chat
        counts = {"requests": 0, "completed": 0, "failed-with-error": 0, "hung": 0, "wrong": 0, "unclear": 0}
        errors = {}
        latencies = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(number):
            crng = random.Random(args.seed * 100 + number)
            while not stop.is_set():
                index = crng.randrange(len(bodies))
                if number < args.clients:
                    kind, text, seconds = chat(http_port, bodies[index], BOUND_SECONDS)
                else:
                    kind, text, seconds = run_connect(g3n, f"tcp://127.0.0.1:{front}", PROMPTS[index], image_path,
                                                      audio_path, BOUND_SECONDS)
                with lock:
                    counts["requests"] += 1
                    if kind == "completed" and text != expected[index]:
                        kind = "wrong"
                        failures.append(f"client {number}: prompt {index} gave {text!r}, undisturbed {expected[index]!r}")
                    elif kind == "hung":
                        failures.append(f"client {number}: prompt {index} hung: {text}")
                    elif kind == "unclear":
                        failures.append(f"client {number}: prompt {index}: {text}")
                    key = {"completed": "completed", "error": "failed-with-error"}.get(kind, kind)
                    counts[key] += 1
                    if kind == "error":
                        short = text.split(" (")[0][:90]
                        errors[short] = errors.get(short, 0) + 1
                with lock:
                    latencies.append(seconds)
                if kind == "error" and seconds < 0.5:
                    time.sleep(1.0)  # the orchestrator is down: do not spin

        threads = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in range(args.clients + args.zmq_clients)]
        for t in threads:
            t.start()
        pending = []  # (time, action, daemon)
        # every role gets a kill and a stop; the orchestrator two restarts; the rest at random
        plan = []
        for role in ROLES:
            plan.append(("kill", rng.choice([w for w in workers if w.slot.startswith(role)])))
            plan.append(("stop", rng.choice([w for w in workers if w.slot.startswith(role)])))
        plan += [("restart", orchestrator), ("restart", orchestrator)]
        rng.shuffle(plan)
        faults = {"kill": 0, "stop": 0, "restart": 0}
        t_end = time.monotonic() + args.seconds
        next_fault = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            now = time.monotonic()
            for item in [p for p in pending if p[0] <= now]:
                pending.remove(item)
                _, action, d = item
                if action == "start" and not d.alive():
                    d.start()
                elif action == "cont":
                    d.signal(signal.SIGCONT)
            if now >= next_fault:
                action, d = plan.pop() if plan else (rng.choice(["kill", "stop", "stop"]), rng.choice(workers))
                busy = any(p[2] is d for p in pending)
                if not busy and d.alive():
                    faults[action] += 1
                    if action == "kill":
                        d.signal(signal.SIGKILL)
                        pending.append((now + rng.uniform(0.5, 3.0), "start", d))
                        log(f"SIGKILL {d.slot}")
                    elif action == "stop":
                        d.signal(signal.SIGSTOP)
                        pause = rng.uniform(0.3, 4.0)
                        pending.append((now + pause, "cont", d))
                        log(f"SIGSTOP {d.slot} for {pause:.1f} s")
                    else:
                        how = rng.choice([signal.SIGKILL, signal.SIGTERM])
                        if how == signal.SIGTERM:
                            d.terminate()
                        else:
                            d.signal(signal.SIGKILL)
                        d.start()
                        log(f"orchestrator restarted ({signal.Signals(how).name})")
                next_fault = now + rng.uniform(2.0, 4.0)
            time.sleep(0.05)
        # the faults stop: everything continues or starts again
        for _, action, d in pending:
            if action == "start" and not d.alive():
                d.start()
            elif action == "cont":
                d.signal(signal.SIGCONT)
        fault_end = time.monotonic()
        stop.set()
        for t in threads:
            t.join(BOUND_SECONDS + 10)
            if t.is_alive():
                failures.append("a client thread did not return (hung past its hard timeout)")
        log(f"faults: {faults['kill']} SIGKILL, {faults['stop']} SIGSTOP/SIGCONT, {faults['restart']} orchestrator restarts")

        # 3. recovery by themselves: ready again, and every prompt gives its undisturbed text
        if not wait_ready(http_port, max(1.0, RECOVERY_SECONDS - (time.monotonic() - fault_end))):
            failures.append(f"not ready {RECOVERY_SECONDS} s after the last fault: /health says {health(http_port)}")
        else:
            log(f"ready again {time.monotonic() - fault_end:.1f} s after the last fault")
            for index, body in enumerate(bodies):
                kind, text, seconds = chat(http_port, body, BOUND_SECONDS)
                if kind != "completed" or text != expected[index]:
                    failures.append(f"after recovery, prompt {index}: {kind} {text!r} (undisturbed {expected[index]!r})")
                else:
                    log(f"after recovery: prompt {index} -> same text ({seconds:.1f} s)")

        # 4. memory and fds back near the idle level (per slot: a restarted daemon against its slot's idle)
        time.sleep(1.5)
        for d in daemons:
            if not d.alive():
                failures.append(f"{d.slot} is not running at the end (exit {d.proc.returncode})")
                continue
            rss, fds = d.usage()
            rss0, fds0 = idle[d.slot]
            if rss > rss0 * RSS_MARGIN[0] + RSS_MARGIN[1] or fds > fds0 + FD_MARGIN:
                failures.append(f"{d.slot}: RSS {rss0 >> 10} -> {rss >> 10} MiB, fds {fds0} -> {fds} "
                                f"(margin x{RSS_MARGIN[0]} + {RSS_MARGIN[1] >> 10} MiB, +{FD_MARGIN} fds)")
            else:
                log(f"{d.slot}: RSS {rss0 >> 10} -> {rss >> 10} MiB, fds {fds0} -> {fds}"
                    f"{'' if d.generation == 1 else f' (restarted {d.generation - 1}x)'}")

        print(f"chaos: answers (text or error) within {max(latencies or [0]):.1f} s (bound {BOUND_SECONDS} s)")
        print("chaos: requests %d, completed %d, failed-with-error %d, hung %d, wrong %d, unclear %d" % (
            counts["requests"], counts["completed"], counts["failed-with-error"], counts["hung"], counts["wrong"],
            counts["unclear"]))
        for what, n in sorted(errors.items(), key=lambda e: -e[1]):
            print(f"chaos:   {n} x {what}")
        if counts["completed"] == 0:
            failures.append("no request completed during the faults")
    finally:
        for d in daemons:
            if not d.terminate():
                failures.append(f"{d.slot} did not stop on SIGTERM within 10 s")
    if failures:
        for f in failures:
            print(f"chaos: FAILED: {f}")
        print(f"chaos: the daemons' logs are in {logs}")
        return 1
    print("chaos: ok")
    if not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
