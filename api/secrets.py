"""Keeping the API key out of everything a user can share.

The key lives in an `ApiKey` whose str/repr show at most `sk-…abcd`. Every key the process loads is also
registered here, and `redact()` replaces it wherever it appears; exception messages and our log records
pass through it, so a key echoed by a proxy or pasted into a prompt by mistake does not leak either.
"""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_secrets: set[str] = set()


def mask(secret: str) -> str:
    """`sk-…abcd`: enough to tell two keys apart, useless to anyone who reads it."""
    if len(secret) <= 8:
        return "…"
    prefix = "sk-" if secret.startswith("sk-") else ""
    return f"{prefix}…{secret[-4:]}"


def register_secret(secret: str) -> None:
    # Very short values would turn redaction into noise (and cannot be real keys).
    if secret and len(secret) >= 8:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = list(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


def clean_key(value: str) -> str:
    """A key as it was typed or saved: without surrounding whitespace (a file's line break, a space copied
    with it) and without the byte-order mark a Windows editor puts at the start of a UTF-8 file."""
    return value.strip().lstrip("\ufeff").strip()


def key_problem(value: str) -> str | None:
    """Why `value` (cleaned) cannot go into an Authorization header, in words, or None. DashScope keys are
    plain ASCII ('sk-' and letters and digits); anything else is a copying mistake (a curly quote, a
    no-break space, a zero-width character), and sent as it is it would fail in the HTTP layer after the
    request was already counted against the daily limit. The character is named by its code point, never
    shown, and nothing else of the key is."""
    import unicodedata

    if not value:
        return "is empty"
    for i, ch in enumerate(value, 1):
        if not ch.isascii():
            name = unicodedata.name(ch, "")
            return (f"has a character that is not ASCII at position {i} of {len(value)} "
                    f"(U+{ord(ch):04X}{' ' + name if name else ''}); DashScope keys are plain ASCII ('sk-' and "
                    "letters and digits): copy the key again (a key file: save it as plain text)")
        if not "!" <= ch <= "~":
            what = "a space" if ch == " " else f"a control character (U+{ord(ch):04X})"
            return (f"has {what} inside it at position {i} of {len(value)}; a key is one word: copy it again")
    return None


class ApiKey:
    """An API key that will not print itself. `source` says where it came from (an environment variable's
    name, a file, the settings page), for messages about it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "the caller") -> None:
        from .errors import InvalidApiKeyError  # errors imports this module

        value = clean_key(value)
        problem = key_problem(value)
        if problem:
            raise InvalidApiKeyError(f"the API key from {source} {problem}")
        self._value = value
        self.source = source
        register_secret(value)

    def reveal(self) -> str:
        """The key itself, for the Authorization header and nothing else."""
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value)

    @property
    def fingerprint(self) -> str:
        """A stable, non-reversible id of the key (for per-account limiters and journals)."""
        import hashlib

        return hashlib.sha256(self._value.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"ApiKey({self.masked})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # pickling would write the key to disk
        raise TypeError("an ApiKey cannot be pickled")


class RedactingFilter(logging.Filter):
    """Attached to the pack's loggers: a record's final text is redacted before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def get_logger(name: str) -> logging.Logger:
    """A logger of the pack. Filters do not propagate to child loggers, so each one gets its own."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
