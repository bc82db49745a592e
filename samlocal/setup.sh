#!/usr/bin/env bash
# make sam-local, part 1: everything `sam local` needs on a machine that can pull no image, cached
# under ~/.cache/longform/samlocal (keyed by version), each step timed. Prints `KEY=VALUE` lines
# (SAM, IMAGE, PY313) on its last lines for run.py. Root (or sudo) for apt and dockerd.
#
#   docker.io, debootstrap     Debian packages (apt), when missing
#   dockerd                    started with --iptables=false --bridge=none when no engine answers;
#                              every address stays on loopback (SAM CLI is patched to host networking)
#   SAM CLI                    pinned (SAM_CLI_VERSION), in its own venv, with hostnet.py loaded
#                              through a .pth file; check_pin.py checks the patch still applies
#   the Lambda base image      public.ecr.aws/lambda/python:3.13-$ARCH, built locally FROM scratch:
#                              debootstrap trixie minbase (python3.13), boto3 + awslambdaric from PyPI,
#                              Lambda's /lambda-entrypoint.sh and /var/runtime/bootstrap (image/)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=${ARCH:-x86_64}
SAM_CLI_VERSION=1.170.0        # hostnet.py is written against it; check_pin.py tests it
DEBIAN_SUITE=trixie
AWSLAMBDARIC_VERSION=3.1.1
BOTO3_VERSION=1.40.4
CACHE=${LONGFORM_CACHE:-$HOME/.cache/longform}/samlocal
TIMES=${SAMLOCAL_TIMES:-$CACHE/times-setup-$ARCH.txt}
case "$ARCH" in
  x86_64) WHEEL_ARCH=x86_64 ;;
  arm64) WHEEL_ARCH=aarch64 ;;
  *) echo "ARCH must be x86_64 or arm64 (got $ARCH)" >&2; exit 2 ;;
esac
IMAGE=public.ecr.aws/lambda/python:3.13-$ARCH
ROOTFS=$CACHE/rootfs-$DEBIAN_SUITE-$ARCH
SAM_VENV=$CACHE/sam-cli-$SAM_CLI_VERSION
mkdir -p "$CACHE"
: >"$TIMES"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

step() {  # step NAME COMMAND...: run it, record how many seconds it took
  local name=$1 t0 rc=0
  shift
  t0=$(date +%s)
  echo "samlocal: $name ..." >&2
  "$@" || rc=$?
  echo "$name: $(($(date +%s) - t0))s" >>"$TIMES"
  [ "$rc" = 0 ] || { echo "samlocal: $name failed (exit $rc); logs in $CACHE" >&2; exit "$rc"; }
}

