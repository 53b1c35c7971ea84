"""Eureka's XML, to and from the dicts of its JSON codec (pure).

The JSON codec's conventions carry over: a key ``@name`` is an XML attribute, ``$`` the element's text,
a list is the element repeated. Metadata keys that are not valid XML names are left out of XML (JSON
keeps them). Bodies are parsed with defusedxml, which refuses a DTD, entities and external references
whatever the document's encoding, and nesting deeper than any Eureka body is refused before it is read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
MAX_DEPTH = 16
"""The deepest element nesting accepted (an instance's metadata sits at depth 3)."""


class XmlInputError(ValueError):
    """The body is not XML we accept."""


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$":
                element.text = str(item)
            elif key.startswith("@"):
                element.set(key[1:], str(item))
            else:
                _append(element, key, item)
    elif value is not None:
        element.text = str(value).lower() if isinstance(value, bool) else str(value)


def _append(parent: ET.Element, key: str, value: Any) -> None:
    if not _XML_NAME.fullmatch(key) or key.lower().startswith("xml"):
        return
    for item in value if isinstance(value, list) else [value]:
        _fill(ET.SubElement(parent, key), item)


def to_xml(document: dict[str, Any]) -> bytes:
    """``{"applications": {...}}`` (one root key) as an XML document."""
    [(root_name, content)] = document.items()
    root = ET.Element(root_name)
    _fill(root, content)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _read(element: ET.Element) -> Any:
    children = list(element)
    if not children and not element.attrib:
        return (element.text or "").strip()
    out: dict[str, Any] = {f"@{key}": value for key, value in element.attrib.items()}
    if not children:
        out["$"] = (element.text or "").strip()
        return out
    for child in children:
        out[child.tag] = _read(child)  # Eureka instance bodies hold no repeated elements
    return out


def _check_depth(root: ET.Element) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` without recursing (``_read`` recurses)."""
    level: list[ET.Element] = [root]
    for _ in range(MAX_DEPTH):
        level = [child for element in level for child in element]
        if not level:
            return
    raise XmlInputError(f"XML nested deeper than {MAX_DEPTH} elements")


def from_xml(raw: bytes) -> dict[str, Any]:
    """An XML body as ``{root tag: content}`` in the JSON codec's shape."""
    try:
        root = fromstring(raw, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise XmlInputError(f"XML with a DTD or entities is not accepted ({type(exc).__name__})") from None
    except (ET.ParseError, ValueError) as exc:
        raise XmlInputError(f"malformed XML: {exc}") from None
    _check_depth(root)
    return {root.tag: _read(root)}
