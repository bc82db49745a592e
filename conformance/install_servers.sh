#!/usr/bin/env bash
# Install the other real servers of `make conformance`, each in its own venv under the cache:
#
#   install_servers.sh litellm            LiteLLM's proxy 1.110.2 (in front of llama-server)
#   install_servers.sh transformers       `transformers serve` 5.23.0 on the CPU build of torch 2.13.0
#   install_servers.sh llama-cpp-python   llama-cpp-python's server 0.3.36 (on build_llama_server.sh's libllama.so)
#
# Each lands in ${LONGFORM_CACHE:-$HOME/.cache/longform}/<name>-<version>/venv and prints that venv's
# python on its last line; a second run finds the stamp and starts at once. The main artifact of each
# is pinned by version and sha256; its dependencies by version and per-file sha256
# (conformance/locks/<name>.txt, installed as they stand with `pip install --require-hashes --no-deps`,
# then `pip check`). A lock is written on a first install without one (from the venv's freeze;
# hashed by conformance/hash_lock.py with that venv's pip, so the hashes are this platform's files).
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
HERE=$(cd "$(dirname "$0")" && pwd)
LOCKS="$HERE/locks"
# shellcheck source=conformance/common.sh
source "$HERE/common.sh"

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
  "$1/bin/python" -m pip check >&2
  # the lock pins the dependencies; the main artifact (a local file, sha256-checked) is left out.
  # --all: setuptools too (torch requires setuptools>=77, a 3.11 venv starts with 65.5: a lock
  # without it failed `pip check` on a cold cache); pip is left to new_venv
  "$1/bin/python" -m pip freeze --all --exclude pip --exclude-editable | grep -v ' @ file:' >"$1/freeze.txt"
  if [ ! -f "$LOCKS/$2.txt" ]; then
    mkdir -p "$LOCKS"
    cp "$1/freeze.txt" "$LOCKS/$2.txt"
    "$PYTHON" "$HERE/hash_lock.py" "$1/bin/python" "$LOCKS/$2.txt"
  fi
  touch "$1/.installed"
}

have_lock() { [ -f "$LOCKS/$1.txt" ]; }

install_locked() {  # venv-python name: the lock's whole closure, each file checked against its hash
  "$1" -m pip install --quiet --require-hashes --no-deps -r "$LOCKS/$2.txt" >&2
}

install_litellm() {
  local dir="$CACHE/litellm-$LITELLM_VERSION/venv" work
  if [ ! -f "$dir/.installed" ]; then
    local start; start=$(date +%s)
    work=$(mktemp -d "$CACHE/litellm.XXXXXX")
    log "installing LiteLLM's proxy $LITELLM_VERSION (wheel + its [proxy] requirements) into $dir"
    new_venv "$dir"
    PYTHON="$dir.tmp/bin/python" fetch_checked "litellm==$LITELLM_VERSION" "$LITELLM_WHEEL" "$LITELLM_SHA256" \
        "$work" >/dev/null
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
    if have_lock litellm; then
      install_locked "$dir.tmp/bin/python" litellm
    else
      "$dir.tmp/bin/python" -m pip install --quiet -r "$work/requirements.txt" >&2
    fi
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
    if have_lock transformers; then
      install_locked "$dir.tmp/bin/python" transformers
    else
      "$dir.tmp/bin/python" -m pip install --quiet --only-binary :all: "torch==$TORCH_VERSION" >&2
    fi
    "$dir.tmp/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.endswith('+cpu') else 1)" \
      || { log "torch is not the CPU build: $("$dir.tmp/bin/python" -c 'import torch; print(torch.__version__)')"; exit 1; }
    PYTHON="$dir.tmp/bin/python" fetch_checked "transformers==$TRANSFORMERS_VERSION" "$TRANSFORMERS_WHEEL" \
        "$TRANSFORMERS_SHA256" "$work" >/dev/null
    if have_lock transformers; then
      "$dir.tmp/bin/python" -m pip install --quiet --no-deps "$work/$TRANSFORMERS_WHEEL" >&2
    else
      "$dir.tmp/bin/python" -m pip install --quiet "$work/$TRANSFORMERS_WHEEL[serving]" gguf \
          "torch==$TORCH_VERSION" >&2
    fi
    finish_venv "$dir" transformers
    rm -rf "$work"
    log "transformers installed in $(( $(date +%s) - start )) s"
  fi
  echo "$dir/bin/python"
}

install_llama_cpp_python() {
  # the Python package only: built with LLAMA_BUILD=OFF and LLAVA_BUILD=OFF (options of its
  # CMakeLists.txt) nothing is compiled; the server loads the libllama.so that build_llama_server.sh
  # built from the very llama.cpp this sdist vendors, through LLAMA_CPP_LIB_PATH (set by the tests)
  local dir="$CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION/venv" work sdist wheel
  if [ ! -f "$dir/.installed" ]; then
    local start; start=$(date +%s)
    work=$(mktemp -d "$CACHE/llama-cpp-python.XXXXXX")
    log "installing llama-cpp-python $LLAMA_CPP_PYTHON_VERSION[server] (Python only) into $dir"
    new_venv "$dir"
    sdist=$(PYTHON="$dir.tmp/bin/python" fetch_llama_cpp_python_sdist "$work")
    CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
        "$dir.tmp/bin/python" -m pip wheel --quiet --no-deps "$sdist" -w "$work/wheel" >&2
    wheel=$(ls "$work"/wheel/llama_cpp_python-*.whl)
    if have_lock llama-cpp-python; then
      install_locked "$dir.tmp/bin/python" llama-cpp-python
      "$dir.tmp/bin/python" -m pip install --quiet --no-deps "$wheel" >&2
    else
      "$dir.tmp/bin/python" -m pip install --quiet "$wheel[server]" >&2
    fi
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
