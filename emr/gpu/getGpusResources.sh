#!/usr/bin/env bash
# Spark GPU resource discovery script (spark.executor.resource.gpu.discoveryScript).
# Prints the GPUs this process can use as Spark's ResourceInformation JSON:
#   {"name": "gpu", "addresses": ["0", "1"]}
# Same contract as the getGpusResources.sh that ships with Spark (EMR keeps its copy at
# /usr/lib/spark/scripts/gpu/getGpusResources.sh, which conf/spark/emr_gpu.toml points at); the EMR
# bootstrap installs this one at /opt/softlines-attr/bin/getGpusResources.sh for releases without it.
set -euo pipefail
ADDRS=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | grep -E '^[0-9]+$' | sed 's/.*/"&"/' | paste -sd, - || true)
echo "{\"name\": \"gpu\", \"addresses\": [${ADDRS}]}"
