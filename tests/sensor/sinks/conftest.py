from __future__ import annotations

from typing import Any

import pytest

from tests.sensor.formats._samples import sample


@pytest.fixture
def finding() -> dict[str, Any]:
    return sample()
