"""History: the past conversations, newest first; search them, open one (read-only),
export it as Markdown or JSON, delete it. What ``voicedesk history`` does, in a window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from voicedesk import history

#: Asks where to save an export: (suggested file name, filter) -> the path, "" to cancel.
SavePicker = Callable[[str, str], str]
#: Asks whether to delete: the conversation's summary -> yes.
Confirmer = Callable[[str], bool]


class HistoryDialog(QDialog):
    """A list of the kept conversations beside the one selected."""

    def __init__(
        self,
        directory: Path,
        parent: QWidget | None = None,
        *,
        save_picker: SavePicker | None = None,
        confirm: Confirmer | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("historyDialog")
        self.setWindowTitle("History")
        self.resize(820, 560)
        self.directory = directory
        self._save_picker = save_picker or self._ask_where
        self._confirm = confirm or self._ask_delete
        self._entries: list[history.HistoryEntry] = []

        self.search = QLineEdit()
        self.search.setObjectName("historySearch")
        self.search.setPlaceholderText("Search the conversations")
        self.search.setAccessibleName("Search the history")
        self.search.textChanged.connect(self.refresh)
        self.list = QListWidget()
        self.list.setObjectName("historyList")
        self.list.setAccessibleName("Past conversations")
        self.list.currentRowChanged.connect(self._show)
        self.view = QTextBrowser()
        self.view.setObjectName("historyView")
        self.view.setAccessibleName("The conversation")
        self.view.setOpenExternalLinks(True)
        self.status = QLabel("")
        self.status.setObjectName("historyStatus")

        self.export_md = QPushButton("Export Markdown…")
        self.export_md.setObjectName("historyExportMarkdown")
        self.export_md.clicked.connect(lambda: self._export("md"))
        self.export_json = QPushButton("Export JSON…")
        self.export_json.setObjectName("historyExportJson")
        self.export_json.clicked.connect(lambda: self._export("json"))
        self.delete = QPushButton("Delete")
        self.delete.setObjectName("historyDelete")
        self.delete.clicked.connect(self._delete)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.list)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.view)
        split.setStretchFactor(1, 2)
        actions = QHBoxLayout()
        actions.addWidget(self.export_md)
        actions.addWidget(self.export_json)
        actions.addWidget(self.delete)
        actions.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        actions.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        layout.addLayout(actions)
        self.refresh()

    @property
    def selected(self) -> history.HistoryEntry | None:
        row = self.list.currentRow()
        return self._entries[row] if 0 <= row < len(self._entries) else None

    def refresh(self) -> None:
        """Read the history again (with the search applied)."""
        self._entries = history.list_entries(self.directory, self.search.text().strip() or None)
        self.list.clear()
        for entry in self._entries:
            item = QListWidgetItem(_label(entry))
            item.setToolTip(history.summary_line(entry))
            self.list.addItem(item)
        if self._entries:
            self.list.setCurrentRow(0)
            self.status.setText(f"{len(self._entries)} conversations")
        else:
            self._show(-1)
            self.status.setText(
                "No conversation matches the search."
                if self.search.text().strip()
                else "No conversation yet: each one is kept here as it happens."
            )

    def _show(self, row: int) -> None:
        entry = self._entries[row] if 0 <= row < len(self._entries) else None
        for button in (self.export_md, self.export_json, self.delete):
            button.setEnabled(entry is not None)
        self.view.setMarkdown(history.to_markdown(entry) if entry is not None else "")

    def _export(self, kind: str) -> None:
        entry = self.selected
        if entry is None:
            return
        suffix, name = (".md", "Markdown (*.md)") if kind == "md" else (".json", "JSON (*.json)")
        path = self._save_picker(f"{entry.id}{suffix}", name)
        if not path:
            return
        text = history.to_markdown(entry) if kind == "md" else history.to_json(entry)
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            self.status.setText(f"{path} could not be written ({exc.strerror}).")
            return
        self.status.setText(f"Exported to {path}.")

    def _delete(self) -> None:
        entry = self.selected
        if entry is None or not self._confirm(history.summary_line(entry)):
            return
        try:
            history.delete_entry(self.directory, entry.id)
        except history.HistoryError as exc:
            self.status.setText(str(exc))
            return
        self.refresh()
        self.status.setText(f"Deleted the conversation {entry.id}.")

    def _ask_where(self, suggested: str, name_filter: str) -> str:
        title = "Export the conversation"
        path, _ = QFileDialog.getSaveFileName(self, title, suggested, name_filter)
        return path

    def _ask_delete(self, summary: str) -> bool:
        answer = QMessageBox.question(self, "Delete the conversation?", summary)
        return answer == QMessageBox.StandardButton.Yes


def _label(entry: history.HistoryEntry) -> str:
    when = entry.started_local
    said = sum(1 for r in entry.records if r.get("type") in ("user", "agent"))
    return f"{when}  {entry.agent_id}  ({said} turns)"
