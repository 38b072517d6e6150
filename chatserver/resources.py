"""Crisis resources by language, from ``chatserver/data/resources.toml``.

Contract: ``resources_for(language)`` returns a new list of items
``{"name", "contact", "url"}`` (all strings) for that language, falling back
to the file's default language (English) for ``None`` or a language without a
table; the international directory (findahelpline.com) ends every list.
``frame(language)`` is the ``resources`` frame carrying that list.
``languages()`` lists the languages that have their own table. The file is
read once, at import; a malformed file raises ``ValueError`` then.
"""

from __future__ import annotations

import tomllib
from importlib import resources as _package
from typing import Any

_FIELDS = ("name", "contact", "url")


def _items(table: dict[str, Any], where: str) -> list[dict[str, str]]:
    items = table.get("items")
    if not isinstance(items, list):
        raise ValueError(f"resources.toml: [{where}] needs an `items` list")
    out = []
    for item in items:
        if not isinstance(item, dict) or any(not isinstance(item.get(f), str) for f in _FIELDS):
            raise ValueError(f"resources.toml: every [{where}] item needs {', '.join(_FIELDS)}")
        out.append({f: item[f] for f in _FIELDS})
    return out


def _load(data: dict[str, Any]) -> tuple[dict[str, list[dict[str, str]]], str]:
    directory = _items(data.get("international", {}), "international")
    by_language = {
        lang: _items(table, lang) + directory
        for lang, table in data.items()
        if isinstance(table, dict) and lang != "international"
    }
    default = data.get("default", "en")
    if default not in by_language:
        raise ValueError(f"resources.toml: default language {default!r} has no table")
    return by_language, default


def _read_packaged() -> tuple[dict[str, list[dict[str, str]]], str]:
    path = _package.files("chatserver").joinpath("data/resources.toml")
    return _load(tomllib.loads(path.read_text(encoding="utf-8")))


_BY_LANGUAGE, _DEFAULT = _read_packaged()


def resources_for(language: str | None) -> list[dict[str, str]]:
    """Return the resources for ``language`` (a copy the caller may change)."""
    key = (language or "").strip().lower().split("-")[0]
    items = _BY_LANGUAGE.get(key) or _BY_LANGUAGE[_DEFAULT]
    return [dict(item) for item in items]


def frame(language: str | None) -> dict[str, Any]:
    """Return the ``resources`` frame for ``language``."""
    return {"type": "resources", "items": resources_for(language)}


def languages() -> list[str]:
    """Return the language codes that have their own resources, sorted."""
    return sorted(_BY_LANGUAGE)
