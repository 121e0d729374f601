"""Global shortcuts: keys that start/end a conversation or mute the microphone while
another app has the focus.

Where it works: X11 (``XGrabKey`` on the root window, python-xlib), Windows
(``RegisterHotKey``). Not on Wayland, which lets no app see keys pressed in other apps'
windows (XWayland included: its grabs only see XWayland windows), and not yet on macOS
(it needs an event tap and the Accessibility permission). :func:`support` says which,
in a sentence for Settings and the log.

Threads: each backend waits for key presses on a thread of its own and reports them
through :class:`GlobalShortcuts`, whose ``triggered(action)`` signal is queued to the Qt
thread: nothing of Qt or asyncio is called from the key thread.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QKeySequence

logger = logging.getLogger(__name__)

START_END = "start_end"
MUTE = "mute"
ACTION_NAMES = {START_END: "start or end a conversation", MUTE: "mute or unmute"}

#: Modifiers a global shortcut may use (Meta: the Windows / Super key).
MODIFIERS = ("ctrl", "alt", "shift", "meta")

KeyHandler = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Support:
    """Whether global shortcuts work here; ``sentence`` says so (and why not)."""

    available: bool
    sentence: str
    backend: str = ""  # "x11", "windows" or "" (unavailable)


def support(env: Mapping[str, str] | None = None, platform: str | None = None) -> Support:
    """What this desktop allows (``env``: the process environment)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "win32":
        return Support(True, "Global shortcuts work on this desktop (Windows).", "windows")
    if platform == "darwin":
        return Support(
            False,
            "Global shortcuts are not available on macOS yet: they need the Accessibility "
            "permission and an event tap, which voicedesk does not have. The window's own "
            "shortcuts work while it has the focus.",
        )
    session = env.get("XDG_SESSION_TYPE", "").strip().lower()
    wayland = session == "wayland" or (bool(env.get("WAYLAND_DISPLAY")) and not env.get("DISPLAY"))
    if wayland:
        return Support(
            False,
            "Global shortcuts are unavailable on Wayland: it lets no app see keys pressed in "
            "other apps' windows (a safeguard against key loggers). Bind a key in your "
            "desktop's keyboard settings instead, or log in to an X11 session. The window's "
            "own shortcuts work while it has the focus.",
        )
    if not env.get("DISPLAY"):
        return Support(
            False, "Global shortcuts are unavailable: there is no X display (DISPLAY is not set)."
        )
    return Support(True, "Global shortcuts work on this desktop (X11).", "x11")


@dataclass(frozen=True, slots=True)
class KeyCombo:
    """One key with its modifiers, from a Qt key sequence (``"Ctrl+Alt+Space"``)."""

    key: int  # a Qt.Key value
    modifiers: frozenset[str]
    text: str  # as Qt writes it, for sentences

    @classmethod
    def parse(cls, text: str) -> KeyCombo:
        """Raises ``ValueError`` with a sentence when ``text`` is no usable shortcut."""
        sequence = QKeySequence(text.strip())
        if sequence.isEmpty() or sequence.count() != 1:
            raise ValueError(f"“{text}” is not a single key combination.")
        combination = sequence[0]  # type: ignore[index]  # (the stubs lack __getitem__)
        key = combination.key().value
        flags = combination.keyboardModifiers()
        found = {
            name
            for name, flag in (
                ("ctrl", Qt.KeyboardModifier.ControlModifier),
                ("alt", Qt.KeyboardModifier.AltModifier),
                ("shift", Qt.KeyboardModifier.ShiftModifier),
                ("meta", Qt.KeyboardModifier.MetaModifier),
            )
            if flags & flag
        }
        if sys.platform == "darwin":  # Qt swaps Ctrl and Meta (Command) on macOS
            found = {{"ctrl": "meta", "meta": "ctrl"}.get(m, m) for m in found}
        shown = sequence.toString(QKeySequence.SequenceFormat.PortableText)
        if not found & {"ctrl", "alt", "meta"}:
            raise ValueError(
                f"The global shortcut “{shown}” needs Ctrl, Alt or Meta: a key alone would be "
                "taken from every other app."
            )
        return cls(key, frozenset(found), shown)


