"""Builds lora_verify._core with CMake for `pip install .` and `python3 -m build` (see
pyproject.toml): only the module's target, without tests or fuzzers, portable (LV_NATIVE
off). LV_BUILD_DIR keeps the CMake build between runs (default: a fresh temporary one);
LV_BUILD_JOBS sets the parallel jobs (default: the CPU count)."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent
VERSION = re.search(r"project\(lora_verify VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)


class CMakeBuild(build_ext):
    """Configures and builds the CMake target lora_verify_py, then copies the module to
    where setuptools packs it."""

    def build_extension(self, ext):
        build_dir = os.environ.get("LV_BUILD_DIR") or tempfile.mkdtemp(prefix="lora-verify-pip-")
        jobs = os.environ.get("LV_BUILD_JOBS") or str(os.cpu_count() or 2)
        configure = [
            "cmake", "-S", str(ROOT), "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
            "-DLV_PYTHON=ON", "-DLV_BUILD_TESTS=OFF", "-DLV_BUILD_FUZZERS=OFF", "-DLV_BUILD_CLI=OFF", "-DLV_NATIVE=OFF",
            f"-DPython_EXECUTABLE={sys.executable}",
        ]
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", build_dir, "--target", "lora_verify_py", "-j", jobs], check=True)
        built = next((pathlib.Path(build_dir) / "python" / "lora_verify").glob("_core*.so"))
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)
        if not os.environ.get("LV_BUILD_DIR"):
            shutil.rmtree(build_dir, ignore_errors=True)


# setuptools' own build files (and the egg-info) under build/, beside the CMake builds.
BUILD_BASE = os.path.join("build", "setuptools")
os.makedirs(BUILD_BASE, exist_ok=True)

setup(
    version=VERSION,
    options={"build": {"build_base": BUILD_BASE}, "egg_info": {"egg_base": BUILD_BASE}},
    ext_modules=[Extension("lora_verify._core", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
