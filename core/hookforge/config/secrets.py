"""Redaction of secrets (keys, tokens, passwords) before anything is written or sent to a tracker."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***REDACTED***"
_SECRET_KEY = re.compile(r"(api[_-]?key|apikey|secret|password|passwd|credential|private[_-]?key)",
                         re.IGNORECASE)
# "token" is a secret as a name of its own (token, hf_token, auth-token), not inside the words of
# language models: tokenizer, max_new_tokens, pad_token_id, eos_token
_TOKEN_KEY = re.compile(r"^(?:(?:api|auth|access|bearer|hf|github|gh|refresh|session|secret)[_-]?)?token$",
                        re.IGNORECASE)
# "api_key: abc" / "token=abc" inside a longer string (a YAML flow mapping on the command line)
_INLINE_SECRET = re.compile(r"(?P<key>[\w.-]*(?:api[_-]?key|apikey|secret|password|passwd|credential)"
                            r"[\w.-]*|\b(?:(?:api|auth|access|bearer|hf|github|gh)[_-]?)?token)"
                            r"(?P<sep>\s*[:=]\s*)(?P<value>[^,}\]\s]+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@",
                           re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    last = key.rsplit(".", 1)[-1].lstrip("-")
    return bool(_SECRET_KEY.search(key) or _TOKEN_KEY.match(last))


def redact_text(text: str) -> str:
    """Mask URL passwords (``scheme://user:password@host``) inside ``text``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def _redact_arg(text: str) -> str:
    text = redact_text(text)
    return _INLINE_SECRET.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with secret-looking keys' values and URL passwords masked."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v, str(k)))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_argv(argv: list[str]) -> list[str]:
    """Mask secret values in a command line (``comet.api_key=abc``, ``--token abc``)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if "=" in arg:
            k, _, v = arg.partition("=")
            out.append(f"{k}={REDACTED}" if is_secret_key(k) and v else f"{k}={_redact_arg(v)}")
            continue
        if arg.startswith("--") and is_secret_key(arg):
            hide_next = True
        out.append(_redact_arg(arg))
    return out


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 1}}`` -> ``{"model.lr": 1}``; lists of component sections use their
    index (``trackers.0.name``)."""
    flat: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            flat.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            flat.update(flatten(v, f"{prefix}.{i}"))
    else:
        flat[prefix] = value
    return flat
