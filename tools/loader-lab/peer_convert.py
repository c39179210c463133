"""Times sd-scripts' own converter (networks/convert_flux_lora.py, the steps of its main with
--src sd-scripts --dst ai-toolkit: convert_sd_scripts_to_ai_toolkit, the clone of every tensor,
save) on one file, in process, for scripts/bench-peer.sh. Loading is not timed: the safetensors
library sd-scripts uses maps the file, and Debian has no python3-safetensors, so the harness's
own reader stands in (a copy of `cp`'s cost is added by the script instead). Saving uses the
harness's writer. The checkout stays outside this repository.

usage: python3 tools/loader-lab/peer_convert.py SD_SCRIPTS_DIR SRC DST  → prints seconds"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import safetensors_io  # noqa: E402

safetensors_io.install()  # Debian has no python3-safetensors: the harness's reader/writer

from lab.apps import sdscripts  # noqa: E402


def main():
    app_dir, src, dst = sys.argv[1:4]
    sdscripts.setup(os.path.abspath(app_dir))
    mod = sdscripts.M.mod
    state_dict = safetensors_io.load_file(src)
    metadata = safetensors_io.read_metadata(src)
    t0 = time.perf_counter()
    state_dict = mod.convert_sd_scripts_to_ai_toolkit(state_dict)
    state_dict = {k: v.detach().clone() for k, v in state_dict.items()}
    safetensors_io.save_file(state_dict, dst, metadata or None)
    print(f"{time.perf_counter() - t0:.3f}")


if __name__ == "__main__":
    main()
