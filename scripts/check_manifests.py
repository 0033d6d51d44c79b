#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests (and docker-compose.yml) beyond their schemas.

- every DEVICEHUB__ name they set is a setting of config/default.toml (set or commented out);
- every devicehub container has liveness /healthz and readiness /readyz probes, resources, a
  read-only root filesystem and no privilege escalation, and every pod runs as non-root;
- the optional Mosquitto component ships config/mosquitto's files unchanged;
- an Ingress publishes the console and the API, never /metrics or the probes;
- docker compose publishes only devicehub's HTTP and MQTT over TLS beyond loopback.

Usage: check_manifests.py RENDERED.yaml...
"""
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
errors = []


def settings():
    """DEVICEHUB__SECTION__KEY names of config/default.toml, commented-out keys included."""
    names, section = set(), []
    for line in (ROOT / "config/default.toml").read_text().splitlines():
        if m := re.match(r"^\[([\w.]+)\]\s*$", line):
            section = m.group(1).split(".")
        elif m := re.match(r"^#?\s?([a-z_][a-z0-9_]*)\s*=", line):
            names.add("DEVICEHUB__" + "__".join(p.upper() for p in section + [m.group(1)]))
    # Keys before the first section are top-level (roles, shutdown_grace_secs).
    return names


KNOWN = settings()


def check_names(where, text):
    for name in sorted(set(re.findall(r"DEVICEHUB__[A-Z0-9_]+", text))):
        if name not in KNOWN:
            errors.append(f"{where}: {name} is not a setting in config/default.toml")


def containers(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec, spec.get("containers", [])


def check_workload(where, doc):
    pod, cs = containers(doc)
    name = f"{where}: {doc['kind']}/{doc['metadata']['name']}"
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        errors.append(f"{name}: the pod does not run as non-root")
    for c in cs:
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{name}/{c['name']}: not read-only or may escalate privileges")
        if not c.get("resources", {}).get("requests"):
            errors.append(f"{name}/{c['name']}: no resource requests")
        if c.get("image", "").split(":")[0].endswith("devicehub"):
            live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
            ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
            if (live, ready) != ("/healthz", "/readyz"):
                errors.append(f"{name}: probes are {live}, {ready}, not /healthz, /readyz")
            roles = [e.get("value") for e in c.get("env", []) if e["name"] == "DEVICEHUB__ROLES"]
            if not roles:
                errors.append(f"{name}: DEVICEHUB__ROLES is not set")


workloads = 0
for path in sys.argv[1:]:
    text = pathlib.Path(path).read_text()
    check_names(path, text)
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc["kind"] in ("Deployment", "StatefulSet"):
            workloads += 1
            check_workload(path, doc)
        if doc["kind"] == "Ingress":
            for rule in doc["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    covers = lambda path: p["path"] == path or (
                        p["pathType"] == "Prefix" and path.startswith(p["path"].rstrip("/") + "/"))
                    for internal in ("/metrics", "/readyz", "/healthz", "/health"):
                        if covers(internal):
                            errors.append(f"{path}: the Ingress publishes {internal} (path {p['path']} {p['pathType']})")
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("mosquitto-config"):
            for file in ("mosquitto.conf", "acl"):
                shipped = (ROOT / "config/mosquitto" / file).read_text()
                if doc["data"].get(file) != shipped:
                    errors.append(f"{path}: the Mosquitto component's {file} differs from config/mosquitto/{file}")
for extra in ("docker-compose.yml", "deploy/k8s/secrets.env.example"):
    check_names(extra, (ROOT / extra).read_text())

# docker compose publishes devicehub's HTTP and MQTT over TLS to the network, nothing else.
compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
for name, service in compose["services"].items():
    for port in service.get("ports", []):
        published = str(port)
        if published in ("8080:8080", "8883:8883"):
            continue
        if not published.startswith("127.0.0.1:"):
            errors.append(f"docker-compose.yml: {name} publishes {published} beyond this machine")

if workloads == 0:
    errors.append("no workloads found in " + " ".join(sys.argv[1:]))
for e in errors:
    print("error:", e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"{workloads} workloads checked, {len(KNOWN)} settings known")
