"""Runs the window: Qt and asyncio on one thread (qasync), the window shown first,
heavier parts (audio devices, the local agent) loaded after it is visible.

:func:`run_window` is what ``voicedesk`` (without a command) calls.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QMessageLogContext,
    QObject,
    QTimer,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from voicedesk import APP_NAME, __version__
from voicedesk.config import Settings, load_api_key, load_settings, save_settings
from voicedesk.handsfree import HotwordTester, TakeRecorder
from voicedesk.launch import (
    Launcher,
    LaunchPlan,
    apply_settings_form,
    form_from_settings,
    has_display,
    resolve,
)
from voicedesk.tools import ToolRegistry
from voicedesk.ui.controller import ConversationController
from voicedesk.ui.desktop_page import DesktopChoices, DesktopPage
from voicedesk.ui.flash import OverlayFlash
from voicedesk.ui.hotword_page import HotwordPage
from voicedesk.ui.settings_dialog import SettingsDialog
from voicedesk.ui.shortcuts import MUTE, START_END, GlobalShortcuts, parse_bindings
from voicedesk.ui.tray import Notifier, TrayIcon
from voicedesk.ui.window import DeviceChoice, MainWindow

if TYPE_CHECKING:
    from voicedesk.audio.devices import DeviceInfo
    from voicedesk.localagent import AgentConfig

logger = logging.getLogger(__name__)

STARTUP_PROBE_ENV = "VOICEDESK_STARTUP_PROBE"
DEMO_DESCRIPTION = (
    "Local demo agent: it runs on this computer and stands in for an ElevenLabs agent."
)


def describe_plan(plan: LaunchPlan) -> str:
    if plan.demo:
        return DEMO_DESCRIPTION
    who = plan.options.agent_id or "a signed URL"
    return f"Agent {who} on {plan.options.server_url}"


class WindowShell(QObject):
    """Composes the window for one app run: launcher, controller, window, settings.

    ``args`` are the parsed command-line options; they keep priority over saved
    settings when the plan is worked out again after Settings change.

    Always at hand: the tray icon (:class:`~voicedesk.ui.tray.TrayIcon`, shown where
    the desktop has a tray; ``system_tray`` overrides Qt's answer for tests), the global
    shortcuts (``shortcut_env``: the environment that decides their backend), the close
    policy (closing the window during a conversation hides it in the tray unless
    Settings say closing quits) and the window's size, position and mode, saved when it
    closes and restored here.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        plan: LaunchPlan,
        settings: Settings,
        *,
        tools_factory: Callable[[], ToolRegistry] | None = None,
        demo_config: AgentConfig | None = None,
        system_tray: bool | None = None,
        notifier: Notifier | None = None,
        shortcut_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.args = args
        self.settings = settings
        self.flash = OverlayFlash()
        self._session_key: str | None = None  # a key the keyring could not keep
        first_run = plan.demo_reason is not None and not plan.hands_free
        self.controller = ConversationController(
            Launcher(
                plan,
                tools_factory or self._tools,
                on_levels=self._on_levels,
                demo_config=demo_config,
            )
        )
        self.window = MainWindow(self.controller, first_run=first_run)
        self.window.volume.setValue(round(100 * min(1.0, max(0.0, settings.volume))))
        self.window.volume.sliderReleased.connect(self._save_volume)
        self.window.settingsRequested.connect(self.open_settings)
        self.window.historyRequested.connect(self.open_history)
        self.window.demoRequested.connect(self.choose_demo)
        self.window.inputDeviceChosen.connect(lambda c: self._device_chosen(c, output=False))
        self.window.outputDeviceChosen.connect(lambda c: self._device_chosen(c, output=True))
        self.window.handsFreeToggled.connect(self._hands_free_toggled)
        self.window.set_close_handler(self._window_closed)
        if not first_run:
            self.window.show_conversation(describe_plan(plan))
        self.closed = asyncio.Event()
        self.devices: list[DeviceInfo] = []
        self._probe: QObject | None = None

        self._quitting = False
        has_tray = QSystemTrayIcon.isSystemTrayAvailable() if system_tray is None else system_tray
        self.tray = TrayIcon(
            self.controller, self.window, available=has_tray, notifier=notifier, parent=self
        )
        self.tray.quitRequested.connect(self.quit)
        self.tray.compactRequested.connect(self.set_compact)
        if not has_tray:
            logger.info(
                "no system tray on this desktop: no tray icon, and closing the window quits"
            )
        self.window.compactChanged.connect(self._compact_changed)
        self._close_guard = _CloseGuard(self.window, self._hide_instead_of_closing)
        self.shortcuts = GlobalShortcuts(shortcut_env, parent=self)
        self.shortcuts.triggered.connect(self._global_shortcut)
        if not settings.compact:
            self._restore_geometry()

    # ------------------------------------------------------------------ parts

    def _tools(self) -> ToolRegistry:
        from voicedesk.tools.desktop import desktop_tools

        return desktop_tools(self.flash)

    def _on_levels(self, input_rms: float, output_rms: float) -> None:
        self.controller.on_levels(input_rms, output_rms)

    def run(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        self.controller.runner.run(coro, what=what)

    # ------------------------------------------------------------------ after show

    def show(self) -> None:
        """Show the window; work that can wait runs once it is on screen."""
        probe = os.environ.get(STARTUP_PROBE_ENV)
        if probe:
            self._probe = _FirstPaintProbe(probe, self.window)
        self.window.show()
        if self.settings.compact:
            # Compact mode is entered once the window has laid itself out (before that
            # its first show gives the full layout's minimum size back); the full size
            # is then the default one.
            self.set_compact(True)
            self._restore_geometry()
        self.tray.show()
        QTimer.singleShot(0, self.after_show)

    def after_show(self) -> None:
        """Work that waits until the window is visible."""
        self.controller.launcher.preload()
        self.apply_shortcuts()
        plan = self.controller.plan
        if not plan.options.text_only:
            self.run(self.load_devices(), "list the audio devices")
            if plan.hands_free or (self.settings.hands_free and plan.demo_reason is None):
                self.window.set_hands_free(True)

    async def load_devices(self) -> None:
        from voicedesk.audio.devices import list_devices

        try:
            devices = await asyncio.to_thread(list_devices)
        except Exception as exc:
            logger.warning("device list failed: %s", exc)
            self.window.banner.show_message(
                "The sound system could not be opened, so conversations will be text only. "
                "Check that a microphone and speaker are connected."
            )
            return
        self.devices = devices
        inputs: list[DeviceChoice] = [(d.name, d.index) for d in devices if d.is_input]
        outputs: list[DeviceChoice] = [(d.name, d.index) for d in devices if d.is_output]
        self.window.set_devices(inputs, outputs)
        audio = self.controller.plan.audio
        self.window.select_devices(
            _index_of(devices, audio.input_device, output=False),
            _index_of(devices, audio.output_device, output=True),
        )

    # ------------------------------------------------------------------ user choices

    def choose_demo(self) -> None:
        plan = self._replan(force_demo=True)
        self.controller.set_plan(plan)
        self.window.show_conversation(describe_plan(plan))
        self.controller.start()

    def open_settings(self) -> None:
        names_in = [d.name for d in self.devices if d.is_input]
        names_out = [d.name for d in self.devices if d.is_output]
        page = self._hotword_page()
        desktop = DesktopPage(
            DesktopChoices.of(self.settings),
            shortcuts_sentence=self.shortcuts.sentence,
            has_tray=self.tray.available,
        )
        dialog = SettingsDialog(
            form_from_settings(self.settings),
            inputs=names_in,
            outputs=names_out,
            has_saved_key=self._has_saved_key(),
            hotwords=_saved_hotwords(),
            hotword_page=page,
            parent=self.window,
        )
        dialog.add_page(desktop, "Desktop")
        page.chosen_hotword = dialog.chosen_hotword
        page.built.connect(dialog.add_hotword)
        wake_word = self.controller.plan.wake_word
        # The takes and the live test must not start a conversation.
        self.controller.pause_hands_free(True)
        try:
            self._run_settings(dialog, desktop)
        finally:
            self.run(page.detach(), "close the microphone")
            self.controller.pause_hands_free(False)
        if self.controller.plan.wake_word != wake_word:
            self.controller.restart_hands_free()

    def open_history(self) -> None:
        from voicedesk.config import history_dir
        from voicedesk.ui.history_dialog import HistoryDialog

        dialog = HistoryDialog(history_dir(), parent=self.window)
        dialog.exec()
        dialog.deleteLater()

    def _hotword_page(self) -> HotwordPage:
        recorder = TakeRecorder(self.controller.launcher.ensure_engine)
        return HotwordPage(recorder, HotwordTester(recorder), self.run)

    def _run_settings(self, dialog: SettingsDialog, desktop: DesktopPage) -> None:
        while dialog.exec():
            form = dialog.form()
            choices = desktop.choices()
            try:
                parse_bindings(_shortcut_keys(choices))
                said = apply_settings_form(form, self.settings)
            except ValueError as exc:
                dialog.show_error(str(exc))
                continue
            self._apply_desktop(choices)
            if form.api_key:
                self._session_key = form.api_key.strip()
            elif form.api_key == "":
                self._session_key = None
            for sentence in said:
                logger.info("%s", sentence)
            if any("could not be saved" in s for s in said):
                self.window.banner.show_message(said[-1])
            plan = self._replan()
            self.controller.set_plan(plan)
            if plan.demo_reason is None:
                self.window.show_conversation(describe_plan(plan))
            break
        dialog.deleteLater()

    def _has_saved_key(self) -> bool:
        return load_api_key() is not None

    def _replan(self, *, force_demo: bool = False) -> LaunchPlan:
        args = argparse.Namespace(**vars(self.args))
        if self._session_key and not getattr(args, "api_key", None):
            args.api_key = self._session_key
        if not force_demo and getattr(args, "demo", False):
            # --demo chose the demo for this run; Settings may now name a real agent.
            del args.demo
        return resolve(args, self.settings, dict(os.environ), force_demo=force_demo)

    def _device_chosen(self, choice: DeviceChoice, *, output: bool) -> None:
        name, index = choice
        stored = name if index is not None else None
        if output:
            self.settings.output_device = stored
        else:
            self.settings.input_device = stored
        save_settings(self.settings)
        plan = self._replan(force_demo=self.controller.plan.demo)
        self.controller.set_plan(plan)
        # A call, or hands-free listening, moves now (the controller knows which runs).
        wanted = index if index is not None else _default_index(self.devices, output=output)
        if output:
            self.controller.switch_devices(output_device=wanted)
        else:
            self.controller.switch_devices(input_device=wanted)

    def _hands_free_toggled(self, on: bool) -> None:
        if self.settings.hands_free != on:
            self.settings.hands_free = on
            save_settings(self.settings)

    def _save_volume(self) -> None:
        self.settings.volume = self.window.volume.value() / 100
        save_settings(self.settings)

    # ------------------------------------------------------------------ always at hand

    def apply_shortcuts(self) -> list[str]:
        """Grab the global shortcuts the settings name; sentences of those that failed
        (shown in the banner as well as logged)."""
        try:
            problems = self.shortcuts.apply(_shortcut_keys(DesktopChoices.of(self.settings)))
        except ValueError as exc:  # a settings file edited by hand
            problems = [str(exc)]
            logger.warning("global shortcuts: %s", exc)
        if problems:
            self.window.banner.show_message(" ".join(problems))
        return problems

    def _apply_desktop(self, choices: DesktopChoices) -> None:
        before = DesktopChoices.of(self.settings)
        choices.store(self.settings)
        if choices == before:
            return
        self._save_settings()
        if (choices.shortcut_start_end, choices.shortcut_mute) != (
            before.shortcut_start_end,
            before.shortcut_mute,
        ):
            self.apply_shortcuts()

    def _global_shortcut(self, action: str) -> None:
        """A global shortcut was pressed (on the Qt thread: the signal is queued)."""
        logger.info("global shortcut: %s", action)
        if action == START_END:
            self.tray.start_or_end()
        elif action == MUTE:
            self.tray.toggle_mute()

    def set_compact(self, on: bool) -> None:
        """Compact mode on or off (the tray's entry; the window tells the rest)."""
        self.window.set_compact(on)
        self.tray.set_compact_checked(self.window.compact)

    def _compact_changed(self, on: bool) -> None:
        self.tray.set_compact_checked(on)
        if self.settings.compact != on:
            self.settings.compact = on
            self._save_settings()

    def _restore_geometry(self) -> None:
        saved = self.settings.window_geometry
        if saved and not self.window.restoreGeometry(QByteArray.fromBase64(saved.encode())):
            logger.info("the saved window geometry does not fit the screens now; not used")

    def save_window_state(self) -> None:
        """The window's size, position and mode into the settings file."""
        geometry = self.window.saveGeometry().toBase64().data()
        self.settings.window_geometry = bytes(geometry).decode("ascii")
        self.settings.compact = self.window.compact
        self._save_settings()

    def _save_settings(self) -> None:
        try:
            save_settings(self.settings)
        except OSError as exc:
            logger.warning("settings could not be saved: %s", exc)

    # ------------------------------------------------------------------ closing

    def _hide_instead_of_closing(self) -> bool:
        """The window's close: ``True`` hides it in the tray (a conversation runs, a
        tray exists, closing does not quit by the settings); ``False`` closes."""
        c = self.controller
        running = c.status in ("connecting", "connected") or c.is_starting
        if self._quitting or not running or not self.tray.available or self.settings.close_quits:
            return False
        self.save_window_state()
        logger.info("window closed during a conversation: it goes on in the tray")
        self.tray.notifier(
            "voicedesk is still running",
            "The conversation goes on. The tray icon shows the window, ends it or quits.",
            False,
        )
        return True

    def quit(self) -> None:
        """Quit (the tray's Quit): close the window whatever the policy; the app ends
        the conversation cleanly (:meth:`shutdown`) once :attr:`closed` is set."""
        self._quitting = True
        self.window.close()
        self._window_closed()

    def _window_closed(self) -> None:
        if not self.closed.is_set():
            self.save_window_state()
        self.closed.set()

    async def shutdown(self) -> None:
        self.shortcuts.stop()
        self.tray.hide()
        await self.controller.shutdown()


class _CloseGuard(QObject):
    """Sees the window's close before the window does; ``hide()`` says when the window
    hides instead (the close is ignored and the window's own close handler not run)."""

    def __init__(self, window: MainWindow, hide: Callable[[], bool]) -> None:
        super().__init__(window)
        self._window = window
        self._hide = hide
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window and event.type() == QEvent.Type.Close and self._hide():
            event.ignore()
            self._window.hide()
            return True
        return False


def _shortcut_keys(choices: DesktopChoices) -> dict[str, str]:
    return {START_END: choices.shortcut_start_end, MUTE: choices.shortcut_mute}


class _FirstPaintProbe(QObject):
    """``bench/startup.py``: write the wall-clock time of the window's first paint to a
    file, then close the window (the app exits as after a user's close)."""

    def __init__(self, path: str, window: MainWindow) -> None:
        super().__init__(window)
        self._path = path
        self._window = window
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self._window.removeEventFilter(self)
            with open(self._path, "w", encoding="utf-8") as stamp:
                stamp.write(repr(time.time()))
            QTimer.singleShot(0, self._window.close)
        return False


def _saved_hotwords() -> list[str]:
    """The trained hotwords' names (none when the detector's package cannot load)."""
    try:
        from voicedesk.audio.wakeword import saved_hotwords
    except ImportError:
        return []
    return saved_hotwords()


def _index_of(devices: list[DeviceInfo], wanted: str | int | None, *, output: bool) -> int | None:
    if wanted is None or str(wanted).strip() == "":
        return None
    from voicedesk.audio.devices import match_device

    candidates = [d for d in devices if (d.is_output if output else d.is_input)]
    found = match_device(candidates, wanted)
    return found.index if found is not None else None


def _default_index(devices: list[DeviceInfo], *, output: bool) -> int | None:
    for device in devices:
        if device.is_default_output if output else device.is_default_input:
            return int(device.index)
    return None


_QT_LOG_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _qt_message(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's own warnings go to our log file, not to the user's terminal."""
    logging.getLogger("qt").log(_QT_LOG_LEVELS.get(kind, logging.WARNING), "%s", message)


def make_application() -> QApplication:
    """The QApplication, offscreen when there is no display (Linux without X/Wayland)."""
    if not has_display(os.environ):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    qInstallMessageHandler(_qt_message)
    app = QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName("voicedesk")
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(APP_NAME)
    # The window closing ends the conversation first (WindowShell); then the loop stops.
    app.setQuitOnLastWindowClosed(False)
    QGuiApplication.setWindowIcon(QIcon(str(Path(__file__).with_name("icon.png"))))
    return app


def new_event_loop(app: QApplication) -> asyncio.AbstractEventLoop:
    """asyncio on Qt's thread (qasync), with a plain thread pool for ``to_thread``.

    qasync's own default executor runs jobs on ten ``QThread`` workers per loop;
    under Python 3.11 we saw the interpreter's state corrupted after many of them had
    come and gone (a crash at exit, an "AST recursion depth mismatch"), never with
    Python's ``ThreadPoolExecutor``."""
    import qasync

    loop: asyncio.AbstractEventLoop = qasync.QEventLoop(app)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=4, thread_name_prefix="asyncio_"))
    return loop


def run_window(
    args: argparse.Namespace,
    plan: LaunchPlan,
    settings: Settings | None = None,
    *,
    self_test: bool = False,
) -> int:
    """Show the window and run until it closes; returns the exit code."""
    app = make_application()
    loop = new_event_loop(app)
    asyncio.set_event_loop(loop)
    shell = WindowShell(args, plan, settings or load_settings())

    async def main() -> int:
        shell.show()
        if self_test:
            from voicedesk.ui.selftest import run_self_test

            return await run_self_test(shell)
        if plan.demo and plan.demo_reason is None:
            shell.controller.start()
        await shell.closed.wait()
        return 0

    try:
        code: int = loop.run_until_complete(main())
        loop.run_until_complete(shell.shutdown())
    finally:
        loop.close()
        shell.window.deleteLater()
        asyncio.set_event_loop(None)
    return code
