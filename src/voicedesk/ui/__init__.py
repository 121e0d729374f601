"""The desktop window (PySide6). The only package, with ``app.py``, that imports Qt.

Views are thin: they take the :class:`~voicedesk.ui.controller.ConversationController`
and connect its signals to private ``_on_*`` handlers; the logic lives below Qt
(``session``, ``launch``).
"""
