"""An emulator of the Tencent Cloud IVC API (``iss`` 2023-05-17) for tests and local development.

See docs/cloud-emulator.md, and docs/relay-protocol.md for the gateway relay at ``/relay``.
``python -m sim.cloud --listen 127.0.0.1:0 --state-dir DIR --secret-id ID --secret-key KEY`` runs
it as a process; :class:`CloudEmulator` runs it in-process.
"""

from .emulator import CloudEmulator
from .faults import Fault
from .relay import GatewayRelay
from .reports import ChannelQuery, ChannelSource, ReportedChannel
from .state import ActionForwarder, CallRecord, ForwardedCall
from .uploads import ReceivedUpload

__all__ = [
    "ActionForwarder",
    "CallRecord",
    "ChannelQuery",
    "ChannelSource",
    "CloudEmulator",
    "Fault",
    "ForwardedCall",
    "GatewayRelay",
    "ReceivedUpload",
    "ReportedChannel",
]
