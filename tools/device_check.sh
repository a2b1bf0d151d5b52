#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: the CUDA-marked tests and the device benchmark, one table.
#
#   bash tools/device_check.sh            # from the repo root of a fresh copy; at most ~5 minutes
#   bash tools/device_check.sh --cpu      # dry run without a GPU (small sizes; CUDA tests are skipped)
#   DETAUG_DEVICE_CHECK_CPU=1 bash tools/device_check.sh   # the same
#
# The machine may have no network: nothing is downloaded. It uses the first
# python that imports torch ($DETAUG_PYTHON, python3, python), in a venv made
# on top of it (its site-packages linked in by a .pth file, so the
# interpreter's own torch/numpy/OpenCV are used), with detaug installed
# editable into the venv without dependencies (PYTHONPATH as the fallback). A
# missing required package is reported; pycocotools (COCO reading only, but
# imported by `import detaug`) is replaced by a stub that fails on use if the
# machine lacks it. Every stage reports its own failure in the table; the
# script's status is 0 only when every stage passed. The log and the table
# also go to $DETAUG_CHECK_OUT (default: $OUT if set, else a temp folder).

set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
CPU_ONLY=${DETAUG_DEVICE_CHECK_CPU:-0}
[ "${1:-}" = "--cpu" ] && CPU_ONLY=1
DEST=${DETAUG_CHECK_OUT:-${OUT:-$(mktemp -d)}}
mkdir -p "$DEST"
LOG="$DEST/device_check.log"
: >"$LOG"
WORK=$(mktemp -d)
T0=$(date +%s)
# the commit only when the tree is exactly it (a copy with edits says so); read before anything runs; untracked files count
if ! git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
    REV="commit ? (not a git checkout)"
