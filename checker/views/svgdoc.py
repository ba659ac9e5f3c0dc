"""A small SVG writer on the standard library's ElementTree, shared by the layout and trace
pictures.

ElementTree escapes every attribute and text node as it serialises, so a file name, a status
or a field value holding `<`, `&` or quotes can never make a picture ill-formed; that is the
guarantee an SVG library would give, without a dependency. The pictures use no `id`s and no
`<defs>`, so any number of them can be inlined in one HTML page without clashing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
CHAR_W = 0.61  # width of a monospace character, in font sizes

# Okabe-Ito colours: told apart by people with any common colour-vision deficiency.
NODE_COLOURS = ("#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#F0E442", "#999933",
                "#882255", "#44AA99")
PAMT_COLOUR = "#E69F00"
FAIL_COLOUR = "#D55E00"
HOLE_COLOUR = "#B8B8B8"


def text_width(text: str, size: float) -> float:
    """How wide `text` is drawn in the monospace font at `size` px."""
    return len(text) * size * CHAR_W


def size_text(size: int) -> str:
    """A size for people: the largest binary unit that keeps it at least 1, one decimal."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            value = size / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"


def _attrs(attrs: dict) -> dict[str, str]:
    """Python keywords to SVG attributes: `class_` is `class`, `stroke_width` `stroke-width`;
    numbers rounded to a tenth of a pixel; None leaves the attribute out."""
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        if isinstance(value, float):
            value = f"{value:.1f}".rstrip("0").rstrip(".")
        out[name] = str(value)
    return out


class Svg:
    """One picture: add shapes to `root` (or to groups of it), then take `text()`."""

    def __init__(self, title: str, style: str) -> None:
        self.root = ET.Element("svg", _attrs({"xmlns": SVG_NS, "role": "img",
                                              "font_family": FONT}))
        ET.SubElement(self.root, "title").text = title
        ET.SubElement(self.root, "style").text = style

    def group(self, parent: ET.Element | None = None, **attrs) -> ET.Element:
        return ET.SubElement(self.root if parent is None else parent, "g", _attrs(attrs))

    def rect(self, parent: ET.Element, x: float, y: float, w: float, h: float,
             tip: str | None = None, **attrs) -> ET.Element:
        """A rectangle; `tip` becomes its `<title>`, which viewers show on hover."""
        shape = ET.SubElement(parent, "rect", _attrs(
            {"x": float(x), "y": float(y), "width": float(max(w, 0.0)),
             "height": float(max(h, 0.0)), **attrs}))
        if tip:
            ET.SubElement(shape, "title").text = tip
        return shape

    def text(self, parent: ET.Element, x: float, y: float, words: str,
             tip: str | None = None, **attrs) -> ET.Element:
        node = ET.SubElement(parent, "text", _attrs({"x": float(x), "y": float(y), **attrs}))
        node.text = words
        if tip:
            ET.SubElement(node, "title").text = tip
        return node

    def line(self, parent: ET.Element, x1: float, y1: float, x2: float, y2: float,
             **attrs) -> ET.Element:
        return ET.SubElement(parent, "line", _attrs(
            {"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2), **attrs}))

    def path(self, parent: ET.Element, d: str, **attrs) -> ET.Element:
        return ET.SubElement(parent, "path", _attrs({"d": d, **attrs}))

    def finish(self, width: float, height: float) -> None:
        """Set the canvas once the content is known; the picture scales with its box."""
        self.root.set("width", str(round(width)))
        self.root.set("height", str(round(height)))
        self.root.set("viewBox", f"0 0 {round(width)} {round(height)}")

    def element(self) -> str:
        """The `<svg>` element alone, to inline in HTML."""
        return ET.tostring(self.root, encoding="unicode")

    def document(self) -> str:
        """A standalone `.svg` file."""
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + self.element() + "\n"
