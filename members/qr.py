"""QR codes as inline SVG (segno), for anything a counter scans: member codes, coupons, pickup codes."""

import segno


def qr_svg(text: str, *, scalable: bool = True, svg_class: str = "", title: str = "") -> str:
    """Inline SVG of a QR code holding ``text``. ``scalable``: no width/height, only a viewBox, so CSS sizes
    it; otherwise segno's fixed size (4 px a module), for pages without the portal's CSS (the admin)."""
    options = {"scale": 4, "border": 2, "omitsize": scalable}
    if svg_class:
        options["svgclass"] = svg_class
    if title:
        options["title"] = title
    return segno.make_qr(text, error="m").svg_inline(**options)
