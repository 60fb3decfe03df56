"""Text for a terminal: a model's vocabulary comes from its training text (or a hostile file), so
generated characters may include ESC, BEL or C1 controls that would drive the terminal. Written to
a terminal they are shown as escapes (\\x1b); written to a pipe or a file the text is unchanged."""
import sys
import unicodedata

KEEP = "\n\t"


def is_terminal():
    return sys.stdout.isatty()


def _escape(ch):
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else (f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")


def _unsafe(ch):
    # Cc: C0/C1 controls and DEL; Cf: format characters (bidi overrides, zero-width joiners)
    return ch not in KEEP and unicodedata.category(ch) in ("Cc", "Cf", "Cs")


def safe(text):
    """text with every control and format character but newline and tab written as an escape."""
    return "".join(_escape(c) if _unsafe(c) else c for c in text) if any(map(_unsafe, text)) else text


def writer(to_terminal):
    """str -> str for output: safe() when writing to a terminal, the identity otherwise."""
    return safe if to_terminal else (lambda s: s)
