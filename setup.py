"""Builds and installs the Python package entity_db: `pip install --no-build-isolation .`

The extension entity_db._core is built by the project's own CMake build (target entity_python)
for the interpreter running this script; the pure-Python modules come from python/entity_db.
Nothing is fetched: the build needs only the Debian packages scripts/install-deps installs.
"""

import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


def project_version() -> str:
    for line in (ROOT / "CMakeLists.txt").read_text().splitlines():
        if line.startswith("project(entity VERSION"):
            return line.split("VERSION")[1].split()[0]
    return "0.0.0"


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build_dir = pathlib.Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        jobs = os.environ.get("ENTITY_JOBS", str(os.cpu_count() or 2))
        subprocess.run(
            ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
             "-DENTITY_BUILD_TESTS=OFF", "-DENTITY_BUILD_TOOLS=OFF", "-DENTITY_PYTHON=ON",
             f"-DPython_EXECUTABLE={sys.executable}"],
            check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs, "--target", "entity_python"],
                       check=True)
        built = next((build_dir / "python" / "entity_db").glob("_core*.so"))
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


# setuptools' own scratch (build/, *.egg-info) stays out of the way of the CMake build tree.
(ROOT / "build" / "pip").mkdir(parents=True, exist_ok=True)

setup(
    name="entity_db",
    version=project_version(),
    description="An agent's memory on SQLite or PostgreSQL: asyncio-native, with a blocking twin "
                "of every call",
    long_description=(ROOT / "python" / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=["entity_db"],
    package_dir={"entity_db": "python/entity_db"},
    ext_modules=[CMakeExtension("entity_db._core")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
    options={"build": {"build_base": "build/pip"}, "egg_info": {"egg_base": "build/pip"}},
)