elif [ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then
    REV="commit $(git -C "$ROOT" rev-parse --short HEAD)"
else
    REV="working tree"
fi
ROWS=()

row() { ROWS+=("| $1 | $2 | $3 |"); echo "== $1: $2 -- $3" | tee -a "$LOG"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
say() { echo "$*" | tee -a "$LOG"; }

# ---------------------------------------------------------------- 1. python + torch + GPU
PY=""
for cand in ${DETAUG_PYTHON:-} python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then PY=$(command -v "$cand"); break; fi
done
if [ -z "$PY" ]; then
    for cand in python3 python; do command -v "$cand" >/dev/null 2>&1 && PY=$(command -v "$cand") && break; done
    if [ -n "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; then
        say "no python with torch: trying 'pip install torch' (needs a package index)"
        timeout 120 "$PY" -m pip install -q torch >>"$LOG" 2>&1
    fi
    if [ -z "$PY" ] || ! "$PY" -c "import torch" >/dev/null 2>&1; then
        row python FAILED "no python that imports torch (tried \$DETAUG_PYTHON, python3, python; pip install torch failed or no index)"
        printf '\n| stage | result | note |\n| --- | --- | --- |\n%s\n' "$(printf '%s\n' "${ROWS[@]}")" | tee "$DEST/device_check_table.md"
        exit 1
    fi
fi
TORCH_INFO=$("$PY" -c "import torch, sys; print(f'python {sys.version.split()[0]}, torch {torch.__version__}, cuda available: {torch.cuda.is_available()}' + (f', {torch.cuda.get_device_name(0)}' if torch.cuda.is_available() else ''))" 2>>"$LOG")
HAS_CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>>"$LOG")
if [ "$HAS_CUDA" = "1" ]; then
    row python ok "$PY: $TORCH_INFO"
elif [ "$CPU_ONLY" = "1" ]; then
    row python ok "$PY: $TORCH_INFO (CPU dry run)"
else
    row python FAILED "$PY: $TORCH_INFO -- no CUDA device; use --cpu for a dry run"
fi

# ---------------------------------------------------------------- 2. venv + detaug
VENV="$WORK/venv"
RUN="$PY"
if "$PY" -m venv --without-pip "$VENV" >>"$LOG" 2>&1; then
    SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    "$PY" -c "import site, sysconfig; print('\n'.join(dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']])))" >"$SITE/_base_python.pth"
    if "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then RUN="$VENV/bin/python"; fi
fi
# pycocotools: imported by `import detaug` (COCO reading); stub it when missing
STUB=""
if ! "$RUN" -c "import pycocotools.coco" >/dev/null 2>&1; then
    STUB="$WORK/stubs"
    mkdir -p "$STUB/pycocotools"
    echo '"""Stub of device_check.sh: pycocotools is not installed here."""' >"$STUB/pycocotools/__init__.py"
    printf 'class COCO:\n    def __init__(self, *a, **k):\n        raise ImportError("pycocotools is not installed (device_check.sh stub)")\n' >"$STUB/pycocotools/coco.py"
fi
export PYTHONPATH="$ROOT${STUB:+:$STUB}${PYTHONPATH:+:$PYTHONPATH}"
HOW="PYTHONPATH"
if [ "$RUN" != "$PY" ] && timeout 60 "$RUN" -m pip install -q --no-deps --no-build-isolation --no-index -e "$ROOT" >>"$LOG" 2>&1; then
    HOW="pip install -e . --no-deps into a venv over $PY"
fi
MISSING=$("$RUN" - <<'EOF' 2>>"$LOG"
import importlib
need = {"numpy": "numpy", "cv2": "opencv-python-headless", "yaml": "pyyaml", "tqdm": "tqdm", "pytest": "pytest",
        "hypothesis": "hypothesis"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
EOF
)
VERSIONS=$("$RUN" -c "import numpy, cv2, torch; print(f'numpy {numpy.__version__}, OpenCV {cv2.__version__}, torch {torch.__version__}')" 2>>"$LOG")
if [ -n "$MISSING" ]; then
    row packages FAILED "missing: $MISSING (no index here: carry wheels and pip install --no-index them first)"
elif "$RUN" -c "import detaug, detaug.batch_transforms.painter" >>"$LOG" 2>&1; then
    SHM=$(df -h /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')
    row packages ok "detaug via $HOW; $VERSIONS${STUB:+; pycocotools stubbed (missing)}; /dev/shm free: ${SHM:-?}"
else
    row packages FAILED "import detaug failed (see $LOG)"
fi

# ---------------------------------------------------------------- 3. CUDA-marked tests
mapfile -t CUDA_FILES < <(grep -rlE "mark\.cuda|marks=\[?pytest\.mark\.cuda" tests --include='test_*.py' 2>/dev/null | sort)
if [ ${#CUDA_FILES[@]} -eq 0 ]; then
    row cuda-tests FAILED "no test file carries the cuda marker"
else
    TEST_LIMIT=$([ "$CPU_ONLY" = "1" ] && echo 240 || echo 150)
    timeout "$TEST_LIMIT" "$RUN" -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors \
        -W ignore::UserWarning "${CUDA_FILES[@]}" >"$WORK/pytest.txt" 2>&1
    RC=$?
    cat "$WORK/pytest.txt" >>"$LOG"
    SUMMARY=$(grep -E "(passed|failed|skipped|error|deselected|no tests ran)" "$WORK/pytest.txt" | tail -1 | sed 's/=//g; s/^ *//')
    FAILS=$(grep -E "^(FAILED|ERROR) " "$WORK/pytest.txt" | head -5 | cut -c1-160 | tr '\n' ';')
    if [ $RC -eq 124 ]; then
        row cuda-tests FAILED "timed out after ${TEST_LIMIT}s (${#CUDA_FILES[@]} files)"
    elif [ $RC -eq 0 ] || { [ $RC -eq 5 ] && [ "$CPU_ONLY" = "1" ]; }; then
        row cuda-tests ok "${SUMMARY:-no summary} (${#CUDA_FILES[@]} files: ${CUDA_FILES[*]##*/})"
    else
        row cuda-tests FAILED "rc $RC: ${SUMMARY:-no summary}; ${FAILS}"
    fi
fi

# ---------------------------------------------------------------- 4. device benchmark
LEFT=$(( 285 - $(elapsed) ))
[ $LEFT -lt 60 ] && LEFT=60
if [ "$CPU_ONLY" = "1" ]; then
    BENCH_ARGS=(--device cpu --size 160 --batch 8 --iters 2 --images 24 --workers 2 --loader-batches 2)
else
    BENCH_ARGS=(--device cuda --size 640 --batch 64 --iters 20 --images 128 --workers 4 --loader-batches 12)
fi
PYTHONUNBUFFERED=1 timeout "$LEFT" "$RUN" tools/device_bench.py "${BENCH_ARGS[@]}" >"$WORK/bench.txt" 2>&1
RC=$?
cat "$WORK/bench.txt" >>"$LOG"
while IFS='|' read -r _ stage value note; do
    row "bench: $stage" "$value" "$note"
done < <(grep '^BENCH|' "$WORK/bench.txt")
if [ $RC -eq 124 ]; then
    row bench FAILED "timed out after ${LEFT}s (rows above are the stages that finished)"
elif ! grep -q '^BENCH|' "$WORK/bench.txt"; then
    row bench FAILED "rc $RC, no result: $(tail -1 "$WORK/bench.txt" | cut -c1-160)"
fi

# ---------------------------------------------------------------- table
{
    echo
    echo "detaug device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed)s, $REV"
    echo
    echo "| stage | result | note |"
    echo "| --- | --- | --- |"
    printf '%s\n' "${ROWS[@]}"
} | tee "$DEST/device_check_table.md"
rm -rf "$WORK"
printf '%s\n' "${ROWS[@]}" | grep -q '| FAILED |' && exit 1
exit 0
