"""Sans-I/O core of the conversation protocol: typed events, parsing, the state machine.

Standard library only: no asyncio, no sockets, no Qt (DESIGN.md, "Layers").
"""

from voicedesk.protocol.errors import DisconnectDetails, DisconnectReason
from voicedesk.protocol.formats import AudioFormat, Encoding, parse_audio_format
from voicedesk.protocol.machine import ConversationCore, Mode, Status

__all__ = [
    "AudioFormat",
    "ConversationCore",
    "DisconnectDetails",
    "DisconnectReason",
    "Encoding",
    "Mode",
    "Status",
    "parse_audio_format",
]
