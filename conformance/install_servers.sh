#!/usr/bin/env bash
# Install the other real servers of `make conformance`, each in its own venv under the cache:
#
#   install_servers.sh litellm            LiteLLM's proxy 1.110.2 (in front of llama-server)
#   install_servers.sh transformers       `transformers serve` 5.23.0 on the CPU build of torch 2.13.0
#   install_servers.sh llama-cpp-python   llama-cpp-python's server 0.3.36 (built once, wheel cached)
#
# Each lands in ${LONGFORM_CACHE:-$HOME/.cache/longform}/<name>-<version>/venv and prints that venv's
# python on its last line; a second run finds the stamp and starts at once. The main artifact of each
# is pinned by version and sha256; the dependencies by version (conformance/locks/<name>.txt).
#
# LiteLLM: `pip install 'litellm[proxy]==1.110.2'` does not resolve (the extra pins litellm-proxy,
# litellm-proxy-extras and litellm-enterprise releases that are not served), but the wheel itself
# holds the proxy and its `litellm` command: install the wheel without dependencies, then its own
# requirements and the [proxy] extra's, read from the wheel's metadata, less those three. Never
# 1.82.7 or 1.82.8 (malicious releases).
set -euo pipefail

LITELLM_VERSION=1.110.2
LITELLM_WHEEL=litellm-1.110.2-cp310-abi3-manylinux_2_28_x86_64.whl
LITELLM_SHA256=9d94d1c7d524b6fd10c14f9c8c6c4f0ac31705f9964ac59dcfd8337c046d8917
TRANSFORMERS_VERSION=5.23.0
TRANSFORMERS_WHEEL=transformers-5.23.0-py3-none-any.whl
TRANSFORMERS_SHA256=018e82fd07490ad5bb58414f65e31576033dc7f36bed10c574843f69b90991bf
TORCH_VERSION=2.13.0
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

PYTHON=${PYTHON:-python3}
CACHE=${LONGFORM_CACHE:-$HOME/.cache/longform}
HERE=$(cd "$(dirname "$0")" && pwd)
LOCKS="$HERE/locks"
mkdir -p "$CACHE"

log() { echo "conformance: $*" >&2; }

check_sha256() {  # file expected
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    log "sha256 mismatch for $1: got $got, expected $2"
    exit 1
  fi
}

new_venv() {  # dir
  rm -rf "$1.tmp"
  "$PYTHON" -m venv "$1.tmp"
  "$1.tmp/bin/python" -m pip install --quiet --upgrade pip >&2
}

finish_venv() {  # dir name
  # venvs hold absolute paths: build in place under .tmp, then move and fix the scripts' shebangs
  rm -rf "$1"
  mv "$1.tmp" "$1"
  grep -rlI "$1.tmp" "$1/bin" 2>/dev/null | xargs -r sed -i "s#$1.tmp#$1#g"
  # the lock pins the dependencies; the main artifact (a local file, sha256-checked) is left out
  "$1/bin/python" -m pip freeze --exclude-editable | grep -v ' @ file:' >"$1/freeze.txt"
  mkdir -p "$LOCKS"
  [ -f "$LOCKS/$2.txt" ] || cp "$1/freeze.txt" "$LOCKS/$2.txt"
  touch "$1/.installed"
}

lock_args() {  # name: pins the dependencies when a lock exists
  if [ -f "$LOCKS/$1.txt" ]; then echo "-c $LOCKS/$1.txt"; fi
}

