"""The transcript as a conversation: bubbles for you and the agent, Markdown with links
that open in the browser, a soft cursor while a reply streams, dimmed shimmering
tentative speech, corrections in place, cards for notes and errors, tool chips that
expand, the time on hover, copy, and the jump to the latest message. The view is driven
through its model (:class:`Transcript`) with the protocol's events, as in the app; the
tool chip with the local demo agent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import Gui, until
from voicedesk.protocol.events import (
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    TentativeUserTranscript,
    UserTranscript,
)
from voicedesk.session.transcript import Transcript
from voicedesk.ui.transcript_view import CUT_OFF, STREAM_CURSOR, TranscriptView

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]

REPLY = "It is **sunny** in Paris; see [the forecast](https://example.org/paris)."


class _Browser(QObject):
    """Stands in for the system's browser: the URLs the desktop was asked to open."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


@pytest.fixture
def browser() -> Iterator[_Browser]:
    handler = _Browser()
    QDesktopServices.setUrlHandler("https", handler, "open")
    try:
        yield handler
    finally:
        QDesktopServices.unsetUrlHandler("https")


@pytest.fixture
def view(qapp: QApplication) -> Iterator[tuple[Transcript, TranscriptView]]:
    transcript = Transcript()
    widget = TranscriptView(transcript)
    widget.resize(520, 360)
    widget.show()
    try:
        yield transcript, widget
    finally:
        transcript.set_listener(None)
        widget.close()
        widget.deleteLater()


def test_bubbles_stream_markdown_and_correct_in_place(
    view: tuple[Transcript, TranscriptView], browser: _Browser
) -> None:
    transcript, widget = view
    assert widget.placeholder.isVisible()

    # Tentative speech: your bubble, dimmed and shimmering; the final text replaces it.
    transcript.apply(TentativeUserTranscript("what's the wea", 1))
    assert len(widget.rows) == 1
    mine = widget.rows[0]
    assert mine.who == "user"
    assert "italic" in mine.label.styleSheet()
    assert widget.shimmering
    before = mine.label.styleSheet()
    QTest.qWait(300)
    assert mine.label.styleSheet() != before, "the tentative text shimmers"
    transcript.apply(UserTranscript("what's the weather?", 1))
    assert len(widget.rows) == 1
    assert mine.label.text() == "what's the weather?"
    assert "italic" not in mine.label.styleSheet()
    assert not widget.shimmering, "no timer once nothing is tentative"
    assert not widget.placeholder.isVisible()

    # A streamed reply: a soft cursor until it stops, Markdown in the agent's bubble.
    transcript.apply(AgentChatResponsePart("", "start", 2))
    transcript.apply(AgentChatResponsePart(REPLY, "delta", 2))
    reply = widget.rows[1]
    assert reply.who == "agent"
    assert reply.label.text().endswith(STREAM_CURSOR)
    assert reply.label.textFormat() == Qt.TextFormat.MarkdownText
    transcript.apply(AgentChatResponsePart("", "stop", 2))
    transcript.apply(AgentResponse(REPLY, 2))
    assert len(widget.rows) == 2
    assert not reply.label.text().endswith(STREAM_CURSOR)
    assert "Agent: It is **sunny**" in widget.toPlainText()

    # Its link opens in the browser, by keyboard (Tab to the link, Enter).
    reply.label.setFocus()
    QTest.keyClick(reply.label, Qt.Key.Key_Tab)
    QTest.keyClick(reply.label, Qt.Key.Key_Return)
    assert browser.opened == ["https://example.org/paris"]

    # Interrupted: the bubble says what was actually heard, in place.
    transcript.apply(AgentResponseCorrection(REPLY, "It is **sunny**", 2))
    assert len(widget.rows) == 2
    assert reply.label.text() == "It is **sunny**"
    assert reply.note.isVisibleTo(reply)
    assert reply.note.text() == CUT_OFF
    assert widget.toPlainText().endswith(f"Agent: It is **sunny**  {CUT_OFF}")


def test_cards_time_copy_and_jump_to_latest(view: tuple[Transcript, TranscriptView]) -> None:
    transcript, widget = view
    transcript.add_notice("New conversation.")
    transcript.add_error("The connection dropped.")
    notice, error = widget.rows
    assert notice.frame.objectName() == "noticeCard"
    assert error.frame.objectName() == "errorCard"
    assert widget.toPlainText() == "Note: New conversation.\nError: The connection dropped."
    assert error.label.text() == "Error: The connection dropped."
    # When it came: on hover.
    assert " at " in notice.toolTip()
    assert notice.toolTip().startswith("A note at ")

    # Copy a message from its menu.
    menu = widget.row_menu(error)
    copy = next(a for a in menu.actions() if a.objectName() == "copyMessageAction")
    copy.trigger()
    assert QGuiApplication.clipboard().text() == "The connection dropped."

    # Many lines: the view follows the latest until you scroll up.
    for n in range(40):
        transcript.add_user_message(f"message {n}")
    QTest.qWait(50)
    bar = widget.verticalScrollBar()
    assert bar.maximum() > 0
    assert widget.at_latest
    assert not widget.jump_button.isVisible()
    bar.setValue(0)
    assert widget.jump_button.isVisible(), "scrolled up: the jump button shows"
    transcript.add_user_message("one more")
    QTest.qWait(50)
    assert bar.value() == 0, "a new line does not pull you down while you read"
    widget.jump_button.click()
    QTest.qWait(50)
    assert widget.at_latest
    assert not widget.jump_button.isVisible()
    transcript.add_user_message("and another")
    QTest.qWait(50)
    assert widget.at_latest, "at the latest, the view follows"


def test_a_tool_call_is_a_chip_that_expands(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        w.message_input.setPlainText("what's my battery?")
        w.send_message_button.click()
        await until(lambda: "Tool: getBatteryLevel()" in w.transcript_view.toPlainText(), "tool")
        chip = next(r for r in w.transcript_view.rows if r.who == "tool")
        assert chip.frame.objectName() == "toolChip"
        assert chip.chip.text().startswith("getBatteryLevel · ")
        assert not chip.label.isVisibleTo(chip), "collapsed: the name and the state"
        chip.chip.click()
        assert chip.label.isVisibleTo(chip)
        assert "getBatteryLevel()" in chip.label.text()
        assert "On this computer" in chip.label.text()
        chip.chip.click()
        assert not chip.label.isVisibleTo(chip)

        # The thumbs sit under the agent's latest reply, nothing between.
        await until(lambda: w.feedback_row.isVisible(), "the thumbs")
        await until(lambda: w.transcript_view.rows[-1].who == "agent", "the reply")
        latest = w.transcript_view.rows[-1]
        below = [r for r in w.transcript_view.rows if r.y() > latest.y()]
        assert not below
        assert w.feedback_row.parentWidget() is latest.parentWidget()
        assert w.feedback_row.y() >= latest.y() + latest.height()
        w.end_button.click()
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")

    gui.run(flow())
