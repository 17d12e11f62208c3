#!/usr/bin/env bash
# deploy/kubernetes must render with kustomize (kubectl kustomize; no cluster
# needed) and the rendered objects must fit the daemons: every container's
# command line is accepted by its binary (--check-args), the probes run that
# binary's --probe on the --health-file it writes, the Services' ports are the
# ports the orchestrator binds, the workers connect to that Service, rolling
# updates never take a worker away before its replacement is ready, the grace
# period leaves room for the drain, and the autoscalers and disruption budgets
# point at real Deployments.
# Usage: kubernetes_manifests.sh BUILD_DIR
set -euo pipefail
build=$1
cd "$(dirname "$0")/../.."
command -v kubectl >/dev/null || { echo "FAIL: kubectl not found (scripts/setup.sh installs it)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for variant in base overlays/example; do
  kubectl kustomize "deploy/kubernetes/$variant" >"$work/rendered.yaml" 2>"$work/kustomize.log" ||
    { cat "$work/kustomize.log"; exit 1; }
  BUILD="$build" VARIANT="$variant" python3 - "$work/rendered.yaml" <<'PY'
import os, subprocess, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
build, variant = os.environ["BUILD"], os.environ["VARIANT"]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
roles = {"g3n-orchestrator", "g3n-embedder", "g3n-decoder", "g3n-vision-encoder", "g3n-audio-encoder"}
assert set(deployments) == roles, sorted(deployments)
def arg(command, flag):
    assert flag in command, f"{command[0]}: no {flag}"
    return command[command.index(flag) + 1]
services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
claims = {c["metadata"]["name"] for c in by_kind.get("PersistentVolumeClaim", [])}
checked = 0
for name, dep in deployments.items():
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(dep["spec"]["selector"]["matchLabels"][k] == labels[k] for k in dep["spec"]["selector"]["matchLabels"])
    for c in pod["containers"]:
        command = c["command"]
        binary = command[0]
        assert binary == name, (name, binary)
        local = os.path.join(build, binary)
        r = subprocess.run([local] + command[1:] + ["--check-args"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{name}: {binary} refuses its arguments: {r.stderr.strip()}"
        health = arg(command, "--health-file")
        probes = [("readinessProbe", "ready"), ("livenessProbe", "live")]
        if name != "g3n-orchestrator":
            probes.append(("startupProbe", "ready"))
        for probe, want in probes:
            p = c[probe]["exec"]["command"]
            assert p == [binary, "--probe", want, "--health-file", health], (name, probe, p)
            # the binary takes that probe (no daemon writes the file here: it must say not live/ready)
            r = subprocess.run([local] + p[1:], capture_output=True, text=True, timeout=30)
            assert r.returncode == 1 and "no health file" in r.stderr, (name, probe, r.returncode, r.stderr)
        assert c["resources"]["requests"]["memory"] and c["resources"]["requests"]["cpu"], name
        assert c["resources"]["limits"]["memory"], name
        for m in c.get("volumeMounts", []):
            vol = next(v for v in pod["volumes"] if v["name"] == m["name"])
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims, (name, vol)
                assert m.get("readOnly"), f"{name}: the model folder must be mounted read-only"
        if name == "g3n-orchestrator":
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert int(arg(command, "--bind").rsplit(":", 1)[1]) == ports["workers"]
            assert int(arg(command, "--listen").rsplit(":", 1)[1]) == ports["clients"]
            assert int(arg(command, "--http")) == ports["http"]
            svc = services["g3n-orchestrator"]
            assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selects the pod"
            for sp in svc["spec"]["ports"]:
                assert sp["targetPort"] in ports and ports[sp["targetPort"]] == sp["port"], sp
        else:
            svc_port = next(p["port"] for p in services["g3n-orchestrator"]["spec"]["ports"] if p["name"] == "workers")
            assert arg(command, "--connect") == f"tcp://g3n-orchestrator:{svc_port}", (name, command)
            strategy = dep["spec"]["strategy"]
            assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0, name
            drain = int(arg(command, "--drain-timeout-s"))
            assert pod["terminationGracePeriodSeconds"] > drain, f"{name}: grace period shorter than the drain"
        checked += 1
for hpa in by_kind["HorizontalPodAutoscaler"]:
    ref = hpa["spec"]["scaleTargetRef"]
    assert ref["kind"] == "Deployment" and ref["name"] in deployments, ref
assert {h["spec"]["scaleTargetRef"]["name"] for h in by_kind["HorizontalPodAutoscaler"]} >= {"g3n-vision-encoder", "g3n-audio-encoder"}
for pdb in by_kind["PodDisruptionBudget"]:
    sel = pdb["spec"]["selector"]["matchLabels"]
    assert any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
               for d in deployments.values()), pdb["metadata"]["name"]
print(f"{variant}: {len(docs)} objects, {checked} containers accepted by their binaries, probes, ports, "
      f"autoscalers and budgets consistent")
PY
done
