# Shared by conformance/build_llama_server.sh and conformance/install_servers.sh (sourced):
# the cache, a log line, and "download one pinned file from the registry and check its sha256".
# shellcheck shell=bash

PYTHON=${PYTHON:-python3}
CACHE=${LONGFORM_CACHE:-$HOME/.cache/longform}
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
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

fetch_checked() {  # requirement file-name sha256 dir [pip download options...]: prints the file's path
  local req=$1 file=$2 sha=$3 dir=$4
  shift 4
  "$PYTHON" -m pip download --quiet --no-deps "$@" "$req" -d "$dir" >&2
  check_sha256 "$dir/$file" "$sha"
  echo "$dir/$file"
}

fetch_llama_cpp_python_sdist() {  # dir: the llama-cpp-python sdist (it vendors llama.cpp), checked
  fetch_checked "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" \
    "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" "$LLAMA_CPP_PYTHON_SHA256" "$1" --no-binary :all:
}
