#!/usr/bin/env bash
# Create the virtual environments of the third-party tools our exports are checked against
# (tests/sdk/exports/test_interop.py), apart from the project's venv:
#
#   robomimic  -> $ROOT/robomimic  (Python 3.11): robomimic 0.3.0 without its dependencies,
#                 plus the numpy and h5py the project pins. Enough for
#                 robomimic/scripts/get_dataset_info.py, which imports only h5py and numpy.
#                 With --with-torch also torch 2.13.0 (CPU) and the few packages
#                 robomimic.utils.dataset.SequenceDataset imports, to load the file in training.
#   lerobot    -> $ROOT/lerobot    (Python 3.12): lerobot 0.6.1, the newest release on PyPI
#                 (docs/exports.md was checked against the source at 0.6.2), with its
#                 dependencies (a CUDA build of torch, several GB); only with --lerobot.
#
# Then run the interop tests with the printed variables, e.g.
#   PG_ROBOMIMIC_PYTHON=/work/venvs/robomimic/bin/python .venv/bin/pytest -m slow \
#       tests/sdk/exports/test_interop.py
#
# Usage: scripts/make_interop_venvs.sh [--with-torch] [--lerobot]   (ROOT=/work/venvs by default)
set -euo pipefail

ROOT="${ROOT:-/work/venvs}"
PY311="${PY311:-$(ls -d /root/.pyenv/versions/3.11*/bin/python 2>/dev/null | tail -1 || true)}"
PY312="${PY312:-$(ls -d /root/.pyenv/versions/3.12*/bin/python 2>/dev/null | tail -1 || true)}"
PY311="${PY311:-python3.11}"
PY312="${PY312:-python3.12}"
WITH_TORCH=0
LEROBOT=0
for arg in "$@"; do
  case "$arg" in
    --with-torch) WITH_TORCH=1 ;;
    --lerobot) LEROBOT=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

mkdir -p "$ROOT"

# robomimic 0.3.0: the release get_dataset_info.py and SequenceDataset were read at.
"$PY311" -m venv "$ROOT/robomimic"
"$ROOT/robomimic/bin/pip" install -q --no-deps robomimic==0.3.0
"$ROOT/robomimic/bin/pip" install -q numpy==2.4.6 h5py==3.16.0
if [ "$WITH_TORCH" = 1 ]; then
  # torch 2.13.0 for Python 3.11 is a CPU wheel on this machine's disk (no download).
  "$ROOT/robomimic/bin/pip" install -q torch==2.13.0
  "$ROOT/robomimic/bin/pip" install -q tqdm==4.67.1 termcolor==3.1.0 psutil==7.0.0 \
    imageio==2.37.0
fi
echo "PG_ROBOMIMIC_PYTHON=$ROOT/robomimic/bin/python"

if [ "$LEROBOT" = 1 ]; then
  "$PY312" -m venv "$ROOT/lerobot"
  "$ROOT/lerobot/bin/pip" install -q 'lerobot[dataset]==0.6.1'
  echo "PG_LEROBOT_PYTHON=$ROOT/lerobot/bin/python"
fi
