"""One import namespace, several rooms.

The shared core lives in src/ctloop; each room's Python code is mounted under it, so that
components/train is imported as ``ctloop.components.train`` and services/drift_watcher as
``ctloop.services.drift_watcher``. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOMS = {
    "ctloop": "src/ctloop",
    "ctloop.components": "components",
    "ctloop.services": "services",
    "ctloop.pipelines": "pipelines",
}

packages = []
for package, folder in ROOMS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOMS, package_data={"ctloop": ["py.typed"]})
