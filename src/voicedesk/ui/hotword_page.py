"""Settings' "your own hotword" section: record the takes with the microphone (a meter,
playback of each take, redo), name and build the hotword, and test it live (a
confidence meter). A thin view over :class:`~voicedesk.handsfree.TakeRecorder` and
:class:`~voicedesk.handsfree.HotwordTester`; their async work goes through the
window's :class:`~voicedesk.ui.tasks.AsyncRunner`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from voicedesk.handsfree import MIN_TAKES, HotwordTester, TakeRecorder
from voicedesk.ui.widgets import LevelMeter

logger = logging.getLogger(__name__)

METER_HZ = 25
#: Runs a coroutine for the page; ``what`` names it in a failure sentence.
Runner = Callable[[Coroutine[Any, Any, Any], str], None]


class HotwordPage(QGroupBox):
    """``built(name)``: a hotword was built and saved under ``name``."""

    built = Signal(str)

    def __init__(
        self,
        recorder: TakeRecorder,
        tester: HotwordTester,
        run: Runner,
        *,
        chosen_hotword: Callable[[], str] = lambda: "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Your own hotword", parent)
        self.setObjectName("hotwordRecorder")
        self.recorder = recorder
        self.tester = tester
        self._run = run
        #: The hotword the live test listens for (the dialog's choice; "" built in).
        self.chosen_hotword = chosen_hotword
        recorder.on_change = self._refresh
        tester.on_change = self._refresh
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"Say your phrase once per take, as you would to call the assistant; record "
            f"at least {MIN_TAKES} takes (in a quiet room, at your usual distance). Then "
            "name it and build it."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        meter_row = QHBoxLayout()
        meter_row.addWidget(QLabel("Microphone"))
        self.mic_meter = LevelMeter("Microphone level while recording")
        self.mic_meter.setObjectName("hotwordMicMeter")
        meter_row.addWidget(self.mic_meter, 1)
        layout.addLayout(meter_row)

        self._takes = QGridLayout()
        layout.addLayout(self._takes)
        self.record_buttons: list[QPushButton] = []
        self.play_buttons: list[QPushButton] = []
        self.take_labels: list[QLabel] = []
        self.add_take_button = QPushButton("Add a take")
        self.add_take_button.setObjectName("addTakeButton")
        self.add_take_button.clicked.connect(self._add_take)
        layout.addWidget(self.add_take_button)

        name_row = QHBoxLayout()
        name_row.addWidget(QLabel("Name"))
        self.name_input = QLineEdit()
        self.name_input.setObjectName("hotwordNameInput")
        self.name_input.setPlaceholderText("e.g. hey_computer")
        self.name_input.textChanged.connect(lambda _: self._refresh())
        name_row.addWidget(self.name_input, 1)
        self.build_button = QPushButton("Build")
        self.build_button.setObjectName("buildHotwordButton")
        self.build_button.clicked.connect(self._build)
        name_row.addWidget(self.build_button)
        layout.addLayout(name_row)

        test_row = QHBoxLayout()
        self.test_button = QPushButton("Test")
        self.test_button.setObjectName("testHotwordButton")
        self.test_button.setToolTip("Say the hotword: the meter shows how sure the detector is")
        self.test_button.clicked.connect(self._toggle_test)
        test_row.addWidget(self.test_button)
        self.confidence_meter = QProgressBar()
        self.confidence_meter.setObjectName("hotwordConfidenceMeter")
        self.confidence_meter.setAccessibleName("Hotword confidence")
        self.confidence_meter.setRange(0, 100)
        self.confidence_meter.setFormat("confidence %v %")
        test_row.addWidget(self.confidence_meter, 1)
        layout.addLayout(test_row)

        self.status = QLabel("")
        self.status.setObjectName("hotwordStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        self._timer = QTimer(self)
        self._timer.setInterval(1000 // METER_HZ)
        self._timer.timeout.connect(self._tick)
        self._sync_take_rows()
        self._refresh()

    def _start(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``coro``; a failure is a sentence on the page (not the window's banner,
        which the dialog hides)."""

        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                logger.warning("hotword page: could not %s: %s", what, exc)
                self.status.setText(f"Could not {what}: {exc}")
                self._refresh()

        self._run(guarded(), what)

    # ------------------------------------------------------------------ rows

    def _sync_take_rows(self) -> None:
        for index in range(len(self.record_buttons), len(self.recorder.takes)):
            label = QLabel(f"Take {index + 1}")
            record = QPushButton("Record")
            record.setObjectName(f"recordTake{index + 1}")
            record.clicked.connect(lambda _=False, i=index: self._record(i))
            play = QPushButton("Play")
            play.setObjectName(f"playTake{index + 1}")
            play.clicked.connect(lambda _=False, i=index: self.recorder.play(i))
            length = QLabel("")
            length.setObjectName(f"takeLength{index + 1}")
            self._takes.addWidget(label, index, 0)
            self._takes.addWidget(record, index, 1)
            self._takes.addWidget(play, index, 2)
            self._takes.addWidget(length, index, 3)
            self.record_buttons.append(record)
            self.play_buttons.append(play)
            self.take_labels.append(length)

    def _add_take(self) -> None:
        if self.recorder.add_take():
            self._sync_take_rows()
            self._refresh()

    # ------------------------------------------------------------------ actions

    def _record(self, index: int) -> None:
        if self.recorder.recording == index:
            self.recorder.stop()
            return
        self._timer.start()
        self._start(self.recorder.record(index), "record the take")

    def _build(self) -> None:
        name = self.name_input.text()
        self.status.setText("Building the hotword…")
        self.build_button.setEnabled(False)

        async def build() -> None:
            try:
                path = await self.recorder.build(name)
            except ValueError as exc:
                self.status.setText(str(exc))
                return
            finally:
                self._refresh()
            self._built(path)

        self._start(build(), "build the hotword")

    def _built(self, path: Path) -> None:
        self.status.setText(
            f"Saved “{path.stem}” in {path.parent}. It is chosen above; press Test and say "
            "it to see how well it is recognised."
        )
        self.built.emit(path.stem)

    def _toggle_test(self) -> None:
        if self.tester.running:
            self._start(self.tester.stop(), "stop the test")
            return
        self._timer.start()
        self.status.setText("Say the hotword: the meter shows how sure the detector is.")
        self._start(self.tester.start(self.chosen_hotword() or None), "test the hotword")

    def detach(self) -> Coroutine[Any, Any, None]:
        """The dialog closes: the page stops following the recorder and the tester now;
        run the coroutine returned to stop testing and recording and release the
        microphone (it touches no widget, so it may finish after the page is gone)."""
        self._timer.stop()
        self.recorder.on_change = None
        self.tester.on_change = None
        return _release(self.tester, self.recorder)

    # ------------------------------------------------------------------ view

    def showEvent(self, event: QShowEvent) -> None:
        """The page is shown: open the microphone, so the meter moves before a take."""
        super().showEvent(event)
        self._timer.start()
        self._start(self.recorder.open(), "open the microphone")

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._timer.stop()

    def _tick(self) -> None:
        # The meter falls back slowly, so a word's peak can be read.
        self.mic_meter.set_level(max(self.recorder.level, self.mic_meter.level * 0.85))
        self.confidence_meter.setValue(round(100 * self.tester.confidence))

    def _refresh(self) -> None:
        recorder = self.recorder
        busy = recorder.recording is not None
        for index, (record, play, length) in enumerate(
            zip(self.record_buttons, self.play_buttons, self.take_labels, strict=True)
        ):
            recorded = recorder.takes[index] is not None
            if recorder.recording == index:
                record.setText("Stop")
            else:
                record.setText("Redo" if recorded else "Record")
            record.setEnabled(not busy or recorder.recording == index)
            play.setEnabled(recorded and not busy)
            length.setText(f"{recorder.take_seconds(index):.1f} s" if recorded else "")
        self.add_take_button.setEnabled(not busy)
        self.build_button.setEnabled(recorder.ready and bool(self.name_input.text().strip()))
        self.test_button.setText("Stop test" if self.tester.running else "Test")

        if not self.tester.running:
            self.confidence_meter.setValue(round(100 * self.tester.confidence))
        heard = self.tester.heard
        if heard is not None and self.tester.running:
            self.status.setText(f"Heard it (confidence {heard:.2f}).")
        elif recorder.waiting:
            self.status.setText("Opening the microphone…")
        elif busy:
            self.status.setText(f"Recording take {(recorder.recording or 0) + 1}: say it now.")


async def _release(tester: HotwordTester, recorder: TakeRecorder) -> None:
    await tester.stop()
    await recorder.close()
