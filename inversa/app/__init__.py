"""The Gradio web UI (`inversa app`): upload a photo, mark the damage, restore, compare."""

from inversa.app.ui import build_app, launch

__all__ = ["build_app", "launch"]
