"""The asyncio conversation: auth, websocket I/O, tools and audio around the protocol core."""

from voicedesk.session.audio_port import AudioPort, AudioSink, AudioStartError
from voicedesk.session.conversation import Conversation, ConversationOptions
from voicedesk.session.events import (
    AudioUnavailable,
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
)

__all__ = [
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
