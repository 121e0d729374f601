"""The live transcript as a conversation: one row per
:class:`~voicedesk.session.transcript.TranscriptLine`, redrawn one at a time as the
model reports them (streamed agent text changes its own bubble, nothing else).

- you and the agent speak in bubbles (yours on the right, in the accent colour); the
  agent's text is Markdown, its links open in the browser;
- a reply still streaming ends with a soft cursor; tentative speech is dimmed and
  shimmers until it is final; a correction rewrites its bubble in place ("cut off");
- tools (client, the agent's own, MCP, with their approval state) are compact chips
  that expand to their parameters and result;
- notices and errors are inline cards; the agent's reasoning (when the setting shows
  it) is a dimmed line;
- the window's thumbs (:meth:`TranscriptView.set_reply_footer`) sit under the agent's
  latest reply, its approval cards (:meth:`TranscriptView.set_tail`) after the latest
  row;
- hovering a row shows when it came; its context menu copies it; a "Jump to latest"
  button appears when you have scrolled up.

:meth:`TranscriptView.toPlainText` is the conversation as text ("Agent: …" a line),
what the rows show.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from PySide6.QtCore import QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QResizeEvent,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from voicedesk.session.transcript import (
    LineKind,
    Speaker,
    ToolState,
    Transcript,
    TranscriptLine,
    shorten,
)
from voicedesk.ui import icons, theme

#: The soft cursor at the end of a reply still streaming.
STREAM_CURSOR = "\u258f"
CUT_OFF = "(cut off)"
TOOL_STATE_WORDS = {
    ToolState.RUNNING: "running…",
    ToolState.AWAITING_APPROVAL: "waiting for your approval",
    ToolState.APPROVED: "approved",
    ToolState.DENIED: "denied",
    ToolState.SUCCESS: "done",
    ToolState.FAILURE: "failed",
    ToolState.BLOCKED: "blocked",
    ToolState.NOT_RUN: "not run",
}
TOOL_KIND_WORDS = {
    LineKind.CLIENT_TOOL: "On this computer",
    LineKind.AGENT_TOOL: "The agent's tool",
    LineKind.MCP_TOOL: "MCP tool",
}
#: How far (px) from the bottom still counts as "at the latest".
_AT_BOTTOM_PX = 24
_SHIMMER_MS = 50


class _Row(QWidget):
    """One line of the transcript: a bubble, a chip, a card or a dimmed line."""

    def __init__(self, view: TranscriptView) -> None:
        super().__init__()
        self.setObjectName("transcriptRow")
        self._view = view
        self.line: TranscriptLine | None = None
        self.when = time.time()
        self.expanded = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        self.frame = QFrame()
        self.frame.setObjectName("bubble")
        self.frame.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        inner = QVBoxLayout(self.frame)
        em = self.fontMetrics().height()
        inner.setContentsMargins(em * 2 // 3, em // 3, em * 2 // 3, em // 3)
        inner.setSpacing(2)
        self.chip = QToolButton()
        self.chip.setObjectName("toolChipButton")
        self.chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.chip.setAutoRaise(True)
        self.chip.setCheckable(True)
        self.chip.toggled.connect(self._set_expanded)
        self.chip.hide()
        self.label = QLabel()
        self.label.setObjectName("messageText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByKeyboard
        )
        self.label.setOpenExternalLinks(False)
        self.label.linkActivated.connect(view.open_link)
        self.label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.note = QLabel()
        self.note.setObjectName("messageNote")
        self.note.hide()
        inner.addWidget(self.chip)
        inner.addWidget(self.label)
        inner.addWidget(self.note)
        self.left = layout
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    # ------------------------------------------------------------------ drawing

    @property
    def who(self) -> str:
        return str(self.frame.property("who") or "")

    def show_line(self, line: TranscriptLine) -> None:
        self.line = line
        layout = self.left
        while layout.count():
            layout.takeAt(0)
        who = _who(line)
        self.frame.setObjectName(_FRAME_NAMES.get(who, "bubble"))
        self.frame.setProperty("who", who)
        if who == "user":
            layout.addStretch(1)
            layout.addWidget(self.frame)
        elif who in ("agent", "tool", "thinking"):
            layout.addWidget(self.frame)
            layout.addStretch(1)
        else:
            layout.addWidget(self.frame, 1)
        self.label.setTextFormat(
            Qt.TextFormat.MarkdownText if who == "agent" else Qt.TextFormat.PlainText
        )
        self.chip.setVisible(who == "tool")
        self.note.setVisible(line.corrected)
        self.note.setText(CUT_OFF)
        if who == "tool":
            self._show_tool(line)
        else:
            self.label.setText(self._body(line))
            self.label.setVisible(True)
        self.label.setAccessibleName(f"{line.speaker.value}")
        self.label.setAccessibleDescription(line.text)
        self.setToolTip(f"{_SPEAKER_TITLES[line.speaker]} at {_clock(self.when)}")
        self.restyle()

    def _body(self, line: TranscriptLine) -> str:
        text = line.text
        if line.speaker is Speaker.AGENT and line.kind is LineKind.TEXT and line.tentative:
            text += STREAM_CURSOR  # still streaming
        elif line.speaker is Speaker.ERROR:
            text = f"Error: {text}"
        return text

    def _show_tool(self, line: TranscriptLine) -> None:
        state = TOOL_STATE_WORDS.get(line.state, "") if line.state else ""
        kind = TOOL_KIND_WORDS.get(line.kind, "Tool")
        name = line.text.split("(", 1)[0] if line.kind is LineKind.CLIENT_TOOL else line.text
        self.chip.setText(shorten(f"{name} · {state}" if state else name, 60))
        self.chip.setToolTip(f"{kind}: show the parameters and the result")
        self.chip.setAccessibleName(f"Tool call: {shorten(name, 60)}")
        self.chip.setAccessibleDescription(
            f"{kind}, {state or 'no state'}. Press to show or hide its parameters and result."
        )
        self.label.setText(f"{kind}\n{line.text}")
        self.label.setVisible(self.expanded)

    def _set_expanded(self, on: bool) -> None:
        self.expanded = on
        if self.line is not None and self.who == "tool":
            self.label.setVisible(on)

    def restyle(self, shimmer: float = 0.0) -> None:
        """Colours for the row's kind (and a dimmed, shimmering tentative text:
        ``shimmer`` is the phase, 0..1)."""
        p = self._view.palette_in_use
        line = self.line
        if line is None:
            return
        who = self.who
        color = {
            "user": p.on_accent,
            "error": p.error_text,
            "notice": p.warn_text,
            "thinking": p.muted,
        }.get(who, p.text)
        italic = who == "thinking"
        if line.tentative and who == "user":
            # A dimmed accent: readable, and visibly not final.
            color = _mix(p.on_accent, p.accent, 0.25 + 0.15 * shimmer)
            italic = True
        elif line.tentative and who == "agent" and line.text == "":
            color = p.muted
        self.label.setStyleSheet(
            f"color: {color}; background: transparent;" + (" font-style: italic;" if italic else "")
        )
        if shimmer:
            return  # only the text's colour moves
        note = p.on_accent if who == "user" else p.muted
        self.note.setStyleSheet(f"color: {note}; font-size: small; background: transparent;")
        if who == "tool":
            self.chip.setIcon(icons.icon("tool", p.text))
        self.frame.style().unpolish(self.frame)
        self.frame.style().polish(self.frame)

    def plain(self) -> str:
        line = self.line
        if line is None:
            return ""
        text = line.plain()
        if line.corrected:
            text += f"  {CUT_OFF}"
        return text

    # ------------------------------------------------------------------ menu

    def _menu(self, at: QPoint) -> None:
        menu = self._view.row_menu(self)
        menu.exec(self.mapToGlobal(at))

    def copy(self) -> None:
        if self.line is not None:
            clipboard = QGuiApplication.clipboard()
            clipboard.setText(self.line.text)


_FRAME_NAMES = {
    "user": "bubble",
    "agent": "bubble",
    "tool": "toolChip",
    "notice": "noticeCard",
    "error": "errorCard",
    "thinking": "thinkingLine",
}
_SPEAKER_TITLES = {
    Speaker.USER: "You",
    Speaker.AGENT: "The agent",
    Speaker.TOOL: "A tool",
    Speaker.THINKING: "The agent's reasoning",
    Speaker.NOTICE: "A note",
    Speaker.ERROR: "An error",
}


def _who(line: TranscriptLine) -> str:
    if line.kind is LineKind.REASONING or line.speaker is Speaker.THINKING:
        return "thinking"
    return {
        Speaker.USER: "user",
        Speaker.AGENT: "agent",
        Speaker.TOOL: "tool",
        Speaker.NOTICE: "notice",
        Speaker.ERROR: "error",
    }[line.speaker]


def _clock(when: float) -> str:
    return datetime.fromtimestamp(when).strftime("%H:%M:%S")


def _mix(a: str, b: str, weight_b: float) -> str:
    ca, cb = QColor(a), QColor(b)
    w = min(1.0, max(0.0, weight_b))
    mixed = QColor(
        round(ca.red() * (1 - w) + cb.red() * w),
        round(ca.green() * (1 - w) + cb.green() * w),
        round(ca.blue() * (1 - w) + cb.blue() * w),
    )
    return str(mixed.name())


class TranscriptView(QScrollArea):
    """A read-only view of a :class:`Transcript`. ``lineChanged(index, added)``: the
    model's line was drawn (the window's orb and announcements follow it);
    ``linkOpened(url)``: a link in a reply was opened in the browser."""

    lineChanged = Signal(int, bool)
    linkOpened = Signal(str)

    def __init__(self, transcript: Transcript, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transcriptView")
        self.setAccessibleName("transcriptView")
        self.setAccessibleDescription("The conversation so far")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.palette_in_use = theme.LIGHT
        self._transcript = transcript
        self.rows: list[_Row] = []
        self._list = QWidget()
        self._list.setObjectName("bubbleList")
        self._layout = QVBoxLayout(self._list)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._layout.setSpacing(4)
        self.placeholder = QLabel("The conversation will appear here.")
        self.placeholder.setObjectName("transcriptPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._layout.addWidget(self.placeholder)
        self._layout.addStretch(1)
        self.setWidget(self._list)
        self.jump_button = QToolButton(self.viewport())
        self.jump_button.setObjectName("jumpToLatestButton")
        self.jump_button.setText("Latest")
        self.jump_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.jump_button.setAccessibleName("Jump to latest")
        self.jump_button.setAccessibleDescription("Scroll down to the latest message")
        self.jump_button.setToolTip("Jump to the latest message")
        self.jump_button.clicked.connect(self.scroll_to_latest)
        self.jump_button.hide()
        self._footer: QWidget | None = None
        self._tail: QWidget | None = None
        self._follow = True  # keep the latest row in view (unless the user scrolled up)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range)
        self._shimmer = QTimer(self)
        self._shimmer.setInterval(_SHIMMER_MS)
        self._shimmer.timeout.connect(self._shimmer_tick)
        self._shimmer_started = time.monotonic()
        transcript.set_listener(self._on_line)
        for index in range(len(transcript.lines)):
            self._on_line(index, True)

    # ------------------------------------------------------------------ model

    def _on_line(self, index: int, added: bool) -> None:
        line = self._transcript.lines[index]
        if added or index >= len(self.rows):
            row = _Row(self)
            self.rows.append(row)
            self._layout.insertWidget(self._end(), row)
            self.placeholder.hide()
        row = self.rows[index]
        row.show_line(line)
        self._fit(row)
        if added and row.who == "agent":
            self._place_footer()
        self._refresh_shimmer()
        self.lineChanged.emit(index, added)

    # ------------------------------------------------------------------ public

    def toPlainText(self) -> str:  # the QTextBrowser name the window's tests know
        """The conversation as text, one "Speaker: text" line per row."""
        return "\n".join(row.plain() for row in self.rows)

    def set_reply_footer(self, footer: QWidget) -> None:
        """A widget that stays under the agent's latest reply (the window's thumbs)."""
        self._footer = footer
        self._place_footer()

    def _place_footer(self) -> None:
        footer = self._footer
        if footer is None:
            return
        latest = next((r for r in reversed(self.rows) if r.who == "agent"), None)
        self._layout.removeWidget(footer)
        at = self._layout.indexOf(latest) + 1 if latest is not None else self._end()
        self._layout.insertWidget(at, footer)

    def set_tail(self, tail: QWidget) -> None:
        """A widget that stays after the latest row (the window's approval cards)."""
        self._tail = tail
        self._layout.insertWidget(self._layout.count() - 1, tail)

    def _end(self) -> int:
        """Where a new row goes: after the others, before the tail and the stretch."""
        if self._tail is not None:
            return self._layout.indexOf(self._tail)
        return self._layout.count() - 1

    def set_palette(self, palette: theme.Palette) -> None:
        self.palette_in_use = palette
        self.jump_button.setIcon(icons.icon("down", palette.on_accent))
        for row in self.rows:
            row.restyle()

    def scroll_to_latest(self) -> None:
        self._follow = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
        self.jump_button.hide()

    @property
    def at_latest(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - _AT_BOTTOM_PX

    def row_menu(self, row: _Row) -> QMenu:
        """The context menu of a row (also what a test opens)."""
        menu = QMenu(self)
        menu.setObjectName("messageMenu")
        copy = menu.addAction("Copy message")
        copy.setObjectName("copyMessageAction")
        copy.setIcon(icons.icon("copy", self.palette_in_use.text))
        copy.triggered.connect(row.copy)
        when = menu.addAction(f"Sent at {_clock(row.when)}")
        when.setEnabled(False)
        return menu

    def open_link(self, url: str) -> None:
        """A link in a reply: the browser opens it (never this window)."""
        QDesktopServices.openUrl(QUrl(url))
        self.linkOpened.emit(url)

    # ------------------------------------------------------------------ scrolling

    def _on_scrolled(self, _value: int) -> None:
        self._follow = self.at_latest
        self.jump_button.setVisible(not self._follow)
        self._place_jump()

    def _on_range(self, _low: int, high: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(high)

    def _place_jump(self) -> None:
        hint = self.jump_button.sizeHint()
        port = self.viewport()
        self.jump_button.resize(hint)
        self.jump_button.move(port.width() - hint.width() - 12, port.height() - hint.height() - 8)
        self.jump_button.raise_()

    def _fit(self, row: _Row) -> None:
        """A bubble is as wide as its text, at most four fifths of the view; its text
        gets that exact width, so its wrapped height is exact too (a word-wrapped
        label left to guess its width leaves gaps)."""
        if row.who not in ("user", "agent", "thinking") or not row.label.isVisibleTo(row):
            row.label.setMinimumWidth(0)
            row.label.setMaximumWidth(16777215)
            return
        margins = row.frame.contentsMargins()
        room = self.viewport().width() - 16 - margins.left() - margins.right()
        limit = max(80, int(room * 0.8))
        doc = QTextDocument()
        doc.setDefaultFont(row.label.font())
        doc.setDocumentMargin(0)
        if row.label.textFormat() == Qt.TextFormat.MarkdownText:
            doc.setMarkdown(row.label.text())
        else:
            doc.setPlainText(row.label.text())
        natural = math.ceil(doc.idealWidth()) + 2
        note = row.note.sizeHint().width() if row.note.isVisibleTo(row) else 0
        row.label.setFixedWidth(max(min(limit, max(natural, note)), 24))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for row in self.rows:
            self._fit(row)
        self._place_jump()

    # ------------------------------------------------------------------ shimmer

    def _tentative_rows(self) -> list[_Row]:
        return [r for r in self.rows if r.line is not None and r.line.tentative and r.who == "user"]

    def _refresh_shimmer(self) -> None:
        if self._tentative_rows() and self.isVisible():
            if not self._shimmer.isActive():
                self._shimmer_started = time.monotonic()
                self._shimmer.start()
        else:
            self._shimmer.stop()

    @property
    def shimmering(self) -> bool:
        return self._shimmer.isActive()

    def _shimmer_tick(self) -> None:
        rows = self._tentative_rows()
        if not rows:
            self._shimmer.stop()
            return
        phase = (time.monotonic() - self._shimmer_started) * 2 * math.pi / 1.2
        for row in rows:
            row.restyle(max(0.01, (1 + math.sin(phase)) / 2))

    def hideEvent(self, event: object) -> None:
        super().hideEvent(event)  # type: ignore[arg-type]
        self._shimmer.stop()

    def showEvent(self, event: object) -> None:
        super().showEvent(event)  # type: ignore[arg-type]
        self._refresh_shimmer()
