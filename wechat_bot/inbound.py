"""What arrives at /wechat, checked before anything acts on it: UTF-8 only, no DTD or entity
declarations (XXE, billion laughs), ``<xml>`` with the fields every WeChat message has, well-formed
user names, times and ids – then the wechatpy message object for it. Anything else is a
:class:`BadMessage` (the endpoint answers 400 and processes nothing)."""
from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

import xmltodict
from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES, UnknownMessage

_ENTITY = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit() also accepts "²"


class BadMessage(Exception):
    """The body is not a well-formed WeChat message (answered with 400)."""


def utf8(data: bytes | str) -> str:
    """WeChat sends UTF-8; anything else (UTF-16 could hide a DOCTYPE from a byte search) is refused."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage("body is not UTF-8") from exc


def xml_fields(text: str) -> dict[str, Any]:
    """The children of <xml>, parsed only after DTDs and entities were ruled out (xmltodict's
    ``disable_entities`` would also refuse them: two locks)."""
    if _ENTITY.search(text):
        raise BadMessage("DTD/entity declarations are not accepted")
    flat = _flat_xml(text)
    if flat is not None:
        return flat
    try:
        # A str is handed to expat as UTF-8 whatever its XML declaration says.
        doc = xmltodict.parse(text, disable_entities=True)
    except Exception as exc:  # noqa: BLE001 - expat and xmltodict raise several kinds
        raise BadMessage(f"not XML ({type(exc).__name__})") from exc
    root = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(root, dict):
        raise BadMessage("root element is not <xml> with children")
    return root


def _flat_xml(text: str) -> dict[str, Any] | None:
    """The common case quickly: ``<xml>`` with text-only children, parsed by the C ElementTree parser
    (a sixth of a message's cost with xmltodict). Anything else – nested elements, attributes,
    repeated tags, not XML at all – returns None and takes the xmltodict path with its checks."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None
    if root.tag != "xml" or root.attrib or len(root) == 0:
        return None
    fields: dict[str, Any] = {}
    for child in root:
        if len(child) or child.attrib or child.tag in fields:
            return None
        fields[child.tag] = child.text
    return fields


def parse(data: bytes | str) -> tuple[Any, dict[str, Any]]:
    """A wechatpy message object (and the raw fields) from checked XML."""
    xml = utf8(data)
    fields = xml_fields(xml)
    for name in ("ToUserName", "FromUserName", "CreateTime", "MsgType"):
        if not isinstance(fields.get(name), str) or not fields[name]:
            raise BadMessage(f"missing {name}")
    if not _OPENID.fullmatch(fields["FromUserName"]) or not _OPENID.fullmatch(fields["ToUserName"]):
        raise BadMessage("malformed FromUserName or ToUserName")
    if not _DIGITS.fullmatch(fields["CreateTime"]):
        raise BadMessage("malformed CreateTime")
    for name in ("MsgId", "MsgID"):
        if fields.get(name) is not None and not _DIGITS.fullmatch(str(fields[name])):
            raise BadMessage(f"malformed {name}")
    if fields.get("Event") is not None and not isinstance(fields["Event"], str):
        raise BadMessage("malformed Event")
    try:
        return _message_from(dict(fields)), fields
    except Exception as exc:  # noqa: BLE001 - wechatpy assumes well-typed fields
        raise BadMessage(f"not a WeChat message ({type(exc).__name__})") from exc


def _message_from(message: dict[str, Any]) -> Any:
    """wechatpy's ``parse_message`` on the fields already parsed (it would parse the XML a second
    time, a tenth of the time a message costs): the same choice of message/event class."""
    message_type = message["MsgType"].lower()
    if message_type != "event" and not message_type.startswith("device_"):
        return MESSAGE_TYPES.get(message_type, UnknownMessage)(message)
    event_type = message["Event"].lower() if "Event" in message else None
    if event_type is None and message_type.startswith("device_"):
        event_type = message_type
    elif message_type.startswith("device_"):
        event_type = f"device_{event_type}"
    event_key = message.get("EventKey")
    if event_type == "subscribe" and isinstance(event_key, str) and event_key:
        if event_key.startswith(("scanbarcode|", "scanimage|")):
            event_type = message["Event"] = "subscribe_scan_product"
        elif event_key.startswith("qrscene_"):
            event_type = message["Event"] = "subscribe_scan"
            message["EventKey"] = event_key[len("qrscene_"):]
    return EVENT_TYPES.get(event_type, UnknownMessage)(message)


__all__ = ["BadMessage", "parse", "utf8", "xml_fields"]
