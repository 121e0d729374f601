"""The asyncio conversation: auth, websocket I/O, tools and audio around the protocol core."""

from voicedesk.audio.port import AudioPort, AudioSink, AudioStartError
from voicedesk.session.conversation import Conversation, ConversationOptions
from voicedesk.session.events import (
    AudioNotice,
    AudioUnavailable,
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
)

__all__ = [
    "AudioNotice",
    "AudioPort",
    "AudioSink",
    "AudioStartError",
    "AudioUnavailable",
    "Conversation",
    "ConversationOptions",
    "SessionEvent",
    "ToolCallFinished",
    "ToolCallStarted",
]
