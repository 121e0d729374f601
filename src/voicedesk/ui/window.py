"""The main window: the tutorial's screen (status, speaking indicator, start/end,
feedback, message and context) plus what a desktop user expects (transcript, mute,
volume, meters, devices, latency, shortcuts, error banner, first-run choice), the
agent's "typing…", and a card for each MCP tool call that waits for the user's approval.

Hands-free and push-to-talk: the Hands-free switch runs the controller's hotword loop
(its state in a line beside it); with push-to-talk on (Settings), the talk button and
the talk key (Space unless set otherwise; not while the message box has the focus, so
Space still types there) are held to talk, and the state is shown ("Talking" /
"Hold Space to talk").

A thin view over :class:`~voicedesk.ui.controller.ConversationController`: widgets
call its methods; its signals land in the ``_on_*`` handlers below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QStackedWidget,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from voicedesk.handsfree import LoopState
from voicedesk.protocol.events import ClientToolCall, McpToolCall
from voicedesk.session.transcript import approval_time_s, approval_title, parameter_rows
from voicedesk.ui.controller import ConversationController
from voicedesk.ui.transcript_view import TranscriptView
from voicedesk.ui.widgets import (
    STATUS_WORDS,
    ApprovalCard,
    ErrorBanner,
    LevelMeter,
    MessageInput,
    SpeakingIndicator,
    StatusDot,
    ToolPermissionCard,
)

SHORTCUTS = {
    "start": "Ctrl+Return",
    "end": "Ctrl+E",
    "mute": "Ctrl+M",
    "message": "Ctrl+L",
    "settings": "Ctrl+,",
    "history": "Ctrl+H",
}

FEEDBACK_PROMPT = "How was that response?"
FEEDBACK_WORDS: dict[str | None, str] = {
    "like": "You liked the latest answer.",
    "dislike": "You disliked the latest answer.",
}

#: A device picker's entry: (label, PortAudio index or None for the system default).
DeviceChoice = tuple[str, int | None]


def _name(widget: QWidget, name: str, description: str = "") -> None:
    """objectName and accessible name are the same, for tests and screen readers."""
    widget.setObjectName(name)
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
        widget.setToolTip(description)


class MainWindow(QMainWindow):
    """``settingsRequested``: the user asked for Settings (the app opens the dialog).
    ``demoRequested``: the first-run "Try the demo agent" choice."""

    settingsRequested = Signal()
    historyRequested = Signal()
    demoRequested = Signal()
    inputDeviceChosen = Signal(object)
    outputDeviceChosen = Signal(object)
    handsFreeToggled = Signal(bool)  # the user flipped the Hands-free switch

    def __init__(self, controller: ConversationController, *, first_run: bool = False) -> None:
        super().__init__()
        self.controller = controller
        self.setObjectName("mainWindow")
        self.setWindowTitle("voicedesk")
        self.resize(760, 640)
        self._on_close: Callable[[], None] | None = None
        self.approval_cards: dict[str, ApprovalCard] = {}

        central = QWidget(self)
        self.setCentralWidget(central)
        root = QVBoxLayout(central)
        root.addLayout(self._build_header())
        self.banner = ErrorBanner(central)
        root.addWidget(self.banner)

        self.pages = QStackedWidget(central)
        self.pages.addWidget(self._build_welcome())
        self.pages.addWidget(self._build_conversation())
        root.addWidget(self.pages, 1)
        self.pages.setCurrentIndex(0 if first_run else 1)

        self._build_shortcuts()
        self._connect_controller()
        # Seen by the application before any widget, and only while push-to-talk is on:
        # every event of the app passes through it.
        self._talk_filter = _TalkKeyFilter(self)
        self._talk_filter_installed = False
        self._refresh()

    # ------------------------------------------------------------------ layout

    def _build_header(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.status_dot = StatusDot()
        self.status_dot.setObjectName("statusDot")
        self.status_label = QLabel(STATUS_WORDS["disconnected"])
        _name(self.status_label, "statusLabel")
        font = self.status_label.font()
        font.setBold(True)
        self.status_label.setFont(font)
        self.latency_label = QLabel("")
        _name(self.latency_label, "latencyLabel", "Round-trip time to the agent, from its pings")
        self.speaking = SpeakingIndicator()
        self.speaking.setAccessibleName("Agent listening")
        self.settings_button = QToolButton()
        _name(self.settings_button, "settingsButton", f"Settings ({SHORTCUTS['settings']})")
        self.settings_button.setText("Settings")
        self.settings_button.clicked.connect(self.settingsRequested.emit)
        self.history_button = QToolButton()
        _name(
            self.history_button,
            "historyButton",
            f"Past conversations: search, read, export, delete ({SHORTCUTS['history']})",
        )
        self.history_button.setText("History")
        self.history_button.clicked.connect(self.historyRequested.emit)
        row.addWidget(self.status_dot)
        row.addWidget(self.status_label)
        row.addSpacing(12)
        row.addWidget(self.latency_label)
        row.addStretch(1)
        row.addWidget(self.speaking)
        row.addSpacing(12)
        row.addWidget(self.history_button)
        row.addWidget(self.settings_button)
        return row

    def _build_welcome(self) -> QWidget:
        page = QWidget()
        page.setObjectName("welcomePage")
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        title = QLabel("Talk with an ElevenLabs agent")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(
            "No agent is set up yet. Try the demo agent, which runs on this computer "
            "(a local stand-in: it speaks, answers simple questions and calls the desktop "
            "tools, but it is not an ElevenLabs agent), or connect your own agent."
        )
        text.setObjectName("welcomeText")
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.demo_button = QPushButton("Try the demo agent")
        _name(self.demo_button, "tryDemoButton", "Start talking to the local demo agent")
        self.connect_button = QPushButton("Connect your agent…")
        _name(self.connect_button, "connectAgentButton", "Enter your agent ID and API key")
        self.demo_button.clicked.connect(self.demoRequested.emit)
        self.connect_button.clicked.connect(self.settingsRequested.emit)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.demo_button)
        buttons.addWidget(self.connect_button)
        buttons.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(text)
        layout.addLayout(buttons)
        layout.addStretch(2)
        return page

    def _build_conversation(self) -> QWidget:
        page = QWidget()
        page.setObjectName("conversationPage")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.agent_label = QLabel("")
        _name(self.agent_label, "agentLabel")
        layout.addWidget(self.agent_label)

        self.transcript_view = TranscriptView(self.controller.transcript)
        layout.addWidget(self.transcript_view, 1)
        self.typing_label = QLabel("Agent is typing…")
        _name(self.typing_label, "agentTypingLabel", "The agent is typing a reply")
        self.typing_label.setStyleSheet("color: #8B5CF6; font-style: italic;")
        self.typing_label.hide()
        layout.addWidget(self.typing_label)

        feedback = QHBoxLayout()
        self.feedback_label = QLabel(FEEDBACK_PROMPT)
        _name(self.feedback_label, "feedbackLabel")
        self.like_button = QPushButton("Like")
        _name(self.like_button, "likeButton", "Rate the agent's latest answer as good")
        self.dislike_button = QPushButton("Dislike")
        _name(self.dislike_button, "dislikeButton", "Rate the agent's latest answer as bad")
        for button in (self.like_button, self.dislike_button):
            button.setCheckable(True)  # checked: the current rating; pressed again, cleared
        self.like_button.clicked.connect(lambda: self._send_feedback(True))
        self.dislike_button.clicked.connect(lambda: self._send_feedback(False))
        feedback.addWidget(self.feedback_label)
        feedback.addWidget(self.like_button)
        feedback.addWidget(self.dislike_button)
        feedback.addStretch(1)
        self.feedback_row = QWidget()
        self.feedback_row.setObjectName("feedbackRow")
        self.feedback_row.setLayout(feedback)
        layout.addWidget(self.feedback_row)

        # MCP tool calls waiting for approval: one card each, just above the composer.
        self.approval_area = QWidget()
        self.approval_area.setObjectName("approvalArea")
        self._approval_layout = QVBoxLayout(self.approval_area)
        self._approval_layout.setContentsMargins(0, 0, 0, 0)
        self.approval_area.hide()
        layout.addWidget(self.approval_area)

        self.message_input = MessageInput()
        self.message_input.submitted.connect(self._send_message)
        self.message_input.typing.connect(self.controller.user_typing)
        self.message_input.textChanged.connect(self._refresh_message_buttons)
        layout.addWidget(self.message_input)
        sends = QHBoxLayout()
        self.send_message_button = QPushButton("Send message")
        _name(self.send_message_button, "sendMessageButton", "Send the text to the agent (Enter)")
        self.send_context_button = QPushButton("Send context")
        _name(
            self.send_context_button,
            "sendContextButton",
            "Give the agent background information without asking for an answer",
        )
        self.send_message_button.clicked.connect(self._send_message)
        self.send_context_button.clicked.connect(self._send_context)
        sends.addWidget(self.send_message_button)
        sends.addWidget(self.send_context_button)
        sends.addStretch(1)
        layout.addLayout(sends)

        layout.addWidget(self._build_audio_row())
        layout.addWidget(self._build_hands_free_row())

        controls = QHBoxLayout()
        self.start_button = QPushButton("Start conversation")
        _name(self.start_button, "startButton", f"Start a conversation ({SHORTCUTS['start']})")
        self.end_button = QPushButton("End conversation")
        _name(self.end_button, "endButton", f"End the conversation ({SHORTCUTS['end']})")
        self.continue_button = QPushButton("Continue the conversation")
        _name(
            self.continue_button,
            "continueButton",
            "The connection dropped: start again where it stopped (the agent is told the "
            "recent turns)",
        )
        self.continue_button.clicked.connect(self.controller.continue_conversation)
        self.continue_button.hide()
        self.start_button.clicked.connect(self.controller.start)
        self.end_button.clicked.connect(self.controller.end)
        self.start_button.setStyleSheet(_button_style("#10B981"))
        self.end_button.setStyleSheet(_button_style("#EF4444"))
        controls.addWidget(self.continue_button)
        controls.addWidget(self.start_button)
        controls.addWidget(self.end_button)
        layout.addLayout(controls)
        return page

    def _build_audio_row(self) -> QWidget:
        row = QWidget()
        row.setObjectName("audioRow")
        grid = QHBoxLayout(row)
        grid.setContentsMargins(0, 0, 0, 0)
        self.mute_button = QPushButton("Mute")
        _name(self.mute_button, "muteButton", f"Mute the microphone ({SHORTCUTS['mute']})")
        self.mute_button.setCheckable(True)
        self.mute_button.toggled.connect(self._on_mute_toggled)
        self.volume = QSlider(Qt.Orientation.Horizontal)
        _name(self.volume, "volumeSlider", "The agent's volume")
        self.volume.setRange(0, 100)
        self.volume.setValue(100)
        self.volume.setMaximumWidth(110)
        self.volume.valueChanged.connect(lambda v: self.controller.set_volume(v / 100))
        self.input_meter = LevelMeter("Microphone level")
        self.input_meter.setObjectName("inputMeter")
        self.output_meter = LevelMeter("Speaker level")
        self.output_meter.setObjectName("outputMeter")
        self.input_combo = QComboBox()
        _name(self.input_combo, "inputDeviceCombo", "Microphone")
        self.output_combo = QComboBox()
        _name(self.output_combo, "outputDeviceCombo", "Speaker")
        for combo in (self.input_combo, self.output_combo):
            combo.addItem("System default", None)
            combo.setMinimumContentsLength(14)
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
        self.input_combo.activated.connect(
            lambda _: self.inputDeviceChosen.emit(self._choice(self.input_combo))
        )
        self.output_combo.activated.connect(
            lambda _: self.outputDeviceChosen.emit(self._choice(self.output_combo))
        )
        grid.addWidget(self.mute_button)
        grid.addWidget(QLabel("Mic"))
        grid.addWidget(self.input_meter)
        grid.addWidget(self.input_combo)
        grid.addSpacing(8)
        grid.addWidget(QLabel("Volume"))
        grid.addWidget(self.volume)
        grid.addWidget(self.output_meter)
        grid.addWidget(self.output_combo)
        return row

    def _build_hands_free_row(self) -> QWidget:
        row = QWidget()
        row.setObjectName("handsFreeRow")
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        self.hands_free_switch = QCheckBox("Hands-free")
        _name(
            self.hands_free_switch,
            "handsFreeSwitch",
            "Listen for the hotword and start a conversation when you say it; nothing "
            "leaves this computer while it only listens",
        )
        self.hands_free_switch.toggled.connect(self._on_hands_free_toggled)
        self.hands_free_status = QLabel("")
        _name(self.hands_free_status, "handsFreeStatus", "What hands-free is doing")
        self.hands_free_status.setStyleSheet("color: #6B7280;")
        self.talk_state = QLabel("")
        _name(self.talk_state, "talkState", "Push-to-talk: whether the microphone is open")
        self.talk_button = QPushButton("Hold to talk")
        _name(
            self.talk_button,
            "talkButton",
            "Push-to-talk: hold this button (or the talk key) while you speak",
        )
        self.talk_button.pressed.connect(self.controller.talk.press)
        self.talk_button.released.connect(self.controller.talk.release)
        line.addWidget(self.hands_free_switch)
        line.addWidget(self.hands_free_status, 1)
        line.addWidget(self.talk_state)
        line.addWidget(self.talk_button)
        return row

    def _build_shortcuts(self) -> None:
        def bind(keys: str, action: Callable[[], None]) -> None:
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(action)

        bind(SHORTCUTS["start"], self.controller.start)
        bind(SHORTCUTS["end"], self.controller.end)
        bind(SHORTCUTS["mute"], self.mute_button.toggle)
        bind(SHORTCUTS["message"], self.message_input.setFocus)
        bind(SHORTCUTS["settings"], self.settingsRequested.emit)
        bind(SHORTCUTS["history"], self.historyRequested.emit)

    def _connect_controller(self) -> None:
        c = self.controller
        c.statusChanged.connect(self._on_status_changed)
        c.startingChanged.connect(lambda _: self._refresh())
        c.modeChanged.connect(lambda _: self._refresh_speaking())
        c.canSendFeedbackChanged.connect(lambda _: self._refresh_feedback())
        c.feedbackChanged.connect(lambda _: self._refresh_feedback())
        c.agentTypingChanged.connect(lambda _: self._refresh_typing())
        c.approvalRequested.connect(self._on_approval_requested)
        c.toolPermissionRequested.connect(self._on_tool_permission_requested)
        c.approvalClosed.connect(self._on_approval_closed)
        c.latencyChanged.connect(self._on_latency)
        c.levelsChanged.connect(self._on_levels)
        c.errorRaised.connect(self.banner.show_message)
        c.audioChanged.connect(self._refresh_audio)
        c.ended.connect(lambda _: self._refresh())
        c.handsFreeChanged.connect(lambda _state, _sentence: self._refresh())
        c.talkChanged.connect(self._refresh_talk)

    # ------------------------------------------------------------------ public

    def show_conversation(self, agent_description: str) -> None:
        """Leave the first-run page; say who the conversation is with."""
        self.agent_label.setText(agent_description)
        self.pages.setCurrentIndex(1)
        self._refresh()

    def set_devices(self, inputs: list[DeviceChoice], outputs: list[DeviceChoice]) -> None:
        for combo, devices in ((self.input_combo, inputs), (self.output_combo, outputs)):
            current = combo.currentData()
            combo.clear()
            combo.addItem("System default", None)
            for label, index in devices:
                combo.addItem(label, index)
            at = combo.findData(current)
            combo.setCurrentIndex(max(0, at))

    def select_devices(self, input_index: int | None, output_index: int | None) -> None:
        """Show the devices in use (without emitting a choice)."""
        for combo, index in ((self.input_combo, input_index), (self.output_combo, output_index)):
            at = combo.findData(index)
            if at >= 0:
                combo.setCurrentIndex(at)

    def set_close_handler(self, handler: Callable[[], None]) -> None:
        """Called once when the window closes (the app ends the conversation first)."""
        self._on_close = handler

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _choice(combo: QComboBox) -> DeviceChoice:
        return combo.currentText(), combo.currentData()

    def _send_message(self) -> None:
        if self.controller.send_message(self.message_input.text()):
            self.message_input.clear()

    def _send_context(self) -> None:
        if self.controller.send_context(self.message_input.text()):
            self.message_input.clear()

    def _send_feedback(self, like: bool) -> None:
        self.controller.send_feedback(like)
        self._refresh_feedback()  # the buttons show the rating, not the click

    def _on_approval_requested(self, call: McpToolCall) -> None:
        if call.tool_call_id in self.approval_cards:
            return
        card = ApprovalCard(
            call.tool_call_id,
            approval_title(call),
            parameter_rows(call.parameters),
            approval_time_s(call),
            self.approval_area,
        )
        card.answered.connect(self.controller.answer_approval)
        self.approval_cards[call.tool_call_id] = card
        self._approval_layout.addWidget(card)
        self.approval_area.show()

    def _on_tool_permission_requested(self, call: ClientToolCall, seconds: float) -> None:
        if call.tool_call_id in self.approval_cards:
            return
        card = ToolPermissionCard(
            call.tool_call_id,
            f"The agent wants to run {call.tool_name} on this computer. Allow it?",
            parameter_rows(call.parameters),
            seconds,
            self.approval_area,
        )
        card.chosen.connect(self.controller.answer_tool)
        self.approval_cards[call.tool_call_id] = card
        self._approval_layout.addWidget(card)
        self.approval_area.show()

    def _on_approval_closed(self, tool_call_id: str) -> None:
        card = self.approval_cards.pop(tool_call_id, None)
        if card is None:
            return
        card.stop()
        self._approval_layout.removeWidget(card)
        card.hide()
        card.deleteLater()
        self.approval_area.setVisible(bool(self.approval_cards))

    def _on_hands_free_toggled(self, on: bool) -> None:
        self.controller.set_hands_free(on)
        self.handsFreeToggled.emit(on and self.controller.hands_free)  # remembered if it ran
        self._refresh()

    def set_hands_free(self, on: bool) -> None:
        """Flip the switch as the user would (the app does it at start-up)."""
        self.hands_free_switch.setChecked(on)

    def talk_key(self) -> int:
        """The push-to-talk key (a ``Qt.Key`` value): the first key of the setting."""
        sequence = QKeySequence(self.controller.talk.key)
        if sequence.count() == 0:
            return int(Qt.Key.Key_Space.value)
        first = cast(Any, sequence)[0]  # a QKeyCombination (indexing is not in the stubs)
        return int(first.key().value)

    def _refresh_talk(self) -> None:
        talk = self.controller.talk
        self._install_talk_filter(talk.enabled)
        self.talk_state.setVisible(talk.enabled)
        self.talk_button.setVisible(talk.enabled)
        self.talk_state.setText(talk.text)
        self.talk_state.setStyleSheet(
            "color: #10B981; font-weight: bold;" if talk.talking else "color: #6B7280;"
        )
        self.talk_button.setText("Talking…" if talk.talking else "Hold to talk")
        self.talk_button.setAccessibleDescription(talk.text)

    def _on_mute_toggled(self, muted: bool) -> None:
        self.controller.set_muted(muted)
        self.mute_button.setText("Unmute" if muted else "Mute")
        self.mute_button.setAccessibleDescription(
            "The microphone is muted" if muted else "Mute the microphone"
        )

    def _on_status_changed(self, status: str) -> None:
        if status == "connecting":
            self.banner.hide()
        self._refresh()

    def _on_latency(self, ms: int) -> None:
        self.latency_label.setText(f"Latency {ms} ms")

    def _on_levels(self, input_rms: float, output_rms: float) -> None:
        self.input_meter.set_level(input_rms)
        self.output_meter.set_level(output_rms)

    def _refresh(self) -> None:
        c = self.controller
        status = c.status
        self.status_dot.set_status(status)
        self.status_label.setText(STATUS_WORDS.get(status, status.capitalize()))
        self.status_label.setAccessibleDescription(f"Conversation status: {status}")
        self.start_button.setEnabled(c.can_start)
        self.start_button.setText("Starting…" if c.is_starting else "Start conversation")
        self.continue_button.setVisible(c.can_continue)
        self.end_button.setEnabled(c.can_end)
        if status == "disconnected":
            self.latency_label.setText("")
        self._refresh_speaking()
        self._refresh_feedback()
        self._refresh_typing()
        self._refresh_message_buttons()
        self._refresh_audio()
        self._refresh_hands_free()
        self._refresh_talk()

    def _refresh_hands_free(self) -> None:
        c = self.controller
        self.hands_free_switch.blockSignals(True)
        self.hands_free_switch.setChecked(c.hands_free)
        self.hands_free_switch.blockSignals(False)
        # Not while a conversation started by hand runs or starts: the loop would take
        # its devices.
        idle = c.status == "disconnected" and not c.is_starting
        self.hands_free_switch.setEnabled(c.hands_free or (idle and not c.plan.options.text_only))
        state = c.hands_free_state
        text = c.hands_free_sentence if c.hands_free else ""
        if state is LoopState.LISTENING:
            text += " Nothing leaves this computer until you say it."
        self.hands_free_status.setText(text)
        self.hands_free_status.setAccessibleDescription(text or "Hands-free is off")
        if c.hands_free and state is LoopState.LISTENING:
            self.start_button.setText("Start without the hotword")

    def _refresh_speaking(self) -> None:
        connected = self.controller.status == "connected"
        self.speaking.setVisible(connected)
        self.speaking.set_speaking(connected and self.controller.is_speaking)

    def _refresh_feedback(self) -> None:
        """Shown while there is an answer to rate; the checked button is its rating."""
        c = self.controller
        self.feedback_row.setVisible(c.status == "connected" and c.can_send_feedback)
        rating = c.feedback_rating if c.can_send_feedback else None
        self.like_button.setChecked(rating == "like")
        self.dislike_button.setChecked(rating == "dislike")
        self.feedback_label.setText(FEEDBACK_WORDS.get(rating, FEEDBACK_PROMPT))
        for button, score in ((self.like_button, "like"), (self.dislike_button, "dislike")):
            button.setAccessibleDescription(
                f"Rated {score}: press again to clear the rating"
                if rating == score
                else f"Rate the agent's latest answer as {'good' if score == 'like' else 'bad'}"
            )

    def _refresh_typing(self) -> None:
        c = self.controller
        self.typing_label.setVisible(c.status == "connected" and c.is_agent_typing)

    def _refresh_message_buttons(self) -> None:
        ready = self.controller.status == "connected" and bool(self.message_input.text().strip())
        self.send_message_button.setEnabled(ready)
        self.send_context_button.setEnabled(ready)

    def _refresh_audio(self) -> None:
        voice = self.controller.is_voice and self.controller.status == "connected"
        # Listening for the hotword, the microphone is open: its meter shows it.
        listening = self.controller.hands_free_state is LoopState.LISTENING
        self.input_meter.setEnabled(voice or listening)
        self.output_meter.setEnabled(voice)
        engine = self.controller.launcher.engine
        if voice and engine is not None:
            self.select_devices(
                engine.input_device.index if engine.input_device else None,
                engine.output_device.index if engine.output_device else None,
            )
        if not voice and not listening:
            self._on_levels(0.0, 0.0)

    def _install_talk_filter(self, wanted: bool) -> None:
        app = QApplication.instance()
        if app is None or wanted == self._talk_filter_installed:
            return
        if wanted:
            app.installEventFilter(self._talk_filter)
        else:
            app.removeEventFilter(self._talk_filter)
        self._talk_filter_installed = wanted

    def changeEvent(self, event: QEvent) -> None:
        # A talk key held while the window loses the focus never sees its release.
        if event.type() == QEvent.Type.ActivationChange and not self.isActiveWindow():
            self.controller.talk.release()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._install_talk_filter(False)
        self.controller.talk.release()
        handler, self._on_close = self._on_close, None
        if handler is not None:
            handler()
        super().closeEvent(event)


_TEXT_INPUTS = (QPlainTextEdit, QTextEdit, QLineEdit, QAbstractSpinBox, QKeySequenceEdit)


class _TalkKeyFilter(QObject):
    """Push-to-talk's key, held anywhere in the window except where it types (the
    message box): seen before the focused widget, so a focused button does not take
    Space as a click. Auto-repeats are swallowed; only press and release count."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        window = self._window
        talk = window.controller.talk
        if not talk.enabled or not isinstance(event, QKeyEvent):
            return False
        if event.key() != window.talk_key() or not _in_window(watched, window):
            return False
        focus = QApplication.focusWidget()
        if isinstance(focus, _TEXT_INPUTS) and not (
            kind == QEvent.Type.KeyRelease and talk.talking
        ):
            return False
        if event.isAutoRepeat():
            return True
        if kind == QEvent.Type.KeyPress:
            talk.press()
        else:
            talk.release()
        return True


def _in_window(watched: QObject, window: QWidget) -> bool:
    return isinstance(watched, QWidget) and watched.window() is window


def _button_style(color: str) -> str:
    return (
        f"QPushButton {{ background: {color}; color: white; border-radius: 6px; "
        "padding: 8px 16px; font-weight: bold; }"
        " QPushButton:disabled { background: #9CA3AF; color: #F3F4F6; }"
    )
