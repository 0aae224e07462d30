"""Lines of text that change with every clip or step: headers, counters, verdicts.

A Markdown (or HTML) pane re-sends its whole set of properties on each change, stylesheets
included; a new stylesheet makes bokeh walk every model of the document (hundreds) and send
them to the browser. Under load, two such panes of the Maximise page (the step counter and
the verdict) took 9 % of the server's time. A ``StaticText`` sends only the new text.

Its value is HTML: escape anything a user supplied (:func:`esc`).
"""

from __future__ import annotations

import html

import panel as pn


def live_text(value: str = "", *, css_class: str, **kwargs) -> pn.widgets.StaticText:
    """A line of HTML (``value``) under css class ``css_class``, cheap to change."""
    kwargs.setdefault("sizing_mode", "stretch_width")
    return pn.widgets.StaticText(value=value, css_classes=[css_class], **kwargs)


def esc(text) -> str:
    """``text`` safe to put in a :func:`live_text` value."""
    return html.escape(str(text), quote=False)
