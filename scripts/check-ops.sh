#!/usr/bin/env bash
# Checks the operator's kit as users get it: the Prometheus rules (promtool check and unit tests)
# and config, the Kubernetes manifests rendered with kustomize and validated offline against the
# Kubernetes schemas, and the settings names they use. Part of scripts/test.sh. The dashboards'
# queries run in tests/api/observe.rs, against devicehub's own data.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v promtool >/dev/null || apt_install prometheus
ensure_kustomize
VENV="$HOME/.cache/devicehub/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
[ -x "$VENV/bin/kubernetes-validate" ] || "$VENV/bin/pip" install -q "kubernetes-validate==1.37.0"

log "promtool: alert rules, their unit tests, the compose Prometheus config"
promtool check rules config/prometheus/alerts.yml
promtool test rules config/prometheus/alerts.test.yml
promtool check config config/prometheus/prometheus.yml
log "promtool: the Grafana dashboards' PromQL (as recording rules)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
"$VENV/bin/python" - "$OUT/dashboards.rules.yml" <<'PY'
import glob, json, sys, yaml
rules = []
for path in sorted(glob.glob("config/dashboards/grafana/*.json")):
    board = json.load(open(path))
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") == "devicehub-prometheus":
                expr = target["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
                rules.append({"record": f"dashboard:{len(rules)}", "expr": expr})
assert len(rules) >= 20, rules
yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(sys.argv[1], "w"))
PY
promtool check rules "$OUT/dashboards.rules.yml"

K8S_VERSION=1.31.0 # k3s stable at the time of writing; the schemas are bundled, no network
for dir in deploy/k8s/base deploy/k8s/overlays/k3s; do
  name="$(echo "$dir" | tr / -)"
  log "kustomize build $dir, validated against Kubernetes $K8S_VERSION"
  "$KUSTOMIZE" build "$dir" > "$OUT/$name.yaml"
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$OUT/$name.yaml"
done

log "the manifests' settings, probes and security"
"$VENV/bin/python" scripts/check_manifests.py "$OUT"/*.yaml
