#!/usr/bin/env bash
# compose.yaml must be a valid Compose file that runs the five roles with the
# right commands: checked with `docker compose config` / Debian's
# `docker-compose config` when one is installed (no container engine needs to
# run), and structurally with Python's yaml module otherwise. The Dockerfile
# must name every daemon it copies. Exit 77 (skip) only when neither checker exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
export G3N_MODEL_DIR=/tmp/g3n-model
checked=""
if docker compose version >/dev/null 2>&1; then
  docker compose -f compose.yaml config -q && checked="docker compose config"
elif command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f compose.yaml config -q && checked="docker-compose config"
fi
if python3 -c 'import yaml' 2>/dev/null; then
  python3 - <<'PY'
import yaml
doc = yaml.safe_load(open("compose.yaml"))
services = doc["services"]
want = {"orchestrator": "g3n-orchestrator", "embedder": "g3n-embedder", "decoder": "g3n-decoder",
        "vision-encoder": "g3n-vision-encoder", "audio-encoder": "g3n-audio-encoder"}
assert set(services) == set(want), f"services {sorted(services)}"
for name, binary in want.items():
    s = services[name]
    assert s["image"] == "g3n:latest", name
    assert s["command"][0] == binary, (name, s["command"])
    assert "--model" in s["command"], name
    assert any(v.endswith(":/model:ro") for v in s["volumes"]), f"{name}: model folder must be mounted read-only"
    assert any(v.endswith(":/keys:ro") for v in s["volumes"]), f"{name}: keys folder must be mounted read-only"
    if name != "orchestrator":
        assert s["command"][s["command"].index("--connect") + 1] == "tcp://orchestrator:5555", name
        assert s["command"][s["command"].index("--key") + 1] == f"/keys/secrets/{name}.key_secret", name
        assert s["command"][s["command"].index("--server-key") + 1] == "/keys/server.key", name
        assert "--insecure" not in s["command"], name
    health = s["command"][s["command"].index("--health-file") + 1]
    assert s["healthcheck"]["test"] == ["CMD", binary, "--probe", "ready", "--health-file", health], name
for name in ("vision-encoder", "audio-encoder"):
    assert services[name]["deploy"]["replicas"] >= 2, f"{name}: encoders run with replicas"
decoder = services["decoder"]
cache = decoder["command"][decoder["command"].index("--weight-cache") + 1]
assert any(v.endswith(":" + cache.rsplit("/", 1)[0]) for v in decoder["volumes"]), \
    "decoder: its weight cache must be on a writable volume (the model folder is read-only)"
assert cache.startswith("/cache/") and "g3n-cache" in doc.get("volumes", {}), "decoder: a named cache volume"
orch = services["orchestrator"]["command"]
assert orch[orch.index("--bind") + 1].endswith(":5555") and orch[orch.index("--listen") + 1].endswith(":5556")
assert orch[orch.index("--keys") + 1] == "/keys" and "--insecure" not in orch, "CurveZMQ on the orchestrator"
print("compose.yaml: five services, encoders with replicas, model read-only: ok")
PY
  checked="${checked:+$checked + }python yaml structure"
fi
[ -n "$checked" ] || { echo "compose test skipped: neither docker compose, docker-compose nor python3-yaml is installed"; exit 77; }
grep -q "^FROM debian:12" Dockerfile
grep -q "scripts/setup.sh" Dockerfile
grep -q "g3n-\*" Dockerfile
echo "compose.yaml and Dockerfile checked ($checked)"
