"""Opening a window shell with the desktop seams of issue 13's "Always at hand": whether
a system tray exists (offscreen has none), the notifier, and the environment the global
shortcuts read (empty by default: no X display, so a test never grabs the keys of the
desktop it runs on)."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
from collections.abc import Iterator, Mapping

import pytest

from tests.gui.conftest import Gui
from voicedesk.config import Settings
from voicedesk.launch import resolve
from voicedesk.localagent import AgentConfig
from voicedesk.ui.shell import WindowShell


class Notifications:
    """The notifier seam: what would have been shown, as (title, sentence, is_error)."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str, bool]] = []

    def __call__(self, title: str, sentence: str, is_error: bool) -> None:
        self.shown.append((title, sentence, is_error))

    def titles(self) -> list[str]:
        return [title for title, _, _ in self.shown]


def open_shell(
    gui: Gui,
    *argv: str,
    settings: Settings | None = None,
    system_tray: bool = True,
    notifier: Notifications | None = None,
    shortcut_env: Mapping[str, str] | None = None,
) -> WindowShell:
    """As :meth:`Gui.open`, with the desktop seams set; ``gui`` closes the shell."""
    from voicedesk.app import build_parser

    gui.app.setQuitOnLastWindowClosed(False)
    args = build_parser().parse_args(list(argv))
    settings = settings or Settings()
    shell = WindowShell(
        args,
        resolve(args, settings, {}),
        settings,
        demo_config=AgentConfig(ping_interval_s=0.2),
        system_tray=system_tray,
        notifier=notifier,
        shortcut_env=dict(shortcut_env or {}),
    )
    gui.shell = shell
    shell.show()
    return shell


# ---------------------------------------------------------------------- a real X server

XVFB_UNAVAILABLE = "no X server for the global-shortcut tests (Xvfb could not start)"


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """A private Xvfb (``-displayfd`` picks a free display); yields its DISPLAY. Where
    it cannot start the test skips, except in CI (``CI=true``), where it fails."""
    try:
        read_end, write_end = os.pipe()
        server = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write_end),
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "640x480x24",
            ],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError as exc:
        _cannot_run(f"{XVFB_UNAVAILABLE}: {exc}")
        raise  # not reached
    os.close(write_end)
    try:
        number = b""
        ready, _, _ = select.select([read_end], [], [], 10)
        while ready and not number.endswith(b"\n"):
            chunk = os.read(read_end, 16)
            if not chunk:
                break
            number += chunk
        if not number.strip():
            _cannot_run(f"{XVFB_UNAVAILABLE}: it gave no display number")
        yield f":{number.decode().strip()}"
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(10)


def _cannot_run(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class XClient:
    """Another app on the X display: a window that takes the keyboard focus, and XTest
    key presses as a user's (``press("Control_L", "Alt_L", "space")``)."""

    def __init__(self, display: str) -> None:
        from Xlib import X
        from Xlib.display import Display

        self.display = Display(display)
        self._held: list[int] = []
        screen = self.display.screen()
        self.window = screen.root.create_window(
            0, 0, 200, 100, 0, screen.root_depth, event_mask=X.KeyPressMask | X.KeyReleaseMask
        )
        self.window.map()
        self.display.sync()
        self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.display.sync()

    def has_focus(self) -> bool:
        return bool(self.display.get_input_focus().focus == self.window)

    def press(self, *keys: str) -> None:
        from Xlib import XK, X
        from Xlib.ext import xtest

        codes = [self.display.keysym_to_keycode(XK.string_to_keysym(k)) for k in keys]
        assert all(codes), keys
        for code in codes:
            xtest.fake_input(self.display, X.KeyPress, code)
        for code in reversed(codes):
            xtest.fake_input(self.display, X.KeyRelease, code)
        self.display.sync()

    def hold(self, *keys: str) -> None:
        """Press ``keys`` and keep them down (the server's auto-repeat runs) until
        :meth:`release`."""
        from Xlib import XK, X
        from Xlib.ext import xtest

        self._held = [self.display.keysym_to_keycode(XK.string_to_keysym(k)) for k in keys]
        for code in self._held:
            xtest.fake_input(self.display, X.KeyPress, code)
        self.display.sync()

    def release(self) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        for code in reversed(self._held):
            xtest.fake_input(self.display, X.KeyRelease, code)
        self.display.sync()

    def keys_seen(self) -> list[int]:
        """The keysyms of the key presses this window received since the last call (a
        global shortcut's key never arrives; its modifiers do)."""
        from Xlib import X

        seen = []
        while self.display.pending_events():
            event = self.display.next_event()
            if event.type == X.KeyPress:
                seen.append(self.display.keycode_to_keysym(event.detail, 0))
        return seen

    def grab(self, *keys: str) -> None:
        """Hold a key combination as another app would (``grab("Control_L", "Alt_L",
        "m")``: Ctrl+Alt+M)."""
        from Xlib import XK, X

        masks = {"Control_L": X.ControlMask, "Alt_L": X.Mod1Mask, "Shift_L": X.ShiftMask}
        state = 0
        for key in keys[:-1]:
            state |= masks[key]
        code = self.display.keysym_to_keycode(XK.string_to_keysym(keys[-1]))
        root = self.display.screen().root
        root.grab_key(code, state, True, X.GrabModeAsync, X.GrabModeAsync)
        self.display.sync()

    def close(self) -> None:
        self.display.close()
