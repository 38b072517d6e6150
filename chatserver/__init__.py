"""Hearth: real-time anonymous peer-support chat. See docs/architecture.md.

The modules in :data:`NATIVE` are also compiled to C with mypyc (``setup.py``;
``make`` does it before ``run``, ``test``, ``bench`` and ``loadtest``): the same
source, run without the interpreter's dispatch, for about 11 % less CPU a
delivered message (docs/performance.md). A build older than a source of the
package, or ``HEARTH_PURE=1``, runs every module from its source instead
(:mod:`matching.native`, which ``matching``'s own compiled modules obey too).
"""

from __future__ import annotations

from pathlib import Path

from matching.native import Compiled

# The modules a delivered message, a cross-node event or a pairing runs through.
NATIVE = ("protocol", "connection", "endpoint", "talk", "rooms", "seats", "contact", "risk",
          "metrics", "node", "relay", "relay_redis", "crossnode", "coalesce", "moderation",
          "home", "pairing", "seal")

HERE = Path(__file__).resolve().parent
_COMPILED = Compiled(__name__, HERE, NATIVE)
compiled = _COMPILED.files  # the NATIVE modules with a compiled file here, and its path
stale = _COMPILED.stale  # those older than a source of the package
_COMPILED.choose()
