"""The asyncio conversation: auth, the transport, tools and audio around the protocol core."""

from voicedesk.audio.port import AudioPort, AudioSink, AudioStartError
from voicedesk.session.conversation import Approver, Conversation, ConversationOptions
from voicedesk.session.events import (
    AgentTypingChanged,
    AudioNotice,
    AudioUnavailable,
    Notice,
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
    TransportNotice,
    UserTextSent,
)
from voicedesk.session.transport import (
    Transport,
    TransportClosed,
    TransportError,
    WebSocketTransport,
)

__all__ = [
    "AgentTypingChanged",
    "Approver",
    "AudioNotice",
    "AudioPort",
    "AudioSink",
    "AudioStartError",
    "AudioUnavailable",
    "Conversation",
    "ConversationOptions",
    "Notice",
    "SessionEvent",
    "ToolCallFinished",
    "ToolCallStarted",
    "Transport",
    "TransportClosed",
    "TransportError",
    "TransportNotice",
    "UserTextSent",
    "WebSocketTransport",
]
