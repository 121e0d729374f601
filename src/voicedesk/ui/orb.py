"""The voice orb: the agent's state as a shape and a colour, moving with the voices.

States: ``idle`` (no conversation: a still, grey disc), ``connecting`` (an arc turns
around it), ``listening`` (the accent colour; the rim ripples with the microphone's
level), ``thinking`` (between your last words and the agent's first sound: violet, a
slow swirl), ``speaking`` (blue; it swells with the speaker's level).

It animates at the display's frame rate only while something moves: a still orb
(idle, or listening in silence once the levels have settled) stops its timer, so an
idle window costs no CPU. Clicking it, or Space / Enter while it has the focus,
emits :attr:`VoiceOrb.activated` (the window starts or ends a conversation). Its
accessible name says what pressing it does; its description says the state.
"""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
    QRadialGradient,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from voicedesk.ui import theme

STATES = ("idle", "connecting", "listening", "thinking", "speaking")
STATE_WORDS = {
    "idle": "No conversation",
    "connecting": "Connecting",
    "listening": "Listening",
    "thinking": "Thinking",
    "speaking": "Speaking",
}
#: States that move by themselves (the others move only with the levels).
_MOVING = frozenset({"connecting", "thinking", "speaking"})
#: How fast the shown levels follow the measured ones (per second, exponential).
_FOLLOW_PER_S = 14.0
_SETTLED = 0.004
_GLOWS_KEPT = 10  # glow pictures kept (the states' colours at one or two sizes)


def level_fraction(rms: float) -> float:
    """An RMS level 0..1 on a dB scale: -60 dBFS is 0, 0 dBFS is 1."""
    if rms <= 1e-6:
        return 0.0
    return min(1.0, max(0.0, (20 * math.log10(rms) + 60) / 60))


