#!/usr/bin/env bash
# Prints where Traefik's web entrypoint answers from this machine:
#   - the embedded cluster: Traefik runs on this machine itself, on http://127.0.0.1:8000
#   - a LoadBalancer that answers (Docker Desktop, OrbStack, Rancher Desktop, k3d): its address
#   - otherwise (kind, minikube): a `kubectl port-forward` to http://127.0.0.1:8000, started in
#     the background and kept until `./traefik-url.sh --stop` (the lab's cleanup runs it)
set -euo pipefail
work="${KUBELAB_WORK:-$HOME/.local/state/kubelab/work/ingress-traefik}"
pidfile="$work/traefik-port-forward.pid"
local_url=http://127.0.0.1:8000

if [ "${1:-}" = "--stop" ]; then
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  exit 0
fi

answers() { curl -s -o /dev/null -m 2 "$1/"; }  # any HTTP answer (Traefik: 404 for no route)

if ! kubectl get service traefik -n traefik >/dev/null 2>&1; then
  if answers "$local_url"; then echo "$local_url"; exit 0; fi
  echo "Traefik is not running here: kubelab addons install traefik" >&2
  exit 1
fi
lb=$(kubectl get service traefik -n traefik \
  -o jsonpath='{.status.loadBalancer.ingress[0].hostname}{.status.loadBalancer.ingress[0].ip}')
if [ -n "$lb" ] && answers "http://$lb"; then echo "http://$lb"; exit 0; fi
if ! answers "$local_url"; then
  mkdir -p "$work"
  kubectl port-forward -n traefik service/traefik 8000:80 >"$work/traefik-port-forward.log" 2>&1 &
  echo $! >"$pidfile"
  # curl retries by itself (no fixed sleep) until the tunnel answers, 20 s at most
  curl -s -o /dev/null --retry 20 --retry-connrefused --retry-delay 1 "$local_url/" || {
    echo "kubectl port-forward did not come up: $(cat "$work/traefik-port-forward.log")" >&2
    exit 1
  }
fi
echo "$local_url"
