"""TCP copy: Layotto's traffic dump. While switched on, l8 copies the raw bytes its clients send
(and optionally what it answers) into dump files, in sampling windows, held back by CPU and memory
fuses, within file size and count caps (policy.py, copier.py, protocol.py, dumpfile.py); ``l8
tcpcopy replay`` sends a dump's requests to a target again (replay.py)."""

from __future__ import annotations

from mesh.tcpcopy.copier import TcpCopy
from mesh.tcpcopy.policy import CopyPolicy, TcpCopySettings, copy_requested, parse_policy

__all__ = ["CopyPolicy", "TcpCopy", "TcpCopySettings", "copy_requested", "parse_policy"]
