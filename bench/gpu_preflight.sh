#!/usr/bin/env bash
# The GPU checks rehearsed on this CPU machine with the GPU machine's software, before spending its time:
#
#   bash bench/gpu_preflight.sh [OUT_DIR]
#
# The lent GPU machines run python3 with torch 2.11, torchvision 0.26 and transformers 5.17, and have neither PyAV,
# Streamlit nor Plotly (../.library/device/KINDS.md); the product pins torch 2.13. This builds .venv-device with those
# versions from PyPI (CUDA builds, a few GB, once; they run on the CPU too), hides the three missing packages, and
# runs what bench/gpu_check.sh runs that works without CUDA: tests/test_gpu.py on the CPU (VIDEOATTN_TEST_DEVICE=cpu)
# and bench/vs_reference.py for one preset of each reference family; then gpu_check.sh itself, which must end
# cleanly with "no CUDA". A failure here is a failure there, found for free.
set -u
out=${1:-/tmp/gpu-preflight}
cd "$(dirname "$0")/.."
mkdir -p "$out"
venv=.venv-device
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, torchvision, transformers, pytest, xdist' 2>/dev/null; then
    python3 -m venv "$venv" &&
    "$venv/bin/python" -m pip install --disable-pip-version-check -q torch==2.11.0 torchvision==0.26.0 \
        transformers==5.17.0 einops safetensors numpy pillow pytest pytest-xdist pytest-timeout || exit 1
fi
absent=$out/absent  # import av / streamlit / plotly fail there as they would on the GPU machine
mkdir -p "$absent"
for name in av streamlit plotly; do
    echo "raise ImportError('$name is not installed on the GPU machine (simulated by bench/gpu_preflight.sh)')" \
        >"$absent/$name.py"
done
export PYTHONPATH=$absent VIDEOATTN_TEST_DEVICE=cpu PYTHONUNBUFFERED=1
export VIDEOATTN_REFERENCE=${VIDEOATTN_REFERENCE:-$PWD/../shared/reference}
"$venv/bin/python" -c 'import torch, torchvision, transformers; print("torch", torch.__version__, "torchvision",
torchvision.__version__, "transformers", transformers.__version__)'
status=0
"$venv/bin/python" -m pytest tests/test_gpu.py -n 2 -p no:cacheprovider -q -rs 2>&1 | tee "$out/gpu_tests.txt" | tail -n 5
[ "${PIPESTATUS[0]}" = 0 ] || status=1
"$venv/bin/python" bench/vs_reference.py --presets mvit_v2_s,swin3d_t,timesformer_base,videomae_base,vivit_b,vjepa2_vitl \
    --rounds 1 --out "$out/vs_reference.json" 2>&1 | tee "$out/vs_reference.txt" | tail -n 8
[ "${PIPESTATUS[0]}" = 0 ] || status=1
env -u VIDEOATTN_TEST_DEVICE PYTHON=$venv/bin/python bash bench/gpu_check.sh "$out/gpu_check" >"$out/gpu_check.txt" 2>&1 \
    || status=1
grep -E '^## .*exit' "$out/gpu_check.txt"
grep -qE '^## .*: exit [^0]' "$out/gpu_check.txt" && status=1
echo "# preflight $([ $status = 0 ] && echo passed || echo FAILED); logs in $out"
exit $status
