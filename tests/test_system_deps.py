"""The OCR system packages: the Makefile checks them (installing with apt-get as root, else naming them) and the
Dockerfile installs the same list."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def system_packages() -> list[str]:
    match = re.search(r"^SYSTEM_PACKAGES := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile names its system packages"
    return match.group(1).split()


def test_the_makefile_names_the_packages_when_it_cannot_install_them(tmp_path):
    """No tesseract on PATH and no apt-get (or not root): make stops with exit 2 and names every package."""
    proc = subprocess.run(["/usr/bin/make", "-s", "-C", str(ROOT), "system-deps"], capture_output=True, text=True,
                          env={"PATH": str(tmp_path)}, check=False)
    assert proc.returncode != 0
    assert all(p in proc.stderr for p in system_packages()), proc.stderr
    assert "apt-get install" in proc.stderr


def test_the_makefile_is_content_where_the_packages_are_present():
    if subprocess.run(["sh", "-c", "command -v tesseract"], capture_output=True).returncode != 0:
        return  # a machine without them: the test above covers the message
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "system-deps"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_the_dockerfile_installs_the_same_packages():
    docker = (ROOT / "Dockerfile").read_text()
    runtime = docker[docker.rindex("FROM ") :]  # the image that runs the service
    assert all(re.search(rf"\b{re.escape(p)}\b", runtime) for p in system_packages())
