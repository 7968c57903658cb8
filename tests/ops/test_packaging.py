"""The package metadata is in the current form, so installing prints no setuptools banner."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


def test_the_license_is_an_spdx_expression_with_its_file_shipped() -> None:
    # A `{ text = ... }` table makes setuptools (>= 77) print its deprecation banner on every
    # build, three times per `make run` on a fresh clone.
    project = _project()
    assert project["license"] == "MIT"
    license_files = project["license-files"]
    assert isinstance(license_files, list)
    assert license_files
    assert all((ROOT / name).is_file() for name in license_files)
    classifiers = project.get("classifiers", [])
    assert isinstance(classifiers, list)
    assert not [c for c in classifiers if str(c).startswith("License ::")]


def test_the_build_backend_is_pinned_to_a_setuptools_that_reads_spdx_licenses() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        requires = tomllib.load(file)["build-system"]["requires"]
    (pin,) = [item for item in requires if item.startswith("setuptools")]
    major = int(pin.split("==")[1].split(".")[0])
    assert major >= 77


def test_the_container_build_copies_every_file_the_package_metadata_names() -> None:
    # A license file missing from the build context makes setuptools print its banner again.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copied = {
        name
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for name in line.split()[1:-1]
    }
    project = _project()
    license_files = project["license-files"]
    assert isinstance(license_files, list)
    assert {"pyproject.toml", str(project["readme"]), *license_files} <= copied
