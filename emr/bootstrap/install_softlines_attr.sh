#!/usr/bin/env bash
# EMR bootstrap action (runs on every node, as the hadoop user, before Hadoop and Spark are installed).
#
#   install_softlines_attr.sh RELEASE_URI [--index-url URL] [--mount-s3 BUCKET/PREFIX/ ...]
#
# RELEASE_URI is a release staged by `softlines-attr emr stage` (s3://bucket/prefix/releases/<id>/).
# It:
#   1. mounts the cgroup v1 devices controller that YARN's GPU isolation needs (EMR 7.x, Amazon Linux
#      2023 runs cgroup v2) or opens the cgroup v1 folders to YARN (EMR 6.x);
#   2. installs Python 3.11 and a virtualenv at /opt/softlines-attr/venv (Spark's PYSPARK_PYTHON);
#   3. downloads the release, checks SHA256SUMS, installs requirements-emr.txt -- with mxnet-cu112
#      in place of mxnet on nodes with an NVIDIA GPU -- and then the wheel without its dependencies;
#   4. installs the Spark GPU discovery script at /opt/softlines-attr/bin/getGpusResources.sh;
#   5. checks the result: the package imports, and MXNet sees the GPUs on GPU nodes;
#   6. with --mount-s3 BUCKET/PREFIX/: mounts that prefix read-only at /mnt/s3/BUCKET/PREFIX/ with Mountpoint
#      for Amazon S3 (distributed training reads its shards there: MXNet's record reader reads local files only).
# Any failure exits non-zero: EMR then fails the cluster with "bootstrap action 1 returned a non-zero
# return code" and keeps this script's stdout/stderr under LogUri/<cluster>/node/<instance>/bootstrap-actions/.
set -euo pipefail

RELEASE_URI="${1:?usage: install_softlines_attr.sh s3://BUCKET/PREFIX/releases/ID/ [--index-url URL] [--mount-s3 BUCKET/PREFIX/ ...]}"
RELEASE_URI="${RELEASE_URI%/}"
shift
PIP_INDEX_ARGS=()
MOUNTS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --index-url) PIP_INDEX_ARGS=(--index-url "${2:?--index-url needs a URL}"); shift 2 ;;
    --mount-s3) MOUNTS+=("${2:?--mount-s3 needs BUCKET/PREFIX/}"); shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

PREFIX=/opt/softlines-attr
VENV="$PREFIX/venv"
RELEASE_DIR="$PREFIX/release"
MXNET_VERSION=1.9.1
log() { echo "[softlines-attr bootstrap $(date -u +%H:%M:%S)] $*"; }

# --- 1. cgroups for YARN GPU scheduling --------------------------------------------------------
if [[ "$(stat -fc %T /sys/fs/cgroup)" == "cgroup2fs" ]]; then
  log "cgroup v2 host (EMR 7.x): mounting the v1 devices controller at /spark-rapids-cgroup/devices"
  sudo mkdir -p /spark-rapids-cgroup/devices
  mountpoint -q /spark-rapids-cgroup/devices || sudo mount -t cgroup -o devices cgroupv1-devices /spark-rapids-cgroup/devices
  sudo chmod a+rwx -R /spark-rapids-cgroup
else
  log "cgroup v1 host (EMR 6.x): opening cpu,cpuacct and devices to YARN"
  sudo chmod a+rwx -R /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/devices
fi

# --- 2. Python 3.11 ----------------------------------------------------------------------------
if ! command -v python3.11 >/dev/null 2>&1; then
  log "installing python3.11"
  if command -v dnf >/dev/null 2>&1; then
    sudo dnf install -y -q python3.11 python3.11-pip python3.11-devel
  else
    sudo yum install -y -q python3.11 python3.11-pip python3.11-devel
  fi
fi
sudo mkdir -p "$PREFIX/bin" "$RELEASE_DIR"
sudo chown -R "$(id -un)" "$PREFIX"
[[ -x "$VENV/bin/python" ]] || python3.11 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip "${PIP_INDEX_ARGS[@]}"

# --- 3. the release ----------------------------------------------------------------------------
log "downloading $RELEASE_URI"
aws s3 cp --quiet --recursive "$RELEASE_URI/" "$RELEASE_DIR/"
( cd "$RELEASE_DIR" && sha256sum --quiet --check SHA256SUMS )

GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPU=1
  log "GPU node: $(nvidia-smi -L | tr '\n' ' ')"
fi
REQS="$PREFIX/requirements.txt"
if [[ "$GPU" == 1 ]]; then
  sed -E "s/^mxnet([=<>!~ ].*)?$/mxnet-cu112==${MXNET_VERSION}/" "$RELEASE_DIR/requirements-emr.txt" > "$REQS"
else
  cp "$RELEASE_DIR/requirements-emr.txt" "$REQS"
fi
log "installing requirements: $(tr '\n' ' ' < "$REQS")"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PIP_INDEX_ARGS[@]}" -r "$REQS"
WHEEL=$(ls "$RELEASE_DIR"/dist/*.whl)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$WHEEL"

# --- 4. the GPU discovery script ---------------------------------------------------------------
install -m 0755 "$RELEASE_DIR/emr/gpu/getGpusResources.sh" "$PREFIX/bin/getGpusResources.sh"

# --- 5. checks ---------------------------------------------------------------------------------
"$VENV/bin/python" - "$GPU" <<'PY'
import sys
import mxnet
import softlines_attr
gpu_node = sys.argv[1] == "1"
gpus = mxnet.context.num_gpus() if gpu_node else 0
print(f"softlines_attr {softlines_attr.__version__}, mxnet {mxnet.__version__}, GPUs visible to MXNet: {gpus}")
if gpu_node and gpus < 1:
    sys.exit("expected MXNet (mxnet-cu112) to see the node's GPUs, found none: check the NVIDIA driver")
PY
# --- 6. S3 prefixes mounted read-only (Mountpoint for Amazon S3) -----------------------------------
if [[ ${#MOUNTS[@]} -gt 0 ]]; then
  if ! command -v mount-s3 >/dev/null 2>&1; then
    log "installing Mountpoint for Amazon S3"
    curl -fsSL -o /tmp/mount-s3.rpm "https://s3.amazonaws.com/mountpoint-s3-release/latest/$(uname -m)/mount-s3.rpm"
    sudo yum install -y -q /tmp/mount-s3.rpm
  fi
  grep -q '^user_allow_other' /etc/fuse.conf 2>/dev/null || echo user_allow_other | sudo tee -a /etc/fuse.conf >/dev/null
  for folder in "${MOUNTS[@]}"; do
    bucket="${folder%%/*}"
    prefix="${folder#*/}"
    sudo mkdir -p "/mnt/s3/$folder"
    sudo chown "$(id -un)" "/mnt/s3/$folder"
    mountpoint -q "/mnt/s3/$folder" || mount-s3 --read-only --allow-other --prefix "$prefix" "$bucket" "/mnt/s3/$folder"
    log "mounted s3://$folder at /mnt/s3/$folder (read-only)"
  done
fi

log "done: $VENV ($("$VENV/bin/python" --version)), release $(basename "$RELEASE_URI")"
