"""Settings: the agent (its environment and branch), the API key (OS keyring), the
server or region; Audio: the devices with a microphone test (a live meter) and a
speaker test (a chime), echo cancellation, text only; Appearance and history: the theme
(previewed in the window at once), the history, whether to show the agent's reasoning;
on the Hotword page, the hotword hands-free listens for, push-to-talk and its key, and
the recorder that makes your own hotword (:class:`~voicedesk.ui.hotword_page.HotwordPage`).
The dialog only collects a :class:`~voicedesk.launch.SettingsForm`; validating and
saving it is :func:`voicedesk.launch.apply_settings_form`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from voicedesk.launch import DEFAULT_TALK_KEY, SettingsForm
from voicedesk.ui.device_check import DeviceCheck
from voicedesk.ui.theme import THEME_LABELS, THEMES
from voicedesk.ui.widgets import LevelMeter


@runtime_checkable
class _Themed(Protocol):
    """The window the dialog belongs to, as far as the theme preview needs it."""

    @property
    def theme_choice(self) -> str: ...

    def set_theme(self, choice: str) -> None: ...


REGIONS = ("", "global", "us", "eu", "in", "sg")
DEFAULT_DEVICE = "System default"
DEFAULT_HOTWORD_LABEL = "Hey Eleven (built in)"


class SettingsDialog(QDialog):
    """Modal only over the window's own settings; the conversation keeps running."""

    def __init__(
        self,
        form: SettingsForm,
        *,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        has_saved_key: bool = False,
        hotwords: Sequence[str] = (),
        hotword_page: QWidget | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("voicedesk settings")
        self._has_saved_key = has_saved_key
        self._hands_free = form.hands_free
        outer = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("settingsTabs")
        outer.addWidget(self.tabs)
        agent_page = QWidget()
        agent_page.setObjectName("agentPage")
        self.tabs.addTab(agent_page, "Agent")
        layout = QVBoxLayout(agent_page)
        intro = QLabel(
            "Connect your ElevenLabs agent. A public agent needs only its ID; a private "
            "one also needs an API key, which is kept in your system's keyring, never in a file."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QFormLayout()
        layout.addLayout(grid)

        self.agent_id = QLineEdit(form.agent_id)
        self.agent_id.setObjectName("agentIdInput")
        self.agent_id.setPlaceholderText("agent_…")
        grid.addRow("Agent ID", self.agent_id)

        self.api_key = QLineEdit()
        self.api_key.setObjectName("apiKeyInput")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText(
            "saved in the keyring (type to replace)" if has_saved_key else "only for private agents"
        )
        grid.addRow("API key", self.api_key)
        self.forget_key = QCheckBox("Forget the saved API key")
        self.forget_key.setObjectName("forgetKeyCheck")
        self.forget_key.setVisible(has_saved_key)
        grid.addRow("", self.forget_key)

        self.server = QComboBox()
        self.server.setObjectName("serverInput")
        self.server.setEditable(True)
        self.server.addItems(list(REGIONS))
        self.server.setCurrentText(form.server_url)
        editor = self.server.lineEdit()
        if editor is not None:
            editor.setPlaceholderText("global, us, eu, in, sg, or a URL")
        grid.addRow("Region or server", self.server)

        self.environment = QLineEdit(form.environment)
        self.environment.setObjectName("environmentInput")
        self.environment.setPlaceholderText("optional: the agent's environment, e.g. staging")
        grid.addRow("Environment", self.environment)
        self.branch_id = QLineEdit(form.branch_id)
        self.branch_id.setObjectName("branchIdInput")
        self.branch_id.setPlaceholderText("optional: one of the agent's branches")
        grid.addRow("Branch ID", self.branch_id)

        self.user_id = QLineEdit(form.user_id)
        self.user_id.setObjectName("userIdInput")
        self.user_id.setPlaceholderText("optional")
        grid.addRow("Your user ID", self.user_id)

        self.transport = QComboBox()
        self.transport.setObjectName("transportCombo")
        self.transport.addItem("WebSocket (default)", "websocket")
        self.transport.addItem("WebRTC (LiveKit, as the official client)", "webrtc")
        self.transport.setCurrentIndex(max(0, self.transport.findData(form.transport)))
        self.transport.setToolTip(
            "How the voice travels. WebRTC sends it as Opus over UDP: less data, and it copes "
            "with a poor network. Text-only conversations always use the WebSocket."
        )
        grid.addRow("Connection", self.transport)
        self.livekit_url = QLineEdit(form.livekit_url)
        self.livekit_url.setObjectName("livekitUrlInput")
        self.livekit_url.setPlaceholderText("optional: wss://… instead of the region's server")
        grid.addRow("LiveKit server", self.livekit_url)
        layout.addStretch(1)
        self.tabs.addTab(self._build_audio_page(form, inputs, outputs), "Audio")
        grid = self._build_conversation_page(form)
        self.history = QCheckBox("Keep a history of conversations (on this computer)")
        self.history.setObjectName("historyCheck")
        self.history.setChecked(form.history)
        self.history.setToolTip(
            "Every conversation is written down as it happens, in voicedesk's data folder; "
            "`voicedesk history` lists, shows, exports and deletes them."
        )
        grid.addRow("", self.history)
        self.history_days = QSpinBox()
        self.history_days.setObjectName("historyDaysSpin")
        self.history_days.setRange(0, 3650)
        self.history_days.setSpecialValueText("keep them all")
        self.history_days.setSuffix(" days")
        self.history_days.setValue(form.history_days)
        grid.addRow("Delete conversations after", self.history_days)
        self.show_reasoning = QCheckBox("Show the agent's reasoning in the transcript")
        self.show_reasoning.setObjectName("showReasoningCheck")
        self.show_reasoning.setChecked(form.show_reasoning)
        grid.addRow("", self.show_reasoning)

        self.hotword_page = self._build_hotword_page(form, hotwords, hotword_page)
        self.tabs.addTab(self.hotword_page, "Hotword")
        self.tabs.addTab(self._build_tools_page(form), "Tools")

        self.error = QLabel()
        self.error.setObjectName("settingsError")
        self.error.setWordWrap(True)
        self.error.hide()
        outer.addWidget(self.error)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)

    def _build_hotword_page(
        self, form: SettingsForm, hotwords: Sequence[str], recorder: QWidget | None
    ) -> QWidget:
        page = QWidget()
        page.setObjectName("hotwordPage")
        layout = QVBoxLayout(page)
        intro = QLabel(
            "Hands-free listens for the hotword on this computer and starts a conversation "
            "when it hears it; nothing leaves the computer until then."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QFormLayout()
        layout.addLayout(grid)
        self.wake_word = QComboBox()
        self.wake_word.setObjectName("wakeWordCombo")
        self.wake_word.setEditable(True)
        self.wake_word.addItem(DEFAULT_HOTWORD_LABEL, "")
        for name in hotwords:
            self.wake_word.addItem(name, name)
        current = form.wake_word.strip()
        if current:
            at = self.wake_word.findData(current)
            if at < 0:
                self.wake_word.addItem(current, current)
                at = self.wake_word.count() - 1
            self.wake_word.setCurrentIndex(at)
        editor = self.wake_word.lineEdit()
        if editor is not None:
            editor.setPlaceholderText("a hotword's name, or the path of a reference file")
        grid.addRow("Hotword", self.wake_word)
        self.push_to_talk = QCheckBox("Push-to-talk: hold the talk key to speak")
        self.push_to_talk.setObjectName("pushToTalkCheck")
        self.push_to_talk.setChecked(form.push_to_talk)
        self.push_to_talk.setToolTip(
            "The microphone sends silence unless you hold the talk key or the talk button"
        )
        grid.addRow("", self.push_to_talk)
        self.talk_key = QKeySequenceEdit(QKeySequence(form.talk_key or DEFAULT_TALK_KEY))
        self.talk_key.setObjectName("talkKeyEdit")
        self.talk_key.setMaximumSequenceLength(1)
        self.talk_key.setToolTip(
            "The key to hold while you speak (not while typing in the message box)"
        )
        grid.addRow("Talk key", self.talk_key)
        if recorder is not None:
            layout.addWidget(recorder)
        layout.addStretch(1)
        return page

    def add_hotword(self, name: str) -> None:
        """A hotword was just built: offer it, chosen."""
        at = self.wake_word.findData(name)
        if at < 0:
            self.wake_word.addItem(name, name)
            at = self.wake_word.count() - 1
        self.wake_word.setCurrentIndex(at)

    def chosen_hotword(self) -> str:
        """The hotword chosen ("" for the built-in one)."""
        text = self.wake_word.currentText().strip()
        if text == DEFAULT_HOTWORD_LABEL:
            return ""
        at = self.wake_word.findText(text)
        data = self.wake_word.itemData(at) if at >= 0 else None
        return str(data) if isinstance(data, str) else text

    def _build_audio_page(
        self, form: SettingsForm, inputs: Sequence[str], outputs: Sequence[str]
    ) -> QWidget:
        """The devices, with a live microphone meter and a chime for the speaker."""
        page = QWidget()
        page.setObjectName("audioPage")
        grid = QFormLayout(page)
        self.input_device = self._device_combo("inputDeviceCombo", inputs, form.input_device)
        self.mic_test = QPushButton("Test")
        self.mic_test.setObjectName("micTestButton")
        self.mic_test.setCheckable(True)
        self.mic_test.setAccessibleName("Test the microphone")
        self.mic_test.setAccessibleDescription("Show the chosen microphone's level as you speak")
        self.mic_meter = LevelMeter("Microphone test level")
        self.mic_meter.setObjectName("micTestMeter")
        self.mic_meter.setAccessibleDescription("The microphone's level while the test runs")
        row = QHBoxLayout()
        row.addWidget(self.input_device, 1)
        row.addWidget(self.mic_test)
        grid.addRow("Microphone", row)
        grid.addRow("", self.mic_meter)
        self.output_device = self._device_combo("outputDeviceCombo", outputs, form.output_device)
        self.speaker_test = QPushButton("Play a chime")
        self.speaker_test.setObjectName("speakerTestButton")
        self.speaker_test.setAccessibleName("Test the speaker")
        self.speaker_test.setAccessibleDescription("Play a short chime on the chosen speaker")
        row = QHBoxLayout()
        row.addWidget(self.output_device, 1)
        row.addWidget(self.speaker_test)
        grid.addRow("Speaker", row)
        self.device_note = QLabel("")
        self.device_note.setObjectName("deviceTestNote")
        self.device_note.setWordWrap(True)
        grid.addRow("", self.device_note)

        self.echo = QCheckBox("Echo cancellation (turn off with headphones)")
        self.echo.setObjectName("echoCancellationCheck")
        self.echo.setChecked(form.echo_cancellation)
        grid.addRow("", self.echo)
        self.text_only = QCheckBox("Text only (no microphone or speaker)")
        self.text_only.setObjectName("textOnlyCheck")
        self.text_only.setChecked(form.text_only)
        grid.addRow("", self.text_only)

        self.device_check = DeviceCheck(self)
        self.device_check.levelChanged.connect(self.mic_meter.set_level)
        self.device_check.micChanged.connect(self._on_mic_test)
        self.device_check.failed.connect(self._on_device_failed)
        self.device_check.chimeFinished.connect(
            lambda: self.device_note.setText("The chime played. Did you hear it?")
        )
        self.mic_test.toggled.connect(self._toggle_mic_test)
        self.speaker_test.clicked.connect(self._play_chime)
        self.input_device.currentIndexChanged.connect(lambda _: self._restart_mic_test())
        return page

    def _build_conversation_page(self, form: SettingsForm) -> QFormLayout:
        """The look (theme), the history and the reasoning."""
        page = QWidget()
        page.setObjectName("conversationSettingsPage")
        self.tabs.addTab(page, "Appearance and history")
        grid = QFormLayout(page)
        self.theme = QComboBox()
        self.theme.setObjectName("themeCombo")
        self.theme.setAccessibleName("Theme")
        self.theme.setAccessibleDescription("Light, dark, or as the system says")
        for value in THEMES:
            self.theme.addItem(THEME_LABELS[value], value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(form.theme)))
        self._theme_before = form.theme
        self.theme.currentIndexChanged.connect(lambda _: self._preview_theme())
        grid.addRow("Theme", self.theme)
        return grid

    def _preview_theme(self) -> None:
        """The window shows the chosen theme at once (Cancel puts the old one back)."""
        window = self.parentWidget()
        if isinstance(window, _Themed):
            window.set_theme(str(self.theme.currentData()))

    def _toggle_mic_test(self, on: bool) -> None:
        if on:
            self.device_note.setText("Speak: the meter shows what the microphone hears.")
            self.device_check.start_mic(self.input_device.currentData())
        else:
            self.device_check.stop_mic()

    def _restart_mic_test(self) -> None:
        if self.device_check.mic_running:
            self.device_check.start_mic(self.input_device.currentData())

    def _on_mic_test(self, on: bool) -> None:
        self.mic_test.blockSignals(True)
        self.mic_test.setChecked(on)
        self.mic_test.blockSignals(False)
        self.mic_test.setText("Stop" if on else "Test")

    def _play_chime(self) -> None:
        self.device_note.setText("Playing a chime…")
        self.device_check.play_chime(self.output_device.currentData())

    def _on_device_failed(self, sentence: str) -> None:
        self._on_mic_test(self.device_check.mic_running)
        self.device_note.setText(sentence)

    def done(self, result: int) -> None:
        """Closing stops the device tests; Cancel puts the theme back."""
        self.device_check.close()
        if result != QDialog.DialogCode.Accepted:
            window = self.parentWidget()
            if isinstance(window, _Themed) and window.theme_choice != self._theme_before:
                window.set_theme(self._theme_before)
        super().done(result)

    @staticmethod
    def _device_combo(name: str, devices: Sequence[str], current: str | None) -> QComboBox:
        combo = QComboBox()
        combo.setObjectName(name)
        combo.addItem(DEFAULT_DEVICE, None)
        for device in devices:
            combo.addItem(device, device)
        if current:
            at = combo.findData(current)
            if at < 0:
                combo.addItem(f"{current} (not found now)", current)
                at = combo.count() - 1
            combo.setCurrentIndex(at)
        return combo

    def _build_tools_page(self, form: SettingsForm) -> QWidget:
        """Per tool, for the agent of this form: Allow, Ask or Never."""
        page = QWidget()
        page.setObjectName("toolsPage")
        layout = QVBoxLayout(page)
        about = QLabel(
            "Whether the agent may run each tool on this computer. Allow: at its word, as "
            "in the tutorial. Ask: a question first, answered within the tool's time "
            "(the agent's response timeout must leave room for it). Never: refused."
        )
        about.setWordWrap(True)
        layout.addWidget(about)
        grid = QFormLayout()
        layout.addLayout(grid)
        self.tool_permissions: dict[str, QComboBox] = {}
        for tool, permission in form.tool_permissions.items():
            combo = QComboBox()
            combo.setObjectName(f"permission_{tool}")
            combo.setAccessibleName(f"Permission for {tool}")
            for label, value in (("Allow", "allow"), ("Ask", "ask"), ("Never", "never")):
                combo.addItem(label, value)
            combo.setCurrentIndex(max(0, combo.findData(permission)))
            self.tool_permissions[tool] = combo
            grid.addRow(tool, combo)
        layout.addStretch(1)
        return page

    def form(self) -> SettingsForm:
        key = self.api_key.text()
        api_key: str | None = key if key else None
        if self.forget_key.isChecked() and not key:
            api_key = ""
        return SettingsForm(
            agent_id=self.agent_id.text(),
            api_key=api_key,
            server_url=self.server.currentText(),
            user_id=self.user_id.text(),
            input_device=self.input_device.currentData(),
            output_device=self.output_device.currentData(),
            echo_cancellation=self.echo.isChecked(),
            text_only=self.text_only.isChecked(),
            environment=self.environment.text(),
            branch_id=self.branch_id.text(),
            show_reasoning=self.show_reasoning.isChecked(),
            hands_free=self._hands_free,
            wake_word=self.chosen_hotword(),
            push_to_talk=self.push_to_talk.isChecked(),
            talk_key=self.talk_key.keySequence().toString() or DEFAULT_TALK_KEY,
            transport=str(self.transport.currentData()),
            livekit_url=self.livekit_url.text(),
            history=self.history.isChecked(),
            history_days=self.history_days.value(),
            theme=str(self.theme.currentData()),
            tool_permissions={t: str(c.currentData()) for t, c in self.tool_permissions.items()},
        )

    def show_error(self, sentence: str) -> None:
        self.error.setText(sentence)
        self.error.show()

    def add_page(self, page: QWidget, title: str) -> None:
        """A page built elsewhere (the Desktop page: ui/desktop_page.py), as a tab."""
        self.tabs.addTab(page, title)
