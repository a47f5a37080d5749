"""The build of mesostw, as ``/version`` and ``/state`` report it."""

from __future__ import annotations

import time
from typing import Any

from mesostw import __version__

BUILD_TIME = time.time()


def build_info() -> dict[str, Any]:
    """The ``/version`` body (also part of ``/state``)."""
    return {
        "version": __version__,
        "build_date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(BUILD_TIME)),
        "build_time": BUILD_TIME,
        "build_user": "mesostw",
    }
