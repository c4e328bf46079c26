"""Job output made safe for a terminal: it may print anything, but cannot take the terminal over.

A rank's log is untrusted text. Written raw, escape sequences in it could move the cursor, clear the
screen, retitle the window or hide text, and a carriage return or vertical tab could overwrite the
``[rank N]`` prefix DLW adds, forging another rank's line. ``sanitize_terminal`` keeps printable text,
tabs, newlines and SGR colour codes (``ESC [ ... m``, what progress bars and loggers use) and turns
every other control character into a visible ``^X`` / ``\\xNN`` form. A carriage return inside a
line (a progress bar redrawing itself) keeps what a terminal would end up showing: the last redraw.
"""

from __future__ import annotations

import re

# CSI (ESC [ params final), OSC (ESC ] ... BEL|ST), other ESC sequences, and C0/C1 controls.
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_UNSAFE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, erase, modes
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # other escapes (charset, keypad, reset)
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]"  # controls but tab and newline; line separators
)


def _visible(match: re.Match[str]) -> str:
    seq = match.group(0)
    if _SGR.fullmatch(seq):
        return shown_sgr(seq)
    c = seq[0]
    if c == "\x1b":
        return "^[" + seq[1:].translate(_CONTROL_NAMES)
    return c.translate(_CONTROL_NAMES)


_CONTROL_NAMES = {i: f"^{chr(i + 64)}" for i in range(0x20)}
_CONTROL_NAMES.update({0x7F: "^?", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_CONTROL_NAMES.update({i: f"\\x{i:02x}" for i in range(0x80, 0xA0)})
_ALL_CONTROL_NAMES = dict(_CONTROL_NAMES)  # one_line: tab and newline too
del _CONTROL_NAMES[0x09], _CONTROL_NAMES[0x0A]


def shown_sgr(seq: str) -> str:
    """An SGR code without what could hide text: conceal (8) and every background colour (40-49, 100-107,
    48;5;N, 48;2;R;G;B), so no foreground can be made the same as its background (black on black).
    Foreground colours, bold, underline and resets are kept; nothing left: the empty string."""
    params = seq[2:-1].replace(":", ";").split(";")
    kept: list[str] = []
    i = 0
    while i < len(params):
        p = params[i]
        code = int(p) if p.isdigit() and len(p) < 4 else -1
        if code in (38, 48):  # extended colour: 5;N or 2;R;G;B follow
            width = 3 if params[i + 1: i + 2] == ["5"] else 5 if params[i + 1: i + 2] == ["2"] else 1
            if code == 38:
                kept += params[i: i + width]
            i += width
            continue
        if p == "" or not (code == 8 or 40 <= code <= 49 or 100 <= code <= 107):
            kept.append(p)
        i += 1
    if not kept:
        return ""
    return "\x1b[" + ";".join(kept) + "m"


def one_line(text: object, limit: int = 300) -> str:
    """A job's own words (its last exception line, a metric name) for one line of ``dlw status``: every
    control character made visible (escape sequences, colours and newlines included), at most ``limit``
    characters (a 1 MB metric name is cut, with how much was left out)."""
    s = str(text)
    if len(s) > limit:
        s = f"{s[:limit]}... ({len(s) - limit} more characters)"
    if s.isprintable():
        return s
    return _ANY_CONTROL.sub(lambda m: m.group(0).translate(_ALL_CONTROL_NAMES), s)


# One character of these in a text is what makes sanitize_terminal change it (every _UNSAFE match starts
# with one); is_plain looks for them in C: in ASCII text as bytes (~1 GB/s), else with a regex.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE_CHAR = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE_BYTES = bytes([*range(0x09), *range(0x0B, 0x20), 0x7F])


def is_plain(text: str) -> bool:
    """True when ``sanitize_terminal`` leaves ``text`` (any number of lines) as it is: no control
    characters but tabs and newlines. Cheap, so whole blocks of plain log lines skip the line-by-line work."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, _UNSAFE_BYTES)) == len(data)
    return _UNSAFE_CHAR.search(text) is None


def sanitize_terminal(text: str) -> str:
    """``text`` with every control sequence but colours made visible; tabs and newlines kept."""
    body = text[:-1] if text.endswith("\n") else text
    if body.isprintable():  # the common case: one plain line, nothing to do
        return text
    if "\r" in text:
        text = "\n".join(_last_redraw(line) for line in text.split("\n"))
    return _UNSAFE.sub(_visible, text)


def _last_redraw(line: str) -> str:
    line = line.rstrip("\r")
    return line[line.rfind("\r") + 1:]
