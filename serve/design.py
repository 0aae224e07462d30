"""The page's look: Panel's Fast design without web fonts, and a clearly marked selected
button in every radio-button group.

Panel's Fast design links Open Sans from fonts.googleapis.com, which an offline machine (or a
lab network without outside access) cannot reach: every page load waited on it, then fell back
anyway. :class:`HearsightDesign` drops that link and the template uses the system's UI fonts.
Fast also draws the selected button of a ``RadioButtonGroup`` one shade lighter than the rest,
which is barely visible; :data:`SELECTED_BUTTON_CSS` fills it with the accent colour.
"""

from __future__ import annotations

import panel as pn
from panel.io.resources import CDN_DIST
from panel.theme.base import Inherit
from panel.theme.fast import Fast

ACCENT = "#0e7490"
HEADER = "#1f2937"
SYSTEM_FONT = ("system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
               "'Noto Sans', 'Liberation Sans', sans-serif")

# Same selectors as Fast's own rules for an active button (fast.css), so these, applied
# after it, win without !important.
SELECTED_BUTTON_CSS = f"""
:host(.solid) .bk-btn-group .bk-btn.bk-btn-default.bk-active,
:host(.solid) .bk-btn-group .bk-btn.bk-btn-primary.bk-active,
:host(.outline) .bk-btn-group .bk-btn.bk-btn-default.bk-active,
.bk-btn-group .bk-btn.bk-active {{
  background-color: {ACCENT};
  border-color: {ACCENT};
  color: #ffffff;
  font-weight: 600;
  box-shadow: inset 0 -3px 0 rgba(0, 0, 0, 0.35);
}}
"""


class HearsightDesign(Fast):
    """Fast with no web-font link and a filled selected button in button groups."""

    modifiers = {
        pn.widgets.RadioButtonGroup: {"stylesheets": [Inherit, SELECTED_BUTTON_CSS]},
        pn.widgets.CheckButtonGroup: {"stylesheets": [Inherit, SELECTED_BUTTON_CSS]},
    }
    # Fast's own module by its bundled path: a relative one is looked up under the class's
    # name ("hearsightdesign/js/..."), where there is none. Panel serves it locally.
    _resources = {**Fast._resources, "font": {},
                  "js_modules": {**Fast._resources["js_modules"],
                                 "fast-design": f"{CDN_DIST}bundled/fast/js/fast_design.js"}}


def template_style() -> dict:
    """Keyword arguments of the FastListTemplate: this design, system fonts, the colours, and
    no process-wide busy spinner (each session has its own badge, :mod:`serve.busy`)."""
    return dict(design=HearsightDesign, font=SYSTEM_FONT, font_url="",
                header_background=HEADER, accent_base_color=ACCENT, busy_indicator=None)
