"""The emulator's own virtualenv, created on first use: ministack pins ``botocore`` to one exact version,
so it cannot share the project's environment."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
REQUIREMENTS: Final = Path(__file__).with_name("emulator-requirements.txt")
DEFAULT_VENV: Final = ROOT / ".venv-ministack"
_STAMP: Final = ".requirements.sha256"


def emulator_python(venv: Path = DEFAULT_VENV) -> Path:
    """The interpreter of the emulator's virtualenv, creating or updating the virtualenv when
    ``emulator-requirements.txt`` changed since it was last installed."""
    python = venv / "bin" / "python"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = venv / _STAMP
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == digest:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    stamp.write_text(digest, encoding="utf-8")
    return python


if __name__ == "__main__":
    print(emulator_python())
