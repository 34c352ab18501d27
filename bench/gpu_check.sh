#!/usr/bin/env bash
# Every GPU check in one command, sized for a lent GPU machine (about 9 of its 15 minutes; each step has its own
# time limit, so a slow one leaves the others their time, and each writes what it measured as it goes):
#
#   here, once:  rm -rf gpu-carry && mkdir gpu-carry && cp -r ../shared/reference gpu-carry/   (git-ignored)
#   there:       bash bench/gpu_check.sh "$OUT"   (the device tool's run, carry ["gpu-carry"], timeout_s 600)
#
# That machine's python3 has torch with CUDA, einops, safetensors, torchvision and transformers, but neither PyAV,
# Streamlit nor Plotly: nothing below needs them. Written to OUT (the first argument):
#   env.txt                     GPU, driver, Python and torch versions
#   gpu_tests.txt, .xml         tests/test_gpu.py: the reference fixtures' logits on CUDA (float32 with TF32 off,
#                               bfloat16), both attention paths, padded shifted windows, inspection and capture, the
#                               compiled forward, the memory estimate against the CUDA allocator's peak
#   report.txt, report.json     bench/report.py --device cuda: forwards and inspection in float32 and bfloat16 with
#                               the fraction of the GPU's matmul peak, compiled forwards, the published
#                               implementations on the same GPU
#   memory.txt, memory.json     bench/memory.py --device cuda: the estimate against the allocator's peak per preset
set -u
out=${1:?usage: bash bench/gpu_check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ -z "${VIDEOATTN_REFERENCE:-}" ]; then
    VIDEOATTN_REFERENCE=$PWD/gpu-carry/reference
    [ -d "$VIDEOATTN_REFERENCE" ] || VIDEOATTN_REFERENCE=$PWD/../shared/reference
fi
export VIDEOATTN_REFERENCE

# step LIMIT NAME COMMAND...: COMMAND's output to OUT/NAME.txt, at most LIMIT seconds; its tail to stdout
step() {
    local limit=$1 name=$2 start=$SECONDS rc
    shift 2
    echo "## $name (at most ${limit} s): $*"
    timeout -k 10 "$limit" "$@" >"$out/$name.txt" 2>&1
    rc=$?
    echo "## $name: exit $rc after $((SECONDS - start)) s$([ $rc = 124 ] && echo ', stopped at its limit')"
    tail -n 30 "$out/$name.txt"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda",
torch.version.cuda, "device", torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
    echo "references: $VIDEOATTN_REFERENCE"
} >"$out/env.txt" 2>&1
cat "$out/env.txt"

# four workers: building the models on the CPU (random initialisation, then the fixtures' weights) takes longer
# than their forwards on the GPU
step 180 gpu_tests "$PY" -m pytest tests/test_gpu.py -n 4 -p no:cacheprovider -q -rs --junitxml="$out/gpu_tests.xml"
step 300 report "$PY" bench/report.py --device cuda --skip app --reference-python "$PY" --out "$out/report.json"
step 60 memory "$PY" bench/memory.py --device cuda --presets swin3d_t,mvit_v2_s,timesformer_base,videomae_base \
    --out "$out/memory.json"
