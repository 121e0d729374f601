"""The main window: a header (the agent, the status, the latency), the voice orb beside
the conversation, and a composer (the message box, Send, Send as context, the
text/voice switch, the volume, the devices). The tutorial's screen is all here: status,
speaking indicator, start/end, feedback on the latest reply, message and context; plus
the MCP approval and tool-permission cards, hands-free, push-to-talk, History, Continue
after a drop, the error banner and the first-run choice. Compact mode
(:meth:`MainWindow.set_compact`) keeps only the orb, the status and mute.

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
from PySide6.QtGui import (
    QAccessible,
    QAccessibleAnnouncementEvent,
    QCloseEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractButton,
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
from voicedesk.session.transcript import (
    LineKind,
    Speaker,
    approval_time_s,
    approval_title,
    parameter_rows,
)
from voicedesk.ui import icons, theme
from voicedesk.ui.controller import ConversationController
from voicedesk.ui.orb import VoiceOrb
from voicedesk.ui.transcript_view import TranscriptView
from voicedesk.ui.widgets import (
    STATUS_WORDS,
    ApprovalCard,
    ElidedLabel,
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
    "compact": "Ctrl+Shift+M",
    "orb": "Ctrl+O",
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
    ``demoRequested``: the first-run "Try the demo agent" choice. ``compactChanged``:
    the window entered (``True``) or left compact mode. ``announced``: a sentence was
    given to screen readers (a new agent reply)."""

    settingsRequested = Signal()
    historyRequested = Signal()
    demoRequested = Signal()
    inputDeviceChosen = Signal(object)
    outputDeviceChosen = Signal(object)
    handsFreeToggled = Signal(bool)  # the user flipped the Hands-free switch
    compactChanged = Signal(bool)
    announced = Signal(str)

    def __init__(self, controller: ConversationController, *, first_run: bool = False) -> None:
        super().__init__()
        self.controller = controller
        self.setObjectName("mainWindow")
        self.setWindowTitle("voicedesk")
        em = self.fontMetrics().height()
        self.resize(em * 48, em * 40)
        self._on_close: Callable[[], None] | None = None
        self.approval_cards: dict[str, ApprovalCard] = {}
        self._compact = False
        self._full_size = self.size()
        self._awaiting_reply = False  # the user spoke or typed; the agent has not answered
        self._announced: dict[int, str] = {}
        self._theme_choice = controller.plan.theme
        self._theme_applied: theme.Palette | None = None
        self.palette_in_use = theme.LIGHT

        central = QWidget(self)
        self.setCentralWidget(central)
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_header())
        self.banner = ErrorBanner(central)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(em // 2, em // 3, em // 2, 0)
        banner_row.addWidget(self.banner)
        root.addLayout(banner_row)

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
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._on_system_scheme)
        self.set_theme(self._theme_choice)
        self._refresh()
        self.message_input.setFocus()  # typing works at once; Ctrl+O for the orb

    # ------------------------------------------------------------------ layout

    def _build_header(self) -> QWidget:
        header = QWidget()
        header.setObjectName("header")
        header.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        row = QHBoxLayout(header)
        em = self.fontMetrics().height()
        row.setContentsMargins(em, em // 2, em // 2, em // 2)
        self.status_dot = StatusDot()
        self.status_dot.setObjectName("statusDot")
        self.status_label = QLabel(STATUS_WORDS["disconnected"])
        _name(self.status_label, "statusLabel")
        font = self.status_label.font()
        font.setBold(True)
        self.status_label.setFont(font)
        self.agent_label = ElidedLabel("")
        _name(self.agent_label, "agentLabel", "Who the conversation is with")
        self.latency_label = QLabel("")
        _name(self.latency_label, "latencyLabel", "Round-trip time to the agent, from its pings")
        self.speaking = SpeakingIndicator()
        self.speaking.setAccessibleName("Agent listening")
        self.history_button = self._tool_button(
            "historyButton",
            "History",
            "history",
            f"Past conversations: search, read, export, delete ({SHORTCUTS['history']})",
        )
        self.history_button.clicked.connect(self.historyRequested.emit)
        self.settings_button = self._tool_button(
            "settingsButton",
            "Settings",
            "settings",
            f"Settings: agent, devices, echo cancellation, theme ({SHORTCUTS['settings']})",
        )
        self.settings_button.clicked.connect(self.settingsRequested.emit)
        self.compact_button = self._tool_button(
            "compactButton",
            "Compact",
            "compact",
            f"Compact mode: only the orb, the status and mute ({SHORTCUTS['compact']})",
        )
        self.compact_button.setCheckable(True)
        self.compact_button.toggled.connect(self.set_compact)
        self.on_top_button = self._tool_button(
            "onTopButton", "On top", "expand", "Keep the compact window above other windows"
        )
        self.on_top_button.setCheckable(True)
        self.on_top_button.toggled.connect(self.set_always_on_top)
        self.on_top_button.hide()
        # Who, above how it goes: the status, the latency, whether the agent speaks.
        who = QVBoxLayout()
        who.setSpacing(0)
        who.addWidget(self.agent_label)
        status = QHBoxLayout()
        status.setSpacing(em // 3)
        status.addWidget(self.status_dot)
        status.addWidget(self.status_label)
        status.addSpacing(em // 2)
        status.addWidget(self.latency_label)
        status.addWidget(self.speaking)
        status.addStretch(1)
        who.addLayout(status)
        row.addLayout(who, 1)
        row.addWidget(self.history_button)
        row.addWidget(self.settings_button)
        row.addWidget(self.on_top_button)
        row.addWidget(self.compact_button)
        self.header = header
        return header

    def _tool_button(self, name: str, text: str, icon_name: str, description: str) -> QToolButton:
        button = QToolButton()
        _name(button, name, description)
        button.setText(text)
        button.setProperty("icon_name", icon_name)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        return button

    def _build_welcome(self) -> QWidget:
        page = QWidget()
        page.setObjectName("welcomePage")
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        self.welcome_orb = VoiceOrb()
        self.welcome_orb.setObjectName("welcomeOrb")
        self.welcome_orb.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.welcome_orb.setMinimumHeight(self.fontMetrics().height() * 7)
        self.welcome_orb.set_action("Try the demo agent")
        self.welcome_orb.activated.connect(self.demoRequested.emit)
        layout.addWidget(self.welcome_orb, 2)
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
        self.demo_button.setProperty("primary", True)
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
        em = self.fontMetrics().height()
        outer = QVBoxLayout(page)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        body = QHBoxLayout()
        body.setContentsMargins(em // 2, em // 2, em // 2, em // 2)
        body.addWidget(self._build_stage())
        self.main_column = QWidget()
        self.main_column.setObjectName("mainColumn")
        column = QVBoxLayout(self.main_column)
        column.setContentsMargins(0, 0, 0, 0)

        self.transcript_view = TranscriptView(self.controller.transcript)
        self.transcript_view.lineChanged.connect(self._on_line)
        column.addWidget(self.transcript_view, 1)
        self.typing_label = QLabel("Agent is typing…")
        _name(self.typing_label, "agentTypingLabel", "The agent is typing a reply")
        self.typing_label.setProperty("subtle", True)
        self.typing_label.hide()
        column.addWidget(self.typing_label)

        # MCP tool calls and tools set to Ask: one card each, in the conversation.
        self.approval_area = QWidget()
        self.approval_area.setObjectName("approvalArea")
        self._approval_layout = QVBoxLayout(self.approval_area)
        self._approval_layout.setContentsMargins(0, 0, 0, 0)
        self.approval_area.hide()
        self.transcript_view.set_tail(self.approval_area)  # inline, after the latest turn
        # The thumbs sit under the agent's latest reply, in the conversation.
        self.transcript_view.set_reply_footer(self._build_feedback())
        body.addWidget(self.main_column, 1)
        outer.addLayout(body, 1)
        outer.addWidget(self._build_composer())
        return page

    def _build_stage(self) -> QWidget:
        """The orb, what it means, and the conversation's own controls."""
        em = self.fontMetrics().height()
        stage = QWidget()
        stage.setObjectName("stage")
        stage.setMinimumWidth(em * 13)
        stage.setMaximumWidth(em * 17)
        layout = QVBoxLayout(stage)
        layout.setContentsMargins(0, 0, em // 2, 0)
        self.orb = VoiceOrb()
        self.orb.activated.connect(self._on_orb_activated)
        layout.addWidget(self.orb, 1)
        self.orb_caption = QLabel("")
        _name(self.orb_caption, "orbCaption", "What the agent is doing")
        self.orb_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.orb_caption.setWordWrap(True)
        layout.addWidget(self.orb_caption)

        self.start_button = QPushButton("Start conversation")
        _name(self.start_button, "startButton", f"Start a conversation ({SHORTCUTS['start']})")
        self.start_button.setProperty("primary", True)
        self.end_button = QPushButton("End conversation")
        _name(self.end_button, "endButton", f"End the conversation ({SHORTCUTS['end']})")
        self.end_button.setProperty("danger", True)
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
        self.call_controls = QWidget()
        self.call_controls.setObjectName("callControls")
        calls = QVBoxLayout(self.call_controls)
        calls.setContentsMargins(0, 0, 0, 0)
        calls.addWidget(self.continue_button)
        calls.addWidget(self.start_button)
        calls.addWidget(self.end_button)
        layout.addWidget(self.call_controls)

        self.mute_button = QPushButton("Mute")
        _name(self.mute_button, "muteButton", f"Mute the microphone ({SHORTCUTS['mute']})")
        self.mute_button.setProperty("icon_name", "mic")
        self.mute_button.setCheckable(True)
        self.mute_button.toggled.connect(self._on_mute_toggled)
        layout.addWidget(self.mute_button)
        layout.addWidget(self._build_hands_free())
        return stage

    def _build_hands_free(self) -> QWidget:
        box = self.hands_free_row = QWidget()
        box.setObjectName("handsFreeRow")
        line = QVBoxLayout(box)
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
        self.hands_free_status.setWordWrap(True)
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
        line.addWidget(self.hands_free_status)
        line.addWidget(self.talk_state)
        line.addWidget(self.talk_button)
        return box

    def _build_feedback(self) -> QWidget:
        feedback = QHBoxLayout()
        em = self.fontMetrics().height()
        feedback.setContentsMargins(em // 2, 0, 0, em // 3)
        self.feedback_label = QLabel(FEEDBACK_PROMPT)
        _name(self.feedback_label, "feedbackLabel", "The rating of the agent's latest reply")
        self.like_button = QToolButton()
        _name(self.like_button, "likeButton", "Rate the agent's latest answer as good")
        self.like_button.setText("Good")
        self.like_button.setProperty("icon_name", "thumb-up")
        self.dislike_button = QToolButton()
        _name(self.dislike_button, "dislikeButton", "Rate the agent's latest answer as bad")
        self.dislike_button.setText("Bad")
        self.dislike_button.setProperty("icon_name", "thumb-down")
        for button in (self.like_button, self.dislike_button):
            button.setCheckable(True)  # checked: the current rating; pressed again, cleared
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.like_button.clicked.connect(lambda: self._send_feedback(True))
        self.dislike_button.clicked.connect(lambda: self._send_feedback(False))
        feedback.addWidget(self.feedback_label)
        feedback.addWidget(self.like_button)
        feedback.addWidget(self.dislike_button)
        feedback.addStretch(1)
        self.feedback_row = QWidget()
        self.feedback_row.setObjectName("feedbackRow")
        self.feedback_row.setLayout(feedback)
        return self.feedback_row

    def _build_composer(self) -> QWidget:
        em = self.fontMetrics().height()
        composer = QWidget()
        composer.setObjectName("composer")
        composer.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        layout = QVBoxLayout(composer)
        layout.setContentsMargins(em, em // 2, em, em // 2)
        row = QHBoxLayout()
        self.message_input = MessageInput()
        self.message_input.submitted.connect(self._send_message)
        self.message_input.typing.connect(self.controller.user_typing)
        self.message_input.textChanged.connect(self._refresh_message_buttons)
        row.addWidget(self.message_input, 1)
        sends = QVBoxLayout()
        self.send_message_button = QPushButton("Send")
        _name(self.send_message_button, "sendMessageButton", "Send the text to the agent (Enter)")
        self.send_message_button.setProperty("primary", True)
        self.send_message_button.setProperty("icon_name", "send")
        self.send_context_button = QPushButton("Send as context")
        _name(
            self.send_context_button,
            "sendContextButton",
            "Give the agent background information without asking for an answer",
        )
        self.send_context_button.setProperty("icon_name", "context")
        self.send_message_button.clicked.connect(self._send_message)
        self.send_context_button.clicked.connect(self._send_context)
        sends.addWidget(self.send_message_button)
        sends.addWidget(self.send_context_button)
        row.addLayout(sends)
        layout.addLayout(row)

        tools = QHBoxLayout()
        self.voice_switch = QCheckBox("Voice")
        _name(
            self.voice_switch,
            "voiceSwitch",
            "Voice: talk and listen; off: text only (for the next conversation)",
        )
        self.voice_switch.setChecked(not self.controller.plan.options.text_only)
        self.voice_switch.toggled.connect(self._on_voice_toggled)
        tools.addWidget(self.voice_switch)
        tools.addSpacing(em)
        volume_icon = QLabel("Volume")
        volume_icon.setObjectName("volumeLabel")
        self.volume = QSlider(Qt.Orientation.Horizontal)
        _name(self.volume, "volumeSlider", "The agent's volume")
        self.volume.setRange(0, 100)
        self.volume.setValue(100)
        self.volume.setMaximumWidth(em * 7)
        self.volume.valueChanged.connect(lambda v: self.controller.set_volume(v / 100))
        volume_icon.setBuddy(self.volume)
        tools.addWidget(volume_icon)
        tools.addWidget(self.volume)
        tools.addStretch(1)
        self.devices_button = self._tool_button(
            "devicesButton",
            "Devices",
            "devices",
            "Show the microphone and speaker in use, with their levels, to switch during a call",
        )
        self.devices_button.setCheckable(True)
        tools.addWidget(self.devices_button)
        layout.addLayout(tools)
        self.audio_row = self._build_audio_row()
        self.audio_row.hide()
        self.devices_button.toggled.connect(self.audio_row.setVisible)
        layout.addWidget(self.audio_row)
        self.composer = composer
        return composer

    def _build_audio_row(self) -> QWidget:
        """The devices in use and their meters: behind the Devices button (Settings has
        the rest: echo cancellation, the microphone and speaker tests)."""
        row = QWidget()
        row.setObjectName("audioRow")
        grid = QHBoxLayout(row)
        grid.setContentsMargins(0, 0, 0, 0)
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
        mic = QLabel("Mic")
        mic.setBuddy(self.input_combo)
        speaker = QLabel("Speaker")
        speaker.setBuddy(self.output_combo)
        grid.addWidget(mic)
        grid.addWidget(self.input_combo)
        grid.addWidget(self.input_meter)
        grid.addSpacing(8)
        grid.addWidget(speaker)
        grid.addWidget(self.output_combo)
        grid.addWidget(self.output_meter)
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
        bind(SHORTCUTS["compact"], lambda: self.set_compact(not self._compact))
        bind(SHORTCUTS["orb"], self.orb.setFocus)

    def _connect_controller(self) -> None:
        c = self.controller
        c.statusChanged.connect(self._on_status_changed)
        c.startingChanged.connect(lambda _: self._refresh())
        c.modeChanged.connect(self._on_mode_changed)
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
        self.agent_label.setToolTip(agent_description)
        self.pages.setCurrentIndex(1)
        self.voice_switch.blockSignals(True)
        self.voice_switch.setChecked(not self.controller.plan.options.text_only)
        self.voice_switch.blockSignals(False)
        self.set_theme(self.controller.plan.theme)  # the settings may have changed it
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

    # ------------------------------------------------------------------ compact mode

    @property
    def compact(self) -> bool:
        """Compact mode: only the orb, the status and mute."""
        return self._compact

    def set_compact(self, on: bool) -> None:
        """Enter or leave compact mode (``compactChanged`` tells who listens)."""
        on = bool(on)
        if on == self._compact:
            return
        if on:
            self._full_size = self.size()
        self._compact = on
        for widget in (
            self.main_column,
            self.composer,
            self.call_controls,
            self.agent_label,
            self.latency_label,
            self.speaking,
            self.history_button,
            self.settings_button,
        ):
            widget.setVisible(not on)
        self.hands_free_row.setVisible(not on)
        self.on_top_button.setVisible(on)
        self.compact_button.blockSignals(True)
        self.compact_button.setChecked(on)
        self.compact_button.blockSignals(False)
        self.compact_button.setText("Full" if on else "Compact")
        self.compact_button.setAccessibleDescription(
            "Leave compact mode: the whole window" if on else "Compact mode: only the orb"
        )
        if on:
            self.pages.setCurrentIndex(1)
            em = self.fontMetrics().height()
            self.setMinimumSize(0, 0)
            self.resize(em * 20, em * 20)
        else:
            self.set_always_on_top(False)
            self.resize(self._full_size)
            self._refresh()
        self.compactChanged.emit(on)

    def set_always_on_top(self, on: bool) -> None:
        """Keep the window above the others (offered in compact mode)."""
        flags = self.windowFlags()
        if bool(flags & Qt.WindowType.WindowStaysOnTopHint) == on:
            return
        shown = self.isVisible()
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, on)
        self.on_top_button.blockSignals(True)
        self.on_top_button.setChecked(on)
        self.on_top_button.blockSignals(False)
        if shown:
            self.show()  # changing the flags hides a window

    # ------------------------------------------------------------------ theme

    @property
    def theme_choice(self) -> str:
        return self._theme_choice

    def set_theme(self, choice: str) -> None:
        """The theme: "system", "light" or "dark"; the orb, the bubbles and the icons follow."""
        choice = choice if choice in theme.THEMES else "system"
        if choice == self._theme_choice and theme.resolve(choice) is self._theme_applied:
            return  # already drawn so (a style sheet costs ~15 ms to apply)
        self._theme_choice = choice
        palette = theme.apply(choice)
        self._theme_applied = palette
        self.palette_in_use = palette
        self.setPalette(theme.qpalette(palette))
        self.setStyleSheet(theme.style_sheet(palette))
        self.orb.set_palette(palette)
        self.speaking.set_colors(palette.link, palette.muted)
        self.welcome_orb.set_palette(palette)
        self.transcript_view.set_palette(palette)
        for button in self.findChildren(QAbstractButton):
            name = button.property("icon_name")
            if isinstance(name, str):
                color = palette.on_accent if button.property("primary") else palette.text
                button.setIcon(icons.icon(name, color, palette.muted))
        self._refresh_mute_icon()

    def _on_system_scheme(self, _scheme: object) -> None:
        if self._theme_choice == "system":
            self.set_theme("system")

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _choice(combo: QComboBox) -> DeviceChoice:
        return combo.currentText(), combo.currentData()

    def _on_orb_activated(self) -> None:
        c = self.controller
        if c.can_end:
            c.end()
        elif c.can_continue:
            c.continue_conversation()
        elif c.can_start:
            c.start()

    def _on_voice_toggled(self, voice: bool) -> None:
        self.controller.set_text_only(not voice)
        self._refresh()

    def _send_message(self) -> None:
        if self.controller.send_message(self.message_input.text()):
            self.message_input.clear()
            self._awaiting_reply = True
            self._refresh_orb()

    def _send_context(self) -> None:
        if self.controller.send_context(self.message_input.text()):
            self.message_input.clear()

    def _send_feedback(self, like: bool) -> None:
        self.controller.send_feedback(like)
        self._refresh_feedback()  # the buttons show the rating, not the click

    def _on_line(self, index: int, _added: bool) -> None:
        """A transcript line came or changed: the orb's thinking, and the announcement
        of a new agent reply."""
        line = self.controller.transcript.lines[index]
        if line.speaker is Speaker.USER and not line.tentative:
            self._awaiting_reply = True
        elif line.speaker in (Speaker.AGENT, Speaker.ERROR):
            self._awaiting_reply = False
        if line.speaker is Speaker.AGENT and line.kind is LineKind.TEXT and not line.tentative:
            self._announce(index, line.text)
        self._refresh_orb()

    def _announce(self, index: int, text: str) -> None:
        """Tell screen readers a reply came (once per reply; a correction again)."""
        if not text.strip() or self._announced.get(index) == text:
            return
        self._announced[index] = text
        sentence = f"The agent said: {text}"
        event = QAccessibleAnnouncementEvent(self.transcript_view, sentence)
        event.setPoliteness(QAccessible.AnnouncementPoliteness.Polite)
        QAccessible.updateAccessibility(event)
        self.announced.emit(sentence)

    def _on_mode_changed(self, _mode: str) -> None:
        if self.controller.is_speaking:
            self._awaiting_reply = False
        self._refresh_speaking()
        self._refresh_orb()

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
        self._add_card(card)

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
        self._add_card(card)

    def _add_card(self, card: ApprovalCard) -> None:
        self.approval_cards[card.tool_call_id] = card
        self._approval_layout.addWidget(card)
        self.approval_area.show()
        if self._compact:
            self.set_compact(False)  # a question needs the whole window
        self.transcript_view.scroll_to_latest()

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
        self.talk_button.setText("Talking…" if talk.talking else "Hold to talk")
        self.talk_button.setChecked(talk.talking)
        self.talk_button.setAccessibleDescription(talk.text)

    def _on_mute_toggled(self, muted: bool) -> None:
        self.controller.set_muted(muted)
        self.mute_button.setText("Unmute" if muted else "Mute")
        self.mute_button.setAccessibleDescription(
            "The microphone is muted" if muted else "Mute the microphone"
        )
        self._refresh_mute_icon()

    def _refresh_mute_icon(self) -> None:
        muted = self.mute_button.isChecked()
        p = self.palette_in_use
        self.mute_button.setIcon(
            icons.icon("mic-off" if muted else "mic", p.on_accent if muted else p.text)
        )

    def _on_status_changed(self, status: str) -> None:
        if status == "connecting":
            self.banner.hide()
        if status != "connected":
            self._awaiting_reply = False
        self._refresh()

    def _on_latency(self, ms: int) -> None:
        self.latency_label.setText(f"Latency {ms} ms")

    def _on_levels(self, input_rms: float, output_rms: float) -> None:
        self.input_meter.set_level(input_rms)
        self.output_meter.set_level(output_rms)
        self.orb.set_levels(input_rms, output_rms)

    def _refresh(self) -> None:
        c = self.controller
        status = c.status
        self.status_dot.set_status(status)
        self.status_label.setText(STATUS_WORDS.get(status, status.capitalize()))
        self.status_label.setAccessibleDescription(f"Conversation status: {status}")
        self.start_button.setEnabled(c.can_start)
        self.start_button.setText("Starting…" if c.is_starting else "Start conversation")
        self.continue_button.setVisible(c.can_continue and not self._compact)
        self.end_button.setEnabled(c.can_end)
        self.voice_switch.setEnabled(status == "disconnected" and not c.is_starting)
        if status == "disconnected":
            self.latency_label.setText("")
        self._refresh_speaking()
        self._refresh_feedback()
        self._refresh_typing()
        self._refresh_message_buttons()
        self._refresh_audio()
        self._refresh_hands_free()
        self._refresh_talk()
        self._refresh_orb()

    def orb_state(self) -> str:
        """What the orb shows: idle, connecting, listening, thinking or speaking."""
        c = self.controller
        status = c.status
        if status == "connecting" or (c.is_starting and status == "disconnected"):
            return "connecting"
        if status != "connected":
            return "idle"
        if c.is_speaking:
            return "speaking"
        if self._awaiting_reply:
            return "thinking"
        return "listening"

    def _refresh_orb(self) -> None:
        state = self.orb_state()
        self.orb.set_state(state)
        c = self.controller
        if c.can_end:
            action = "End the conversation"
        elif c.can_continue:
            action = "Continue the conversation"
        elif c.can_start:
            action = "Start a conversation"
        else:
            action = "Wait"
        self.orb.set_action(action)
        text_only = c.status == "connected" and not c.is_voice
        caption = {
            "idle": "Click the orb or press Start to talk",
            "connecting": "Connecting…",
            "listening": "Type a message" if text_only else "Listening — go ahead",
            "thinking": "Thinking…",
            "speaking": "Speaking",
        }[state]
        self.orb_caption.setText(caption)

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
        self.hands_free_status.setVisible(bool(text))
        self.hands_free_status.setAccessibleDescription(text or "Hands-free is off")
        if c.hands_free and state is LoopState.LISTENING:
            self.start_button.setText("Start without the hotword")

    def _refresh_speaking(self) -> None:
        connected = self.controller.status == "connected"
        self.speaking.setVisible(connected and not self._compact)
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
        self.mute_button.setEnabled(not self.controller.plan.options.text_only or voice)
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
