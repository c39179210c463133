#!/usr/bin/env bash
# The harness's pytest suite (ctest LoaderLab.pytest). Exit 77 (skipped) without python3-torch.
py="${LV_PYTHON:-/usr/bin/python3}"
"$py" -c 'import torch' 2>/dev/null || { echo "skipped: $py has no torch (apt-get install python3-torch)"; exit 77; }
exec "$py" -m pytest -q -p no:cacheprovider "$(dirname "$0")"
