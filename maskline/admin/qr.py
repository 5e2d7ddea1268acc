"""The TOTP enrollment QR code, drawn as inline SVG by the ``qrcode`` library.

Inline markup, not an image URL: the secret never leaves the page that shows
it (no second request, no cache, nothing for the CSP's img-src to allow),
and the SVG has no style attribute, so the console's strict CSP holds.
"""

from __future__ import annotations

import qrcode
import qrcode.image.svg
from markupsafe import Markup


def qr_svg(text: str, *, label: str) -> Markup:
    """``text`` as an SVG QR code (error correction M), labelled for screen readers."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    image = code.make_image(image_factory=qrcode.image.svg.SvgPathImage)
    svg: str = image.to_string(encoding="unicode")
    # The library writes no XML declaration in this mode; the label is escaped.
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{Markup.escape(label)}" ', 1)
    return Markup(svg)  # noqa: S704 (the library's own markup; the label is escaped above)