install_litellm() {
  local dir="$CACHE/litellm-$LITELLM_VERSION/venv" work
  if [ ! -f "$dir/.installed" ]; then
    local start; start=$(date +%s)
    work=$(mktemp -d "$CACHE/litellm.XXXXXX")
    log "installing LiteLLM's proxy $LITELLM_VERSION (wheel + its [proxy] requirements) into $dir"
    new_venv "$dir"
    "$dir.tmp/bin/python" -m pip download --quiet --no-deps "litellm==$LITELLM_VERSION" -d "$work" >&2
    check_sha256 "$work/$LITELLM_WHEEL" "$LITELLM_SHA256"
    "$PYTHON" - "$work/$LITELLM_WHEEL" >"$work/requirements.txt" <<'PY'
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    msg = Parser().parsestr(z.read(meta).decode())
skip = ("litellm-proxy", "litellm-proxy-extras", "litellm-enterprise")
for req in msg.get_all("Requires-Dist") or []:
    spec, _, marker = req.partition(";")
    name = spec.strip().split("[")[0].split(">")[0].split("<")[0].split("=")[0].split("!")[0].strip()
    if name.lower() in skip:
        continue
    marker = marker.strip()
    if "extra ==" in marker:
        if "extra == 'proxy'" not in marker:
            continue
        marker = " and ".join(p for p in marker.split(" and ") if "extra ==" not in p.strip())
    print(spec.strip() + (f" ; {marker}" if marker.strip() else ""))
PY
    # shellcheck disable=SC2046
    "$dir.tmp/bin/python" -m pip install --quiet $(lock_args litellm) -r "$work/requirements.txt" >&2
    "$dir.tmp/bin/python" -m pip install --quiet --no-deps "$work/$LITELLM_WHEEL" >&2
    finish_venv "$dir" litellm
    rm -rf "$work"
    log "LiteLLM installed in $(( $(date +%s) - start )) s"
  fi
  echo "$dir/bin/python"
}

install_transformers() {
  local dir="$CACHE/transformers-$TRANSFORMERS_VERSION/venv" work
  if [ ! -f "$dir/.installed" ]; then
    local start; start=$(date +%s)
    work=$(mktemp -d "$CACHE/transformers.XXXXXX")
    log "installing transformers $TRANSFORMERS_VERSION (serve) on torch $TORCH_VERSION (CPU) into $dir"
    new_venv "$dir"
    # the CPU build of torch lies on this machine's disk (pip's find-links); a plain torch from the
    # registry would pull the CUDA stack: refuse anything but the +cpu build
    "$dir.tmp/bin/python" -m pip install --quiet --only-binary :all: "torch==$TORCH_VERSION" >&2
    "$dir.tmp/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.endswith('+cpu') else 1)" \
      || { log "torch is not the CPU build: $("$dir.tmp/bin/python" -c 'import torch; print(torch.__version__)')"; exit 1; }
    "$dir.tmp/bin/python" -m pip download --quiet --no-deps "transformers==$TRANSFORMERS_VERSION" -d "$work" >&2
    check_sha256 "$work/$TRANSFORMERS_WHEEL" "$TRANSFORMERS_SHA256"
    # shellcheck disable=SC2046
    "$dir.tmp/bin/python" -m pip install --quiet $(lock_args transformers) \
        "$work/$TRANSFORMERS_WHEEL[serving]" gguf "torch==$TORCH_VERSION" >&2
    finish_venv "$dir" transformers
    rm -rf "$work"
    log "transformers installed in $(( $(date +%s) - start )) s"
  fi
  echo "$dir/bin/python"
}

install_llama_cpp_python() {
  local dir="$CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION/venv" work wheels
  wheels="$CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION/wheel"
  if [ ! -f "$dir/.installed" ]; then
    local start; start=$(date +%s)
    work=$(mktemp -d "$CACHE/llama-cpp-python.XXXXXX")
    new_venv "$dir"
    if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
      log "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (compiles llama.cpp once more; cached after)"
      "$dir.tmp/bin/python" -m pip download --quiet --no-binary :all: --no-deps \
          "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work" >&2
      check_sha256 "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" "$LLAMA_CPP_PYTHON_SHA256"
      CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
          "$dir.tmp/bin/python" -m pip wheel --quiet --no-deps \
          "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -w "$work/wheel" >&2
      rm -rf "$wheels" && mv "$work/wheel" "$wheels"
    fi
    # shellcheck disable=SC2046
    "$dir.tmp/bin/python" -m pip install --quiet $(lock_args llama-cpp-python) \
        "$(ls "$wheels"/llama_cpp_python-*.whl)[server]" >&2
    finish_venv "$dir" llama-cpp-python
    rm -rf "$work"
    log "llama-cpp-python installed in $(( $(date +%s) - start )) s"
  fi
  echo "$dir/bin/python"
}

case "${1:-}" in
  litellm) install_litellm ;;
  transformers) install_transformers ;;
  llama-cpp-python) install_llama_cpp_python ;;
  *) echo "usage: $0 litellm|transformers|llama-cpp-python" >&2; exit 2 ;;
esac
