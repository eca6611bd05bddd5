"""YAML read the way ``gopkg.in/yaml.v2`` reads it into Go structs, with its error texts.

PyYAML composes the document; everything Go users observe is then redone here: plain
scalars resolve with YAML 1.1 rules (``yes``/``no``/``on``/``off``/``y``/``n`` are
booleans, ``0600`` is octal, ``1_000`` an integer), each scalar keeps its original text
(a ``string`` field gets the text, not a re-printed value), ``<<`` merges apply where
they appear with earlier maps winning, and aliases are bounded.

Type errors are not raised at once: like yaml.v2, decoding records them and goes on, and
the caller gets one ``yaml: unmarshal errors:`` message listing them by line. Each node
of a document carries the document's :class:`DecodeLog`, so whatever decodes a node
records its errors there, and :meth:`DecodeLog.raise_if_any` turns them into the error.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import attrs
import yaml

from replica._go.strconv import INT64_MIN, parse_int
from replica.config.errors import ConfigError


@attrs.frozen
class DecodeIssue:
    """One decoding error: its line and message; ``fatal`` errors (from a custom
    unmarshaler) stop yaml.v2 there and are reported alone."""

    line: int
    message: str
    fatal: bool = False


class DecodeLog:
    """The decoding errors of one document, collected and reported the way yaml.v2 does."""

    __slots__ = ("_issues",)

    def __init__(self) -> None:
        self._issues: list[DecodeIssue] = []

    def add(self, issue: DecodeIssue) -> None:
        """Record an error; decoding goes on with the field's zero value."""
        self._issues.append(issue)

    def raise_if_any(self) -> None:
        """Raise the collected errors as one :class:`ConfigError` (and forget them).

        The first fatal error by line if there is one; else ``yaml: unmarshal errors:``
        followed by each distinct message, in line order.
        """
        issues, self._issues = self._issues, []
        if not issues:
            return
        fatal = [i for i in issues if i.fatal]
        if fatal:
            first = min(fatal, key=lambda i: i.line)
            raise ConfigError(first.message, line=first.line)
        seen: dict[str, None] = {}
        for issue in sorted(issues, key=lambda i: i.line):
            seen.setdefault(issue.message, None)
        raise ConfigError("yaml: unmarshal errors:\n  " + "\n  ".join(seen), line=min(i.line for i in issues))


class Scalar:
    """A non-null YAML scalar: original text, yaml.v2's resolved tag and value, 1-based line."""

    __slots__ = ("line", "log", "tag", "text", "value")

    def __init__(self, text: str, tag: str, value: object, line: int, log: DecodeLog) -> None:
        self.text = text
        self.tag = tag
        self.value = value
        self.line = line
        self.log = log


class Map(dict[str, Any]):
    """A YAML mapping: its line, the line of each key (kept through copies) and the document's log."""

    __slots__ = ("key_lines", "line", "log")

    def __init__(self, line: int, log: DecodeLog, *args: Any) -> None:
        super().__init__(*args)
        self.line = line
        self.log = log
        self.key_lines: dict[str, int] = {}
        for a in args:
            if isinstance(a, Map):
                self.key_lines.update(a.key_lines)


class InlineMap(Map):
    """The parent's mapping handed to an inline-decoded class: its keys are checked by the parent."""

    __slots__ = ()


class Seq(list[Any]):
    """A YAML sequence: its line and the document's log."""

    __slots__ = ("line", "log")

    def __init__(self, line: int, log: DecodeLog, *args: Any) -> None:
        super().__init__(*args)
        self.line = line
        self.log = log


_PLAIN_TAG: Final = "!plain"
_YAML_TAG: Final = "tag:yaml.org,2002:"


