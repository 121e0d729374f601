"""Small widgets of the main window: status dot, speaking indicator, level meter,
error banner, the message box, and the card asking to approve an MCP tool call. Each
draws from the palette, so light and dark themes both read well; the status colours
are the tutorial's."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

STATUS_COLORS = {
    "connected": "#10B981",
    "connecting": "#F59E0B",
    "disconnecting": "#F59E0B",
    "disconnected": "#EF4444",
}
STATUS_WORDS = {
    "connected": "Connected",
    "connecting": "Connecting",
    "disconnecting": "Disconnecting",
    "disconnected": "Disconnected",
}
SPEAKING_COLOR = "#8B5CF6"
IDLE_COLOR = "#9CA3AF"
ANIMATION_FPS = 30


class StatusDot(QWidget):
    """A filled circle in the status colour."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(14, 14)
        self._color = QColor(STATUS_COLORS["disconnected"])

    def set_status(self, status: str) -> None:
        self._color = QColor(STATUS_COLORS.get(status, "#6B7280"))
        self.update()

    def color(self) -> QColor:
        return QColor(self._color)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._color)
        painter.drawEllipse(QRectF(1, 1, 12, 12))


class SpeakingIndicator(QLabel):
    """ "Agent speaking" / "Agent listening", with a pulsing dot while the agent is
    audible. The animation timer runs only while speaking."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("speakingIndicator")
        self.setIndent(24)
        self.setMinimumWidth(150)
        self._speaking = False
        self._started = time.monotonic()
        self._timer = QTimer(self)
        self._timer.setInterval(1000 // ANIMATION_FPS)
        self._timer.timeout.connect(self.update)
        self._colors = (SPEAKING_COLOR, IDLE_COLOR)
        self.set_speaking(False)

    def set_colors(self, speaking: str, listening: str) -> None:
        """The theme's colours for the two states (text and dot)."""
        self._colors = (speaking, listening)
        self._apply_color()

    def _apply_color(self) -> None:
        self.setStyleSheet(f"color: {self._colors[0] if self._speaking else self._colors[1]};")

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def animating(self) -> bool:
        return self._timer.isActive()

    def set_speaking(self, speaking: bool) -> None:
        self._speaking = speaking
        text = "Agent speaking" if speaking else "Agent listening"
        self.setText(text)
        self.setAccessibleName(text)
        self._apply_color()
        if speaking and self.isEnabled():
            self._started = time.monotonic()
            self._timer.start()
        else:
            self._timer.stop()
        self.update()

    def changeEvent(self, event: object) -> None:
        super().changeEvent(event)  # type: ignore[arg-type]
        if not self.isEnabled():
            self._timer.stop()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        cy = self.height() / 2
        if self._speaking:
            phase = (time.monotonic() - self._started) * 2 * math.pi / 0.9
            radius = 5 + 2.5 * (1 + math.sin(phase)) / 2
            halo = QColor(self._colors[0])
            halo.setAlphaF(0.25)
            painter.setBrush(halo)
            painter.drawEllipse(
                QRectF(10 - radius - 2, cy - radius - 2, 2 * radius + 4, 2 * radius + 4)
            )
            painter.setBrush(QColor(self._colors[0]))
            painter.drawEllipse(QRectF(10 - radius, cy - radius, 2 * radius, 2 * radius))
        else:
            painter.setBrush(QColor(self._colors[1]))
            painter.drawEllipse(QRectF(5, cy - 5, 10, 10))


class ElidedLabel(QLabel):
    """One line that ends in "…" when the room is short (the whole text as tooltip)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 8)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        shown = self.fontMetrics().elidedText(
            self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width()
        )
        painter.drawText(
            self.contentsRect(),
            int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
            shown,
        )


class LevelMeter(QWidget):
    """A horizontal meter for an RMS level 0..1, drawn on a dB scale (-60..0 dBFS)."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(name)
        self.setMinimumSize(80, 10)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._level = 0.0

    @property
    def level(self) -> float:
        return self._level

    @staticmethod
    def fraction(rms: float) -> float:
        """How much of the bar an RMS level fills: -60 dBFS empty, 0 dBFS full."""
        if rms <= 1e-6:
            return 0.0
        return min(1.0, max(0.0, (20 * math.log10(rms) + 60) / 60))

    def set_level(self, rms: float) -> None:
        if rms == self._level:
            return
        redraw = self.fraction(rms) != self.fraction(self._level)
        self._level = rms
        if redraw:
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(self.palette().mid().color())
        painter.setBrush(self.palette().base())
        painter.drawRect(rect)
        filled = self.fraction(self._level)
        if filled > 0:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#10B981") if filled < 0.9 else QColor("#EF4444"))
            painter.drawRect(QRectF(rect.x(), rect.y(), rect.width() * filled, rect.height()))


