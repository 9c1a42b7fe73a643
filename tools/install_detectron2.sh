#!/usr/bin/env bash
# Install Detectron2's Python sources into $PYTHON's environment, unless a detectron2 is importable.
#
# Detectron2 is not on PyPI under its own name. `sal-detectron2==0.7.2` is a wheel of upstream
# detectron2 (commit a59f0563) with a `_C` extension built for CPython 3.10 only; on other Pythons
# it is installed as plain files (tagged cp310, so pip is told the target version) and `_C` is
# dropped: Faster R-CNN and COCOEvaluator work without it (no rotated boxes, no deformable conv).
# The wheel also ships a top-level `tools` package (detectron2's scripts) that would shadow ours;
# it is not copied.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if "$PYTHON" -c "import detectron2" 2>/dev/null; then
  echo "detectron2 already importable ($("$PYTHON" -c 'import detectron2, os; print(os.path.dirname(detectron2.__file__))')): keeping it"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m pip install -q --no-deps --only-binary=:all: --python-version 3.10 --target "$tmp" \
  "sal-detectron2==0.7.2" 2>&1 | { grep -v "is ignored" || true; }
test -d "$tmp/detectron2" || { echo "error: sal-detectron2 wheel did not install" >&2; exit 1; }
site=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ "$("$PYTHON" -c 'import sys; print(sys.version_info[:2] == (3, 10))')" != "True" ]; then
  rm -f "$tmp"/detectron2/_C*.so
fi
rm -rf "$site/detectron2" "$site"/sal_detectron2-*.dist-info
cp -r "$tmp/detectron2" "$tmp"/sal_detectron2-*.dist-info "$site/"
"$PYTHON" -c "import detectron2; print('detectron2', detectron2.__version__, 'installed from sal-detectron2')"