def parse_bindings(keys: Mapping[str, str]) -> dict[str, KeyCombo]:
    """``{action: key sequence}`` (an empty sequence: no shortcut) parsed; ``ValueError``
    with a sentence for a bad or repeated one."""
    combos: dict[str, KeyCombo] = {}
    for action, text in keys.items():
        if not text.strip():
            continue
        combo = KeyCombo.parse(text)
        for other, taken in combos.items():
            if (taken.key, taken.modifiers) == (combo.key, combo.modifiers):
                raise ValueError(
                    f"“{combo.text}” is set both to {ACTION_NAMES.get(other, other)} and to "
                    f"{ACTION_NAMES.get(action, action)}: choose two different keys."
                )
        combos[action] = combo
    return combos


class Backend(Protocol):
    """Grabs keys for the whole desktop; calls ``on_key(action)`` from its own thread."""

    def start(self, bindings: Mapping[str, KeyCombo], on_key: KeyHandler) -> list[str]:
        """Grab the keys; the sentences of those that could not be grabbed."""
        ...

    def stop(self) -> None:
        """Release the keys and end the thread (idempotent)."""
        ...


class GlobalShortcuts(QObject):
    """The app's global shortcuts. ``triggered(action)`` (:data:`START_END`,
    :data:`MUTE`) arrives on the Qt thread; :attr:`sentence` says whether they work.

    ``backend_factory`` picks the backend (tests); by default :func:`support` decides."""

    triggered = Signal(str)
    _pressed = Signal(str)  # emitted on the key thread, delivered queued

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        backend_factory: Callable[[Support], Backend | None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.support = support(env)
        self._display = (env if env is not None else os.environ).get("DISPLAY", "")
        self._factory = backend_factory or self._default_backend
        self._backend: Backend | None = None
        self.problems: list[str] = []
        self.bindings: dict[str, KeyCombo] = {}
        self._pressed.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def sentence(self) -> str:
        """For Settings: works or not (and why), and keys another app holds."""
        return " ".join([self.support.sentence, *self.problems])

    def apply(self, keys: Mapping[str, str]) -> list[str]:
        """Grab ``{action: key sequence}`` instead of the keys held so far; returns the
        sentences of what could not be set (logged too). ``ValueError`` for bad keys."""
        bindings = parse_bindings(keys)
        self.stop()
        self.bindings = bindings
        self.problems = []
        if not bindings:
            return []
        if not self.support.available:
            logger.info("%s", self.support.sentence)
            return []
        backend = self._factory(self.support)
        if backend is None:
            self.problems = [self.support.sentence]
            return self.problems
        try:
            self.problems = backend.start(bindings, self._pressed.emit)
        except Exception as exc:  # a display that went away, a library missing
            logger.warning("global shortcuts could not start: %s", exc)
            backend.stop()
            self.problems = [f"Global shortcuts could not start ({exc})."]
            return self.problems
        self._backend = backend
        for problem in self.problems:
            logger.warning("%s", problem)
        held = [f"{c.text} ({ACTION_NAMES.get(a, a)})" for a, c in bindings.items()]
        logger.info("global shortcuts: %s", ", ".join(held))
        return self.problems

    def stop(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.stop()

    @Slot(str)
    def _deliver(self, action: str) -> None:
        self.triggered.emit(action)

    def _default_backend(self, found: Support) -> Backend | None:
        if found.backend == "x11":
            return X11Backend(self._display)
        if found.backend == "windows":
            return WindowsBackend()
        return None


# ---------------------------------------------------------------------- X11

# X keysyms of the named keys (X11/keysymdef.h); letters and digits are their ASCII
# codes (lower case for letters).
_X_KEYSYMS = {
    Qt.Key.Key_Space.value: 0x20,
    Qt.Key.Key_Return.value: 0xFF0D,
    Qt.Key.Key_Enter.value: 0xFF8D,
    Qt.Key.Key_Escape.value: 0xFF1B,
    Qt.Key.Key_Tab.value: 0xFF09,
    Qt.Key.Key_Backspace.value: 0xFF08,
    Qt.Key.Key_Insert.value: 0xFF63,
    Qt.Key.Key_Delete.value: 0xFFFF,
    Qt.Key.Key_Home.value: 0xFF50,
    Qt.Key.Key_End.value: 0xFF57,
    Qt.Key.Key_Left.value: 0xFF51,
    Qt.Key.Key_Up.value: 0xFF52,
    Qt.Key.Key_Right.value: 0xFF53,
    Qt.Key.Key_Down.value: 0xFF54,
    Qt.Key.Key_PageUp.value: 0xFF55,
    Qt.Key.Key_PageDown.value: 0xFF56,
    Qt.Key.Key_Pause.value: 0xFF13,
}


def x_keysym(key: int) -> int | None:
    """The X keysym of a Qt key (``None``: not one a global shortcut can use)."""
    if key in _X_KEYSYMS:
        return _X_KEYSYMS[key]
    if Qt.Key.Key_F1.value <= key <= Qt.Key.Key_F35.value:
        return 0xFFBE + key - Qt.Key.Key_F1.value
    if 0x21 <= key <= 0x7E:  # printable ASCII: Qt uses upper case for letters
        return ord(chr(key).lower())
    return None


class X11Backend:
    """``XGrabKey`` on the root window of ``display`` (its own connection, used only by
    its thread). The grab is made for each state of Caps Lock and Num Lock, which X
    counts as modifiers."""

    def __init__(self, display: str) -> None:
        self._display_name = display
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._problems: list[str] = []
        self._error: BaseException | None = None

    def start(self, bindings: Mapping[str, KeyCombo], on_key: KeyHandler) -> list[str]:
        # The connection is opened here, on the caller's thread, and handed over: opening
        # it imports python-xlib's extension modules, and CPython 3.11 can corrupt its
        # compiler state when two threads compile modules at once.
        from Xlib.display import Display

        display = Display(self._display_name)
        self._thread = threading.Thread(
            target=self._run,
            args=(display, dict(bindings), on_key),
            name="voicedesk-hotkeys",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(5.0):
            self.stop()
            raise RuntimeError(f"the X display {self._display_name} did not answer")
        if self._error is not None:
            self.stop()
            raise RuntimeError(str(self._error))
        return list(self._problems)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)

    def _run(self, display: Any, bindings: dict[str, KeyCombo], on_key: KeyHandler) -> None:
        from Xlib import X, error

        try:
            root = display.screen().root
            masks = {
                "ctrl": X.ControlMask,
                "alt": X.Mod1Mask,
                "shift": X.ShiftMask,
                "meta": X.Mod4Mask,
            }
            locks = (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask)
            wanted = X.ControlMask | X.Mod1Mask | X.ShiftMask | X.Mod4Mask
            grabbed: dict[tuple[int, int], str] = {}
            for action, combo in bindings.items():
                keysym = x_keysym(combo.key)
                keycode = display.keysym_to_keycode(keysym) if keysym is not None else 0
                if not keycode:
                    self._problems.append(
                        f"The global shortcut {combo.text} cannot be used: this keyboard "
                        "has no such key."
                    )
                    continue
                state = 0
                for name in combo.modifiers:
                    state |= masks[name]
                catch = error.CatchError(error.BadAccess)
                for lock in locks:
                    root.grab_key(
                        keycode, state | lock, True, X.GrabModeAsync, X.GrabModeAsync, onerror=catch
                    )
                display.sync()
                if catch.get_error() is not None:
                    for lock in locks:
                        root.ungrab_key(keycode, state | lock)
                    self._problems.append(
                        f"The global shortcut {combo.text} is taken by another app: choose "
                        "another in Settings, Desktop."
                    )
                    continue
                grabbed[(keycode, state)] = action
            self._ready.set()
            # A held key repeats as release + press with one timestamp: not a new press.
            released_at: dict[int, int] = {}
            while not self._stop.is_set():
                if not display.pending_events():
                    select.select([display.fileno()], [], [], 0.2)
                    continue
                event = display.next_event()
                if event.type == X.KeyRelease:
                    released_at[event.detail] = event.time
                elif event.type == X.KeyPress:
                    if released_at.get(event.detail) == event.time:
                        continue
                    action_name = grabbed.get((event.detail, event.state & wanted))
                    if action_name is not None:
                        on_key(action_name)
            for keycode, state in grabbed:
                for lock in locks:
                    root.ungrab_key(keycode, state | lock)
            display.sync()
        except Exception as exc:
            if not self._ready.is_set():
                self._error = exc
            else:
                logger.warning("global shortcuts stopped: %s", exc)
        finally:
            self._ready.set()
            display.close()


# ---------------------------------------------------------------------- Windows

# Virtual-key codes of the named keys (winuser.h); letters and digits are their ASCII
# codes (upper case).
_VK_CODES = {
    Qt.Key.Key_Space.value: 0x20,
    Qt.Key.Key_Return.value: 0x0D,
    Qt.Key.Key_Enter.value: 0x0D,
    Qt.Key.Key_Escape.value: 0x1B,
    Qt.Key.Key_Tab.value: 0x09,
    Qt.Key.Key_Backspace.value: 0x08,
    Qt.Key.Key_Insert.value: 0x2D,
    Qt.Key.Key_Delete.value: 0x2E,
    Qt.Key.Key_Home.value: 0x24,
    Qt.Key.Key_End.value: 0x23,
    Qt.Key.Key_Left.value: 0x25,
    Qt.Key.Key_Up.value: 0x26,
    Qt.Key.Key_Right.value: 0x27,
    Qt.Key.Key_Down.value: 0x28,
    Qt.Key.Key_PageUp.value: 0x21,
    Qt.Key.Key_PageDown.value: 0x22,
    Qt.Key.Key_Pause.value: 0x13,
}
_WIN_MODIFIERS = {"alt": 0x1, "ctrl": 0x2, "shift": 0x4, "meta": 0x8}
_MOD_NOREPEAT = 0x4000
_WM_HOTKEY = 0x0312
_WM_QUIT = 0x0012


def windows_vk(key: int) -> int | None:
    """The Windows virtual-key code of a Qt key (``None``: not usable)."""
    if key in _VK_CODES:
        return _VK_CODES[key]
    if Qt.Key.Key_F1.value <= key <= Qt.Key.Key_F24.value:
        return 0x70 + key - Qt.Key.Key_F1.value
    if ord("0") <= key <= ord("9") or ord("A") <= key <= ord("Z"):
        return key
    return None


class WindowsBackend:
    """``RegisterHotKey`` with no window: ``WM_HOTKEY`` arrives in the message queue of
    the thread that registered, so one thread registers, waits in ``GetMessageW`` and
    unregisters; :meth:`stop` posts it ``WM_QUIT``."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._thread_id = 0
        self._ready = threading.Event()
        self._problems: list[str] = []

    def start(self, bindings: Mapping[str, KeyCombo], on_key: KeyHandler) -> list[str]:
        self._thread = threading.Thread(
            target=self._run, args=(dict(bindings), on_key), name="voicedesk-hotkeys", daemon=True
        )
        self._thread.start()
        self._ready.wait(5.0)
        return list(self._problems)

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if sys.platform == "win32" and self._thread_id:
            import ctypes

            ctypes.windll.user32.PostThreadMessageW(self._thread_id, _WM_QUIT, 0, 0)
        thread.join(2.0)

    def _run(self, bindings: dict[str, KeyCombo], on_key: KeyHandler) -> None:
        if sys.platform != "win32":
            self._ready.set()
            return
        import ctypes
        from ctypes import wintypes

        user32 = ctypes.windll.user32
        kernel32 = ctypes.windll.kernel32
        self._thread_id = kernel32.GetCurrentThreadId()
        ids: dict[int, str] = {}
        try:
            for number, (action, combo) in enumerate(bindings.items(), start=1):
                vk = windows_vk(combo.key)
                mods = _MOD_NOREPEAT
                for name in combo.modifiers:
                    mods |= _WIN_MODIFIERS[name]
                if vk is None or not user32.RegisterHotKey(None, number, mods, vk):
                    self._problems.append(
                        f"The global shortcut {combo.text} is taken by another app or not "
                        "usable: choose another in Settings, Desktop."
                    )
                    continue
                ids[number] = action
            self._ready.set()
            msg = wintypes.MSG()
            while user32.GetMessageW(ctypes.byref(msg), None, 0, 0) > 0:
                if msg.message == _WM_HOTKEY and msg.wParam in ids:
                    on_key(ids[msg.wParam])
        finally:
            for number in ids:
                user32.UnregisterHotKey(None, number)
            self._ready.set()