class VoiceOrb(QWidget):
    """``activated``: clicked, or Space / Enter with the focus."""

    activated = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("voiceOrb")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._palette = theme.LIGHT
        self._state = "idle"
        self._action = "Start a conversation"
        self._mic = 0.0  # target levels (0..1, dB scale)
        self._speaker = 0.0
        self._shown_mic = 0.0  # what is drawn, following the targets
        self._shown_speaker = 0.0
        self._started = time.monotonic()
        self._last_tick = self._started
        self._glows: dict[tuple[int, int], QPixmap] = {}
        self.frames = 0  # frames drawn by the animation (a test and the bench read it)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._describe()

    # ------------------------------------------------------------------ API

    @property
    def state(self) -> str:
        return self._state

    @property
    def animating(self) -> bool:
        return self._timer.isActive()

    @property
    def levels(self) -> tuple[float, float]:
        """The drawn (microphone, speaker) levels, 0..1."""
        return self._shown_mic, self._shown_speaker

    def set_palette(self, palette: theme.Palette) -> None:
        self._palette = palette
        self.update()

    def set_action(self, action: str) -> None:
        """What activating it does now ("Start a conversation", "End the conversation")."""
        if action != self._action:
            self._action = action
            self._describe()

    def set_state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown orb state {state!r}")
        if state == self._state:
            return
        self._state = state
        self._describe()  # a description change is an accessibility event of its own
        self._wake()

    def set_levels(self, mic_rms: float, speaker_rms: float) -> None:
        mic, speaker = level_fraction(mic_rms), level_fraction(speaker_rms)
        if self._state == "idle":
            mic = speaker = 0.0
        if mic == self._mic and speaker == self._speaker:
            return
        self._mic, self._speaker = mic, speaker
        self._wake()

    # ------------------------------------------------------------------ animation

    def _frame_ms(self) -> int:
        screen = self.screen()
        rate = screen.refreshRate() if screen is not None else 60.0
        return max(4, round(1000 / (rate if rate > 1 else 60.0)))

    def _needs_frames(self) -> bool:
        if not self.isVisible():
            return False
        if self._state in _MOVING:
            return True
        return (
            abs(self._shown_mic - self._mic) > _SETTLED
            or abs(self._shown_speaker - self._speaker) > _SETTLED
        )

    def _wake(self) -> None:
        if self._needs_frames() and not self._timer.isActive():
            self._last_tick = time.monotonic()
            self._timer.start(self._frame_ms())
        self.update()

    def _tick(self) -> None:
        now = time.monotonic()
        dt = min(0.1, now - self._last_tick)
        self._last_tick = now
        k = 1 - math.exp(-_FOLLOW_PER_S * dt)
        self._shown_mic += (self._mic - self._shown_mic) * k
        self._shown_speaker += (self._speaker - self._shown_speaker) * k
        if not self._needs_frames():
            self._shown_mic, self._shown_speaker = self._mic, self._speaker
            self._timer.stop()
        self.frames += 1
        self.update()

    def showEvent(self, event: object) -> None:
        super().showEvent(event)  # type: ignore[arg-type]
        self._wake()

    def hideEvent(self, event: object) -> None:
        super().hideEvent(event)  # type: ignore[arg-type]
        self._timer.stop()

    # ------------------------------------------------------------------ input

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.activated.emit()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if not event.isAutoRepeat():
                self.activated.emit()
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------ drawing

    def sizeHint(self) -> QSize:
        em = self.fontMetrics().height()
        return QSize(em * 9, em * 9)

    def minimumSizeHint(self) -> QSize:
        em = self.fontMetrics().height()
        return QSize(em * 3, em * 3)

    def _describe(self) -> None:
        words = STATE_WORDS[self._state]
        self.setAccessibleName(f"Voice orb: {self._action.lower()}")
        self.setAccessibleDescription(
            f"The agent's state: {words}. Click, or press Space or Enter: {self._action.lower()}."
        )
        self.setToolTip(f"{words}. {self._action} (click, Space or Enter)")

    def _glow(self, color: QColor, side: int) -> QPixmap:
        """The glow as a picture, kept per colour and size of the orb."""
        size = max(8, round(side * self.devicePixelRatioF() * 0.8))
        key = (color.rgba(), size)
        cached = self._glows.get(key)
        if cached is not None:
            return cached
        if len(self._glows) >= _GLOWS_KEPT:
            self._glows.clear()
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        gradient = QRadialGradient(QPointF(size / 2, size / 2), size / 2)
        inner, outer = QColor(color), QColor(color)
        inner.setAlphaF(0.9)
        outer.setAlphaF(0.0)
        gradient.setColorAt(0.55, inner)
        gradient.setColorAt(1.0, outer)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawEllipse(QRectF(0, 0, size, size))
        painter.end()
        self._glows[key] = pixmap
        return pixmap

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        side = min(self.width(), self.height())
        centre = QPointF(self.width() / 2, self.height() / 2)
        t = time.monotonic() - self._started
        core, glow = self._palette.orb(self._state)
        mic, speaker = self._shown_mic, self._shown_speaker
        state = self._state

        base = side * 0.30
        swell = 0.0
        if state == "speaking":
            swell = 0.05 + 0.22 * speaker + 0.03 * math.sin(t * 2.2)
        elif state == "listening":
            swell = 0.12 * mic
        elif state == "thinking":
            swell = 0.04 * math.sin(t * 1.6)
        radius = base * (1 + swell)

        # The glow: wider with the sound. A soft disc drawn once per colour and size of
        # the orb, then scaled (a radial gradient over this area costs most of a frame;
        # a smooth gradient needs no smooth scaling).
        halo_r = min(side / 2, radius * (1.45 + 0.5 * max(mic, speaker)))
        glow_image = self._glow(glow, side)
        painter.drawPixmap(
            QRectF(centre.x() - halo_r, centre.y() - halo_r, 2 * halo_r, 2 * halo_r),
            glow_image,
            QRectF(glow_image.rect()),
        )
        painter.setPen(Qt.PenStyle.NoPen)

        # The core: a disc whose rim ripples with the voice (a few harmonics).
        ripple = {
            "listening": 0.10 * mic,
            "speaking": 0.05 + 0.10 * speaker,
            "thinking": 0.04,
        }.get(state, 0.0)
        path = QPainterPath()
        steps = 72
        for i in range(steps + 1):
            a = 2 * math.pi * i / steps
            wobble = ripple * (
                0.6 * math.sin(3 * a + t * 2.6)
                + 0.3 * math.sin(5 * a - t * 3.4)
                + 0.1 * math.sin(7 * a + t * 1.3)
            )
            r = radius * (1 + wobble)
            p = QPointF(centre.x() + r * math.cos(a), centre.y() + r * math.sin(a))
            if i == 0:
                path.moveTo(p)
            else:
                path.lineTo(p)
        fill = QRadialGradient(centre - QPointF(radius * 0.3, radius * 0.35), radius * 1.4)
        fill.setColorAt(0.0, core.lighter(135))
        fill.setColorAt(1.0, core.darker(115))
        painter.setBrush(fill)
        painter.drawPath(path)

        if state in ("connecting", "thinking"):
            pen = QPen(core.lighter(150) if state == "thinking" else core)
            pen.setWidthF(max(2.0, side * 0.02))
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            ring = radius * (1.2 if state == "connecting" else 0.55)
            speed = 300 if state == "connecting" else 140
            start = int(-t * speed * 16) % (360 * 16)
            painter.drawArc(
                QRectF(centre.x() - ring, centre.y() - ring, 2 * ring, 2 * ring), start, 100 * 16
            )

        if self.hasFocus():
            pen = QPen(self._palette.color("accent"))
            pen.setWidthF(2.0)
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(centre, halo_r * 0.98, halo_r * 0.98)