packages() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ "$ARCH" = arm64 ] && ! [ -e /usr/bin/qemu-aarch64-static ] && need+=(qemu-user-static binfmt-support)
  [ ${#need[@]} = 0 ] && return 0
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >"$CACHE/apt.log" 2>&1 || { tail -5 "$CACHE/apt.log" >&2; return 1; }
}

engine() {  # a running engine is reused; else dockerd without bridge or iptables (overlay2, else vfs)
  docker info >/dev/null 2>&1 && return 0
  local driver pid
  for driver in overlay2 vfs; do
    # setsid: the engine outlives this script (the next make sam-local reuses it)
    $SUDO setsid dockerd --storage-driver="$driver" --iptables=false --bridge=none \
      --host unix:///var/run/docker.sock >"$CACHE/dockerd.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && { echo "$pid" >"$CACHE/dockerd.pid"; return 0; }
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    $SUDO kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "dockerd with $driver did not start: $(tail -1 "$CACHE/dockerd.log")" >&2
  done
  return 1
}

rootfs() {  # Debian minbase with its python3.13, kept between runs
  [ -x "$ROOTFS/usr/bin/python3.13" ] && return 0
  local tmp=$ROOTFS.tmp
  $SUDO rm -rf "$tmp"
  if [ "$ARCH" = x86_64 ]; then
    $SUDO debootstrap --variant=minbase --include=python3.13,ca-certificates "$DEBIAN_SUITE" "$tmp" \
      http://deb.debian.org/debian >"$CACHE/debootstrap-$ARCH.log" 2>&1
  else
    $SUDO debootstrap --arch=arm64 --foreign --variant=minbase --include=python3.13,ca-certificates \
      "$DEBIAN_SUITE" "$tmp" http://deb.debian.org/debian >"$CACHE/debootstrap-$ARCH.log" 2>&1
    $SUDO chroot "$tmp" /debootstrap/debootstrap --second-stage >>"$CACHE/debootstrap-$ARCH.log" 2>&1
  fi
  $SUDO rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  mv "$tmp" "$ROOTFS"
}

sam_cli() {
  if ! [ -x "$SAM_VENV/bin/sam" ] || ! "$SAM_VENV/bin/sam" --version 2>/dev/null | grep -qF "$SAM_CLI_VERSION"; then
    rm -rf "$SAM_VENV"
    python3 -m venv "$SAM_VENV"
    "$SAM_VENV/bin/pip" install -q --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION" \
      >"$CACHE/sam-pip.log" 2>&1 || { tail -5 "$CACHE/sam-pip.log" >&2; return 1; }
  fi
  local site
  site=$("$SAM_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp "$HERE/hostnet.py" "$site/longform_sam_hostnet.py"
  echo "import longform_sam_hostnet" >"$site/longform_sam_hostnet.pth"
  "$SAM_VENV/bin/python" "$HERE/check_pin.py" "$SAM_CLI_VERSION"
}

image_key() {  # what the image is built from: a change of any of it rebuilds the image
  { echo "$DEBIAN_SUITE $ARCH boto3==$BOTO3_VERSION awslambdaric==$AWSLAMBDARIC_VERSION sam==$SAM_CLI_VERSION"
    cat "$HERE"/image/*; } | sha256sum | cut -c1-16
}

lambda_image() {
  local key stage ctx rie pip
  key=$(image_key)
  if [ "$(docker image inspect "$IMAGE" --format '{{index .Config.Labels "longform.samlocal.key"}}' 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  stage=$CACHE/image-stage-$ARCH
  ctx=$CACHE/image-ctx-$ARCH
  rie=$("$SAM_VENV/bin/python" -c 'import os, samcli; print(os.path.dirname(samcli.__file__))')/local/rapid/aws-lambda-rie-$ARCH
  $SUDO rm -rf "$stage" "$ctx"
  mkdir -p "$stage" "$ctx"
  $SUDO cp -a "$ROOTFS/." "$stage/"
  mkdir -p "$stage/var/lang/bin" "$stage/var/lang/lib/python3.13/site-packages" "$stage/var/runtime" \
    "$stage/var/task" "$stage/opt" "$stage/usr/local/bin"
  ln -sf /usr/bin/python3.13 "$stage/var/lang/bin/python3.13"
  ln -sf python3.13 "$stage/var/lang/bin/python3"
  pip=("$PY313" -m pip install -q --disable-pip-version-check --no-compile --only-binary=:all:
    --platform "manylinux2014_$WHEEL_ARCH" --python-version 3.13 --implementation cp)
  "${pip[@]}" --target "$stage/var/lang/lib/python3.13/site-packages" "boto3==$BOTO3_VERSION" >"$CACHE/image-pip.log" 2>&1
  "${pip[@]}" --target "$stage/var/runtime" "awslambdaric==$AWSLAMBDARIC_VERSION" >>"$CACHE/image-pip.log" 2>&1
  install -m 0755 "$rie" "$stage/usr/local/bin/aws-lambda-rie"
  install -m 0755 "$HERE/image/lambda-entrypoint.sh" "$stage/lambda-entrypoint.sh"
  install -m 0755 "$HERE/image/bootstrap" "$stage/var/runtime/bootstrap"
  install -m 0644 "$HERE/image/bootstrap.py" "$stage/var/runtime/bootstrap.py"
  # bytecode now: the runtime's /var/lang is read-only in spirit, a cold start should not compile botocore
  "$PY313" -m compileall -q -j 2 "$stage/var/lang/lib/python3.13/site-packages" "$stage/var/runtime" >/dev/null
  # one tarball (docker import refuses duplicate paths; FROM scratch keeps --platform honest for arm64)
  $SUDO tar -c -C "$stage" -f "$ctx/rootfs.tar" .
  $SUDO rm -rf "$stage"
  cp "$HERE/image/Dockerfile" "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q --platform "linux/$ARCH" --label "longform.samlocal.key=$key" \
    -t "$IMAGE" "$ctx" >"$CACHE/image-build.log" 2>&1 || { tail -5 "$CACHE/image-build.log" >&2; return 1; }
  rm -rf "$ctx"
  docker run --rm --network none --platform "linux/$ARCH" --entrypoint /var/lang/bin/python3.13 "$IMAGE" -c \
    'import sys; sys.path[:0] = ["/var/lang/lib/python3.13/site-packages", "/var/runtime"]
import platform, ssl, boto3, awslambdaric; print("image:", sys.version.split()[0], platform.machine(), "boto3", boto3.__version__)' >&2
}

PY313=$(pyenv prefix 3.13.0 2>/dev/null)/bin/python3.13 || true
[ -x "$PY313" ] || PY313=$(command -v python3.13 || true)
[ -x "$PY313" ] || { echo "samlocal: python3.13 is needed (pyenv install 3.13.0, or Debian's python3.13)" >&2; exit 1; }

step "apt packages (docker.io, debootstrap)" packages
step "dockerd (--iptables=false --bridge=none)" engine
step "debootstrap $DEBIAN_SUITE $ARCH + python3.13 (cached)" rootfs
step "SAM CLI $SAM_CLI_VERSION venv + host-network patch" sam_cli
step "Lambda base image $IMAGE (cached by key)" lambda_image
cat "$TIMES" >&2
echo "SAM=$SAM_VENV/bin/sam"
echo "IMAGE=$IMAGE"
echo "PY313=$PY313"
