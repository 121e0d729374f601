"""A conversation the network dropped can be continued: the window offers it, the new
conversation tells the agent the earlier turns, the transcript reads as one thread."""

from __future__ import annotations

import pytest

from tests.gui.conftest import Gui, screenshot, until

pytestmark = [pytest.mark.gui]


def test_a_dropped_conversation_is_continued_with_its_turns(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w, c = shell.window, shell.controller

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: c.status == "connected", "connected")
        assert not w.continue_button.isVisible()
        w.message_input.setPlainText("my name is Ada")
        w.send_message_button.click()
        server = c.launcher.demo_server
        assert server is not None
        first = server.sessions[0]
        await first.wait_for(lambda s: "my name is Ada" in s.user_messages)
        await until(lambda: w.transcript_view.toPlainText().count("Agent:") >= 2, "an answer")
        first.drop()  # the network fails: no close frame
        await until(lambda: c.status == "disconnected", "dropped")
        assert "connection to the agent was lost" in w.banner.text()
        assert w.continue_button.isVisible()
        screenshot(w, "dropped-continue")

        w.continue_button.click()
        await until(lambda: c.status == "connected", "connected again")
        second = server.sessions[1]
        await second.wait_for(lambda s: bool(s.contextual_updates))
        (context,) = second.contextual_updates
        assert context.startswith("Earlier in this conversation (conversation conv_local_")
        assert "User: my name is Ada" in context
        assert "Agent: Hi there" in context
        text = w.transcript_view.toPlainText()
        assert "my name is Ada" in text, "the earlier turns stay on screen"
        assert "Continuing the conversation that dropped" in text
        assert not w.continue_button.isVisible()

        # Ended by the user: nothing to continue.
        w.end_button.click()
        await until(lambda: c.status == "disconnected", "ended")
        assert not w.continue_button.isVisible()

    gui.run(flow(), timeout=40)
