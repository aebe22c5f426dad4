#!/usr/bin/env bash
# GPU smoke run of everything CUDA that works without TensorRT (TensorRT cannot be installed on the
# lent GPU machines): CUDA runtime detection, quiet provider probing, ONNX Runtime CUDA parity against
# CPU, runner lifecycle and GPU memory, cbam-validate's cells and cbam-gpu-check up to TensorRT.
#
# Needs, in the repository root: $WHL/*.whl (polygraphy, onnxsim, onnxconverter-common, tritonclient
# wheels for the machine's Python), $WHL/ort-extra.tar.xz, onnxruntime-gpu as an xz tar in parts
# (ort-gpu.part.*, in $WHL or already in /root/ortparts from earlier calls: it is larger than one
# transfer; ORT_SHA256 is the whole archive's hash) and an exported model in .gpu/models/original_resnet_mini.
# Writes its logs and reports under $OUT (default /tmp/gpu-smoke).
set -u -o pipefail
OUT=${OUT:-/tmp/gpu-smoke}
WHL=${WHL:-.whl}
SITE=/tmp/site
MODEL=.gpu/models/original_resnet_mini
mkdir -p "$OUT" /root/ortparts
cp -n "$WHL"/ort-gpu.part.* /root/ortparts/ 2>/dev/null
step() { echo; echo "== $* ($(date +%T))"; }

step machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -V
step install
ls -l /root/ortparts
if [ -n "${ORT_SHA256:-}" ]; then
    got=$(cat /root/ortparts/ort-gpu.part.* | sha256sum | cut -d' ' -f1)
    [ "$got" = "$ORT_SHA256" ] || { echo "onnxruntime-gpu parts incomplete (sha256 $got)"; exit 3; }
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl || exit 3
cat /root/ortparts/ort-gpu.part.* | xz -dc -T0 | tar -x -C "$SITE" || exit 3
tar -xJf "$WHL"/ort-extra.tar.xz -C "$SITE" || exit 3
export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1
python3 -c "import onnxruntime as o, polygraphy; print('onnxruntime', o.__version__, o.get_available_providers(), 'polygraphy', polygraphy.__version__)"

step "checks: CUDA runtime, probes, ORT CUDA parity, lifecycle, memory"
timeout 90 python3 benchmarks/gpu_smoke.py "$MODEL" | tee "$OUT/smoke.jsonl"

step "cbam-validate (ORT CPU, ORT CUDA, TensorRT cell skipped), stderr checked for raw provider errors"
timeout 90 python3 -m cbam_deploy.cli.validate "$MODEL" --backends onnxruntime-cpu,onnxruntime-cuda,tensorrt \
    --precisions fp32,fp16,int8 --accuracy-count 300 --markdown "$OUT/validate.md" >/dev/null 2>"$OUT/validate.err"
echo "rc=$?"; cat "$OUT/validate.err"
grep -qiE "EP Error|Failed to load library|Falling back" "$OUT/validate.err" && echo "RAW PROVIDER ERRORS FOUND" || echo "no raw provider errors"

step "cbam-gpu-check without TensorRT installed: must refuse in one line"
python3 -m cbam_deploy.cli.gpu_check --out /tmp/gc0; echo "rc=$?"

step "cbam-gpu-check --without-tensorrt: reference models (original, parallel)"
timeout 120 python3 -m cbam_deploy.cli.gpu_check --without-tensorrt --hosts resnet_mini --variants original,parallel \
    --runs 20 --out /tmp/gc1 \
    --report "$OUT/gpu-check-reference.md"; echo "rc=$?"

step "cbam-gpu-check --without-tensorrt: ResNet-50 (parallel)"
timeout 120 python3 -m cbam_deploy.cli.gpu_check --without-tensorrt --hosts resnet50 --variants parallel --runs 10 \
    --out /tmp/gc2 --report "$OUT/gpu-check-resnet50.md"; echo "rc=$?"
step done