class _Loader(yaml.BaseLoader):
    """Composes nodes only; plain scalars are tagged ``!plain`` so we resolve them like yaml.v2."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN_TAG if implicit[0] else _YAML_TAG + "str"
        return _YAML_TAG + ("seq" if kind is yaml.SequenceNode else "map")


_BOOLS: Final[dict[str, bool]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULLS: Final = frozenset(("", "~", "null", "Null", "NULL"))
_SPECIAL_FLOATS: Final[dict[str, float]] = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_STYLE_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_FLOAT: Final = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_TIMESTAMP: Final = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?(Z|[-+][0-9]{1,2}(:[0-9]{2})?)?)?"
)


def _resolve_plain(text: str) -> tuple[str, object]:
    """yaml.v2's ``resolve`` for an untagged plain scalar: (short tag, value)."""
    if text in _NULLS:
        return "!!null", None
    if text in _BOOLS:
        return "!!bool", _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return "!!float", _SPECIAL_FLOATS[text]
    if text == "<<":
        return "!!merge", text
    first = text[0]
    if first == ".":
        if _GO_FLOAT.fullmatch(text):
            return "!!float", float(text)
    elif first in "+-0123456789":
        if _TIMESTAMP.fullmatch(text):
            return "!!timestamp", text
        plain = text.replace("_", "")
        value = parse_int(plain)
        if value is not None and INT64_MIN <= value < 1 << 64:
            return "!!int", value
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            return "!!float", float(plain)
    return "!!str", text


class _TreeBuilder:
    """Turns a composed YAML node graph into ``Map``/``Seq``/``Scalar``/``None`` values."""

    _BUDGET: Final = 1_000_000

    def __init__(self, log: DecodeLog) -> None:
        self._log = log
        self._visits = 0
        self._active: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        self._visits += 1
        if self._visits > self._BUDGET:
            raise ConfigError("yaml: document contains excessive aliasing")
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, line)
        if id(node) in self._active:
            raise ConfigError(f"yaml: line {line}: anchor refers to itself")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return Seq(line, self._log, [self.build(child) for child in node.value])
            return self._mapping(node, line)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, line: int) -> Scalar | None:
        text = str(node.value)
        if node.tag == _PLAIN_TAG:
            tag, value = _resolve_plain(text)
        elif node.tag == _YAML_TAG + "str" or not node.tag.startswith(_YAML_TAG):
            tag, value = "!!str", text
        elif node.tag == _YAML_TAG + "null":
            tag, value = "!!null", None
        else:  # another explicit standard tag: resolve the text
            tag, value = _resolve_plain(text)
            if tag == "!!null":
                tag, value = "!!str", text
        if tag == "!!null":
            return None
        return Scalar(text, tag, value, line, self._log)

    def _mapping(self, node: yaml.Node, line: int) -> Map:
        out = Map(line, self._log)
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and (
                (key_node.tag == _PLAIN_TAG and key_node.value == "<<") or key_node.tag == _YAML_TAG + "merge"
            ):
                self._merge(out, value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            out[str(key_node.value)] = self.build(value_node)
            out.key_lines[str(key_node.value)] = key_node.start_mark.line + 1
        return out

    def _merge(self, out: Map, node: yaml.Node) -> None:
        """yaml.v2 merge: applied where ``<<`` appears; in a list, earlier maps win."""
        value = self.build(node)
        maps = [value] if isinstance(value, Map) else value if isinstance(value, Seq) else None
        if maps is None or not all(isinstance(m, Map) for m in maps):
            raise ConfigError("yaml: map merge requires map or sequence of maps as the value")
        for m in reversed(maps):
            out.update(m)


def load_yaml(text: str, log: DecodeLog) -> Any:
    """The first YAML document of ``text`` as a tree whose nodes report to ``log`` (``None`` for
    an empty document). Syntax errors raise :class:`ConfigError` with yaml.v2's ``yaml: line N: …``."""
    try:
        docs = yaml.compose_all(text, Loader=_Loader)
        node = next(iter(docs), None)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"yaml: {where}{e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"yaml: {e}") from e
    if node is None:
        return None
    return _TreeBuilder(log).build(node)


def type_error(value: object, go_type: str) -> None:
    """Record yaml.v2's ``cannot unmarshal !!tag `value` into T`` for a tree node in its document's log.

    Anything but a tree node cannot come from a document: :class:`ConfigError` at once.
    """
    if isinstance(value, Map):
        message = f"line {value.line}: cannot unmarshal !!map into {go_type}"
    elif isinstance(value, Seq):
        message = f"line {value.line}: cannot unmarshal !!seq into {go_type}"
    elif isinstance(value, Scalar):
        shown = value.text if len(value.text) <= 10 else value.text[:7] + "..."
        message = f"line {value.line}: cannot unmarshal {value.tag} `{shown}` into {go_type}"
    else:  # pragma: no cover - decoders only pass tree nodes
        raise ConfigError(f"cannot unmarshal into {go_type}")
    value.log.add(DecodeIssue(value.line, message))
