"""Every test run keeps its inventory and caches out of the user's home."""

from __future__ import annotations

import os
import tempfile

_state = tempfile.mkdtemp(prefix="shadowai-test-state-")
os.environ.setdefault("SHADOWAI_STATE_DIR", _state)
