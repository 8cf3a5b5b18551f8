#!/usr/bin/env bash
# The GPU check (docs/design.md §7): the GPU profile of birefnet_native (python -m servers.calibrate:
# service time per batch 1/2/4/8/16, k = 1/2/4/8 unsynchronised calls, memory up to OOM or 64 images)
# written to OUT_DIR/gpu_profile.json, then a short gradio vs fastapi vs fastapi-naive comparison on
# it, with the report written under OUT_DIR. Sized for <= 5 minutes on one H100. On a host without
# gradio/fastapi/uvicorn/locust it installs the wheel bundle that `../shared/tools/device-wheels` left
# in .whl/ (no package index needed).
#
#   scripts/gpu_check.sh OUT_DIR
#
# Overrides (the CPU test uses them): GVF_VARIANT (large), GVF_RESOLUTION (1024),
# GVF_BATCHES (1,2,4,8,16), GVF_OVERLAP (1,2,4,8), GVF_ITERS (10), GVF_MEMORY_CAP (64 images),
# GVF_PROFILE (quick), GVF_SCENARIOS (the profile's), GVF_DEVICE (auto), GVF_BUDGET_S (190: the
# comparison's time box, server startups included). The profile's timed calls add up to about 40 s at the shipped H100 figures
# (13 calls per batch size, 6 rounds per overlap count, one warm-up and one call at 32 and 64
# images), plus the model's load, so the whole check stays inside 5 minutes.
set -euo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" -c "import gradio, fastapi, uvicorn, locust, psutil, multipart, urllib3" 2>/dev/null; then
  [ -d .whl ] || { echo "gradio/fastapi/uvicorn/locust/psutil/python-multipart missing and no .whl/ bundle: run" \
    "../shared/tools/device-wheels 'gradio[mcp]==6.31.0' fastapi uvicorn uvloop httptools python-multipart locust psutil first" >&2; exit 2; }
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
  export PYTHONPATH=$PWD/.site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
variant=${GVF_VARIANT:-large}
resolution=${GVF_RESOLUTION:-1024}
"$python" -c "import torch; print('torch', torch.__version__, '| CUDA:', torch.cuda.is_available() and torch.cuda.get_device_name())"
"$python" -m servers.calibrate --out "$out/gpu_profile.json" --variant "$variant" --resolution "$resolution" \
  --random-weights --batches "${GVF_BATCHES:-1,2,4,8,16}" --overlap "${GVF_OVERLAP:-1,2,4,8}" \
  --iters "${GVF_ITERS:-10}" --memory-cap-images "${GVF_MEMORY_CAP:-64}" --device "${GVF_DEVICE:-auto}"
"$python" -m loadtests.cli run --profile "${GVF_PROFILE:-quick}" --model birefnet_native \
  --server-arg=--random-weights --server-arg="--variant=$variant" --server-arg="--resolution=$resolution" \
  --budget-s "${GVF_BUDGET_S:-190}" ${GVF_SCENARIOS:+--scenarios "$GVF_SCENARIOS"} --out "$out/runs"
echo "GPU profile: $out/gpu_profile.json; report: $(ls -d "$out"/runs/*/report 2>/dev/null | tail -1)"
