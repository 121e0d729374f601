"""Light and dark themes: one palette each, the window's style sheet drawn from it.

The choice is ``"system"`` (follow :meth:`QStyleHints.colorScheme`, and change with
it), ``"light"`` or ``"dark"`` (the ``theme`` setting). :func:`text_pairs` lists every
text colour the window draws over each background it draws it on, so a test computes
their WCAG contrast (:func:`contrast`) and holds both themes to AA (4.5:1).

Sizes are in ``em`` of the application font, so the layout scales with the system's
font size; the device pixel ratio is Qt's (icons are SVG, drawn per ratio).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

THEMES = ("system", "light", "dark")
THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
AA_CONTRAST = 4.5


@dataclass(frozen=True, slots=True)
class Palette:
    """The colours of one theme (``#RRGGBB``)."""

    name: str
    window: str  # the window's background
    surface: str  # the header, the composer, the agent's bubbles
    raised: str  # chips, the message box
    border: str
    text: str
    muted: str  # secondary text: timestamps, status details, tentative speech
    accent: str  # the user's bubbles, the primary button
    on_accent: str  # text on the accent
    link: str
    danger: str  # the End button
    danger_text: str  # an error sentence on the window's background
    on_danger: str
    error_bg: str
    error_text: str
    warn_bg: str
    warn_text: str
    ok: str  # connected, a tool that succeeded
    # The orb, per agent state: (core, glow)
    orb_idle: tuple[str, str]
    orb_connecting: tuple[str, str]
    orb_listening: tuple[str, str]
    orb_thinking: tuple[str, str]
    orb_speaking: tuple[str, str]

    def color(self, role: str) -> QColor:
        return QColor(str(getattr(self, role)))

    def orb(self, state: str) -> tuple[QColor, QColor]:
        core, glow = getattr(self, f"orb_{state}", self.orb_idle)
        return QColor(core), QColor(glow)


LIGHT = Palette(
    name="light",
    window="#F7F7FB",
    surface="#FFFFFF",
    raised="#EEF0F6",
    border="#D9DCE6",
    text="#1B1D29",
    muted="#5B6072",
    accent="#4F46E5",
    on_accent="#FFFFFF",
    link="#3B36C4",
    danger="#C62828",
    danger_text="#B42318",
    on_danger="#FFFFFF",
    error_bg="#FDECEC",
    error_text="#8A1C1C",
    warn_bg="#FFF4D6",
    warn_text="#6B4500",
    ok="#0F7A55",
    orb_idle=("#B8BCD0", "#E3E5EF"),
    orb_connecting=("#F0A830", "#FCE3B0"),
    orb_listening=("#4F46E5", "#C7C4FA"),
    orb_thinking=("#8B5CF6", "#DDD0FD"),
    orb_speaking=("#0EA5E9", "#B7E6FB"),
)

DARK = Palette(
    name="dark",
    window="#14151C",
    surface="#1E2029",
    raised="#2A2D38",
    border="#3A3E4C",
    text="#ECEDF3",
    muted="#A4A9BB",
    accent="#5B54E8",
    on_accent="#FFFFFF",
    link="#A5A0FF",
    danger="#C53030",
    danger_text="#FF8A8A",
    on_danger="#FFFFFF",
    error_bg="#3A1C20",
    error_text="#FFC9C9",
    warn_bg="#3A2F12",
    warn_text="#FFE2A0",
    ok="#4ADE9B",
    orb_idle=("#5A5F73", "#2C2F3B"),
    orb_connecting=("#F0A830", "#5A4316"),
    orb_listening=("#7C75FF", "#332F7A"),
    orb_thinking=("#A78BFA", "#41306E"),
    orb_speaking=("#38BDF8", "#124A63"),
)

PALETTES = {"light": LIGHT, "dark": DARK}


def system_scheme() -> str:
    """``"dark"`` or ``"light"``: what the platform asks for (light when it says nothing)."""
    app = QGuiApplication.instance()
    if app is None:
        return "light"
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def resolve(choice: str) -> Palette:
    """The palette for a ``theme`` setting (an unknown value follows the system)."""
    if choice in PALETTES:
        return PALETTES[choice]
    return PALETTES[system_scheme()]


# ---------------------------------------------------------------------------- contrast


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """WCAG 2 relative luminance of ``#RRGGBB``."""
    q = QColor(color)
    return 0.2126 * _channel(q.red()) + 0.7152 * _channel(q.green()) + 0.0722 * _channel(q.blue())


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio (1..21)."""
    a, b = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def text_pairs(p: Palette) -> list[tuple[str, str, str]]:
    """Every (what, text colour, background) the window draws."""
    pairs = []
    for bg_role in ("window", "surface", "raised"):
        for fg_role in ("text", "muted"):
            pairs.append((f"{fg_role} on {bg_role}", getattr(p, fg_role), getattr(p, bg_role)))
    pairs += [
        ("link on surface", p.link, p.surface),
        ("link on window", p.link, p.window),
        ("your bubble", p.on_accent, p.accent),
        ("End button", p.on_danger, p.danger),
        ("error sentence", p.danger_text, p.window),
        ("agent speaking (header)", p.link, p.surface),
        ("error card", p.error_text, p.error_bg),
        ("notice card", p.warn_text, p.warn_bg),
        ("connected status", p.ok, p.surface),
    ]
    return pairs


# ---------------------------------------------------------------------------- applying


def qpalette(p: Palette) -> QPalette:
    pal = QPalette()
    role = QPalette.ColorRole
    for r, value in (
        (role.Window, p.window),
        (role.WindowText, p.text),
        (role.Base, p.raised),
        (role.AlternateBase, p.surface),
        (role.Text, p.text),
        (role.Button, p.raised),
        (role.ButtonText, p.text),
        (role.Highlight, p.accent),
        (role.HighlightedText, p.on_accent),
        (role.Link, p.link),
        (role.LinkVisited, p.link),
        (role.ToolTipBase, p.surface),
        (role.ToolTipText, p.text),
        (role.PlaceholderText, p.muted),
        (role.Mid, p.border),
    ):
        pal.setColor(r, QColor(value))
    for r in (role.WindowText, role.Text, role.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, r, QColor(p.muted))
    return pal


def style_sheet(p: Palette) -> str:
    """The window's style sheet (object names and dynamic properties select)."""
    return f"""
QMainWindow, #conversationPage, #welcomePage {{ background: {p.window}; }}
QWidget {{ color: {p.text}; }}
#header, #composer, #compactBar {{ background: {p.surface}; border-bottom: 1px solid {p.border}; }}
#composer {{ border-bottom: none; border-top: 1px solid {p.border}; }}
#agentLabel {{ font-weight: 600; }}
#latencyLabel, #handsFreeStatus, #feedbackLabel, #subtle {{ color: {p.muted}; }}
QPushButton, QToolButton {{
  background: {p.raised}; color: {p.text}; border: 1px solid {p.border};
  border-radius: 0.5em; padding: 0.35em 0.8em;
}}
QPushButton:hover, QToolButton:hover {{ border-color: {p.accent}; }}
QPushButton:focus, QToolButton:focus {{ border: 2px solid {p.accent}; }}
QPushButton:checked, QToolButton:checked {{ background: {p.accent}; color: {p.on_accent}; }}
QPushButton:disabled, QToolButton:disabled {{ color: {p.muted}; }}
QPushButton[primary="true"] {{
  background: {p.accent}; color: {p.on_accent}; border: none; font-weight: 600;
}}
QPushButton[primary="true"]:disabled {{ background: {p.raised}; color: {p.muted}; }}
QPushButton[danger="true"] {{
  background: {p.danger}; color: {p.on_danger}; border: none; font-weight: 600;
}}
QPushButton[danger="true"]:disabled {{ background: {p.raised}; color: {p.muted}; }}
QPlainTextEdit, QLineEdit, QComboBox {{
  background: {p.raised}; color: {p.text}; border: 1px solid {p.border}; border-radius: 0.6em;
  padding: 0.3em;
}}
QPlainTextEdit:focus, QLineEdit:focus {{ border: 2px solid {p.accent}; }}
QScrollArea, #bubbleList {{ background: {p.window}; border: none; }}
#bubble[who="user"] {{
  background: {p.accent}; border: 1px solid {p.accent}; border-radius: 0.7em;
}}
#bubble[who="user"] QLabel, #bubble[who="user"] QTextBrowser {{ color: {p.on_accent}; }}
#bubble[who="agent"] {{
  background: {p.surface}; border: 1px solid {p.border}; border-radius: 0.7em;
}}
#bubble[who="agent"] QTextBrowser {{ background: transparent; color: {p.text}; border: none; }}
#bubble[who="user"] QTextBrowser {{ background: transparent; border: none; }}
#toolChip {{ background: {p.raised}; border: 1px solid {p.border}; border-radius: 0.8em; }}
#noticeCard {{ background: {p.warn_bg}; border-radius: 0.6em; }}
#noticeCard QLabel {{ color: {p.warn_text}; }}
#errorCard, #errorBanner {{
  background: {p.error_bg}; border: 1px solid {p.danger}; border-radius: 0.6em;
}}
#errorCard QLabel, #errorBanner QLabel {{ color: {p.error_text}; }}
#settingsError {{ color: {p.danger_text}; }}
#mcpApprovalCard, #toolPermissionCard {{
  background: {p.warn_bg}; border: 1px solid {p.orb_connecting[0]}; border-radius: 0.6em;
}}
#mcpApprovalCard QLabel, #toolPermissionCard QLabel {{ color: {p.warn_text}; }}
#jumpToLatestButton {{ background: {p.accent}; color: {p.on_accent}; border-radius: 1em; }}
QToolTip {{ background: {p.surface}; color: {p.text}; border: 1px solid {p.border}; }}
"""


def apply(choice: str) -> Palette:
    """Give the application the theme ``choice``; returns the palette in use."""
    p = resolve(choice)
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        QGuiApplication.setPalette(qpalette(p))
    return p


def role_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Palette) if f.name != "name")
