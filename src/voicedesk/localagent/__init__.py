"""A local agent server on loopback: the ``--demo`` default, the tests' and benchmarks' peer."""

from voicedesk.localagent.server import AgentConfig, AgentSession, LocalAgentServer
from voicedesk.localagent.voice import VoiceKind

__all__ = ["AgentConfig", "AgentSession", "LocalAgentServer", "VoiceKind"]
