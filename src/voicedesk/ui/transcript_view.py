"""The live transcript: one paragraph per :class:`~voicedesk.session.transcript.TranscriptLine`.

Lines are redrawn one at a time as the model reports them (streamed agent text
changes the last paragraph, it does not rebuild the document). Tentative text is
dimmed; a corrected agent line is marked; the agent's reasoning (shown only when the
setting asks for it) is dimmed and in italics.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from voicedesk.session.transcript import LineKind, Speaker, Transcript, TranscriptLine

_SPEAKER_COLORS = {
    Speaker.USER: "#2563EB",
    Speaker.AGENT: "#8B5CF6",
    Speaker.TOOL: "#0D9488",
    Speaker.THINKING: None,  # the palette's dimmed text
    Speaker.NOTICE: None,
    Speaker.ERROR: "#DC2626",
}


class TranscriptView(QTextBrowser):
    """A read-only view of a :class:`Transcript`; ``toPlainText()`` is the conversation.
    ``lineChanged(index, added)``: the model's line was drawn (for the window's orb and
    announcements)."""

    lineChanged = Signal(int, bool)

    def __init__(self, transcript: Transcript, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transcriptView")
        self.setAccessibleName("transcriptView")
        self.setAccessibleDescription("The conversation so far")
        self.setOpenLinks(False)
        self.setPlaceholderText("The conversation will appear here.")
        self._transcript = transcript
        self._blocks = 0
        self._warm_fonts()
        transcript.set_listener(self._on_line)
        for index in range(len(transcript.lines)):
            self._on_line(index, True)

    def _warm_fonts(self) -> None:
        """Lay out a throw-away paragraph in each face now: the first line of a
        conversation would otherwise pay for font loading and text shaping (~35 ms on
        the GUI thread) in the middle of a conversation."""
        scratch = QTextDocument()
        scratch.setDefaultFont(self.font())
        cursor = QTextCursor(scratch)
        for bold, italic in ((True, False), (False, True), (False, False)):
            face = QTextCharFormat()
            face.setFontWeight(QFont.Weight.Bold if bold else QFont.Weight.Normal)
            face.setFontItalic(italic)
            cursor.insertText("Agent: Hello, how can I help? …", face)
        scratch.setTextWidth(400)
        scratch.size()

    def _on_line(self, index: int, added: bool) -> None:
        line = self._transcript.lines[index]
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.document())
        if added:
            cursor.movePosition(QTextCursor.MoveOperation.End)
            if self._blocks:
                cursor.insertBlock()
            self._blocks += 1
        else:
            block = self.document().findBlockByNumber(index)
            cursor.setPosition(block.position())
            cursor.movePosition(
                QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor
            )
            cursor.removeSelectedText()
        self._write(cursor, line)
        if at_bottom:
            bar.setValue(bar.maximum())
        self.lineChanged.emit(index, added)

    def set_palette(self, palette: object) -> None:
        self.viewport().update()

    def scroll_to_latest(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _write(self, cursor: QTextCursor, line: TranscriptLine) -> None:
        dim = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        name = QTextCharFormat()
        name.setFontWeight(QFont.Weight.Bold)
        color = _SPEAKER_COLORS[line.speaker]
        name.setForeground(QColor(color) if color else dim)
        cursor.insertText(f"{line.speaker.value}: ", name)
        body = QTextCharFormat()
        if line.tentative or line.kind is LineKind.REASONING:
            body.setForeground(dim)
            body.setFontItalic(True)
        elif line.speaker is Speaker.NOTICE:
            body.setForeground(dim)
        elif line.speaker is Speaker.ERROR:
            body.setForeground(QColor(_SPEAKER_COLORS[Speaker.ERROR]))
        # One paragraph per line: a new line inside the text must not start a block.
        cursor.insertText(line.text.replace("\n", "\u2028"), body)
        if line.corrected:
            note = QTextCharFormat()
            note.setForeground(dim)
            cursor.insertText("  (cut off)", note)