class ErrorBanner(QFrame):
    """A strip above the conversation with a plain sentence; never modal, closable."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Its colours: the window's theme (ui/theme.py, #errorBanner).
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(self)
        self.label.setObjectName("errorBannerText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setObjectName("errorBannerClose")
        close.setText("✕")
        close.setAccessibleName("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.setAccessibleName("Error")
        self.hide()

    def show_message(self, sentence: str) -> None:
        self.label.setText(sentence)
        self.setAccessibleDescription(sentence)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class MessageInput(QPlainTextEdit):
    """The message box: Enter sends, Shift+Enter starts a new line; each edit is
    reported as typing (the window throttles the user-activity signals)."""

    submitted = Signal()
    typing = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageInput")
        self.setAccessibleName("messageInput")
        self.setAccessibleDescription("Message to the agent. Enter sends, Shift+Enter adds a line.")
        self.setPlaceholderText("Type a message or context… (Enter sends, Shift+Enter new line)")
        self.setTabChangesFocus(True)
        line = self.fontMetrics().lineSpacing()
        self.setFixedHeight(line * 3 + 14)
        self.textChanged.connect(self._on_text_changed)

    def text(self) -> str:
        return self.toPlainText()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & (
            Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)

    def _on_text_changed(self) -> None:
        if self.toPlainText():
            self.typing.emit()


class ApprovalCard(QFrame):
    """An MCP tool call waiting for the user's approval: what would run where, its
    parameters, Approve / Deny, and the seconds left to answer (no answer is a denial).

    ``answered(tool_call_id, approved)`` is emitted once, on a button press; the window
    removes the card when the controller says the question is closed.
    """

    answered = Signal(str, bool)

    def __init__(
        self,
        tool_call_id: str,
        question: str,
        parameters: list[tuple[str, str]],
        seconds: float,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.tool_call_id = tool_call_id
        self.setObjectName("mcpApprovalCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Its colours: the window's theme (ui/theme.py, #mcpApprovalCard).
        self.setAccessibleName("Approval needed")
        self.setAccessibleDescription(question)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        self.question = QLabel(question, self)
        self.question.setObjectName("mcpApprovalText")
        self.question.setWordWrap(True)
        font = self.question.font()
        font.setBold(True)
        self.question.setFont(font)
        layout.addWidget(self.question)
        self.parameters = QLabel(
            "\n".join(f"{name}: {value}" for name, value in parameters) or "(no parameters)",
            self,
        )
        self.parameters.setObjectName("mcpApprovalParameters")
        self.parameters.setWordWrap(True)
        self.parameters.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.parameters)
        row = self.button_row = QHBoxLayout()
        self.approve_button = QPushButton("Approve", self)
        self.approve_button.setObjectName("approveButton")
        self.approve_button.setAccessibleName("approveButton")
        self.approve_button.setAccessibleDescription("Let the agent run this tool")
        self.deny_button = QPushButton("Deny", self)
        self.deny_button.setObjectName("denyButton")
        self.deny_button.setAccessibleName("denyButton")
        self.deny_button.setAccessibleDescription("Do not let the agent run this tool")
        self.countdown = QLabel(self)
        self.countdown.setObjectName("approvalCountdown")
        self.approve_button.clicked.connect(lambda: self._answer(True))
        self.deny_button.clicked.connect(lambda: self._answer(False))
        row.addWidget(self.approve_button)
        row.addWidget(self.deny_button)
        row.addSpacing(8)
        row.addWidget(self.countdown)
        row.addStretch(1)
        layout.addLayout(row)
        self._deadline = time.monotonic() + seconds
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._tick()

    @property
    def seconds_left(self) -> int:
        return max(0, math.ceil(self._deadline - time.monotonic()))

    def _tick(self) -> None:
        left = self.seconds_left
        self.countdown.setText(
            f"{left} s left to answer" if left else "No answer in time: the agent may not run it"
        )
        if not left:
            self._timer.stop()
            self.approve_button.setEnabled(False)
            self.deny_button.setEnabled(False)

    def _answer(self, approved: bool) -> None:
        self._timer.stop()
        self.approve_button.setEnabled(False)
        self.deny_button.setEnabled(False)
        self.countdown.setText("Approved: running…" if approved else "Denied.")
        self.answered.emit(self.tool_call_id, approved)

    def stop(self) -> None:
        """The question is closed: stop the countdown (before the card is deleted)."""
        self._timer.stop()


class ToolPermissionCard(ApprovalCard):
    """A client tool set to Ask: Allow once / Always / Deny, and the seconds left (the
    tool's own timeout; no answer is a refusal). ``chosen(tool_call_id, choice)``:
    "once", "always" or "deny"."""

    chosen = Signal(str, str)

    def __init__(
        self,
        tool_call_id: str,
        question: str,
        parameters: list[tuple[str, str]],
        seconds: float,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(tool_call_id, question, parameters, seconds, parent)
        self.setObjectName("toolPermissionCard")
        self.setAccessibleName("Permission needed")
        self.approve_button.setText("Allow once")
        self.approve_button.setAccessibleDescription("Let the agent run this tool this time")
        self.always_button = QPushButton("Always", self)
        self.always_button.setObjectName("alwaysAllowButton")
        self.always_button.setAccessibleName("alwaysAllowButton")
        self.always_button.setAccessibleDescription(
            "Let the agent run this tool now and from now on, without asking"
        )
        self.button_row.insertWidget(1, self.always_button)
        self.always_button.clicked.connect(self._always)
        self.answered.connect(
            lambda call_id, yes: self.chosen.emit(call_id, "once" if yes else "deny")
        )

    def _tick(self) -> None:
        super()._tick()
        if not self.seconds_left and hasattr(self, "always_button"):
            self.always_button.setEnabled(False)

    def _always(self) -> None:
        self._timer.stop()
        for button in (self.approve_button, self.deny_button, self.always_button):
            button.setEnabled(False)
        self.countdown.setText("Allowed from now on: running…")
        self.chosen.emit(self.tool_call_id, "always")
