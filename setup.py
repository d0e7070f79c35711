"""One import namespace, several rooms.

The shared core lives in src/ctloop; each room's Python code is mounted under it, so that
components/train is imported as ``ctloop.components.train``, services/drift_watcher as
``ctloop.services.drift_watcher`` and local/ (the local world: CLI, stack, demo) as ``ctloop.local``.
Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOMS = {
    "ctloop": "src/ctloop",
    "ctloop.components": "components",
    "ctloop.services": "services",
    "ctloop.pipelines": "pipelines",
    "ctloop.local": "local",
    "ctloop.monitoring": "monitoring",
}
# Files the code reads through its package rather than through the repository's layout.
DATA = {
    "ctloop.pipelines": ["compiled/*.yaml", "compiled/kubernetes/*.yaml"],  # what `pipeline run` submits
    "ctloop.monitoring": ["rules/*.yaml", "dashboards/*.json"],  # what the local stack's Prometheus loads
}

# A room whose folder is absent is left out: an image build copies only the rooms the images run, never
# local/ (the development world) nor monitoring/ (read by the local stack; the chart carries its own copy), so an
# image's wheel has neither.
HERE = Path(__file__).resolve().parent
ROOMS = {package: folder for package, folder in ROOMS.items() if (HERE / folder).is_dir()}

packages = []
for package, folder in ROOMS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

# The `ctloop` command lives in ctloop.local, so it exists only where that room does (pyproject.toml lists
# "scripts" as dynamic for this reason); an image would otherwise carry a script whose module it lacks.
scripts = ["ctloop = ctloop.local.cli:main"] if "ctloop.local" in ROOMS else []

setup(
    packages=packages,
    package_dir=ROOMS,
    package_data={package: globs for package, globs in DATA.items() if package in ROOMS},
    entry_points={"console_scripts": scripts},
)
