"""Crisis resources by language, read from chatserver/data/resources.toml."""

from __future__ import annotations

import pytest

from chatserver.resources import languages, resources_for

DIRECTORY = "https://findahelpline.com"


def test_english_and_spanish_have_their_own_resources() -> None:
    """English and Spanish are both listed languages."""
    assert {"en", "es"} <= set(languages())


@pytest.mark.parametrize("language", [None, "en", "es", "fr", "", "ES", "es-MX", "en-GB"])
def test_every_list_is_well_formed_and_ends_with_the_directory(language: str | None) -> None:
    """Every item has a name, contact and https url, and the directory ends every list."""
    items = resources_for(language)
    assert len(items) >= 2
    for item in items:
        assert set(item) == {"name", "contact", "url"}
        assert all(isinstance(v, str) and v for v in item.values())
        assert item["url"].startswith("https://")
    assert items[-1]["url"] == DIRECTORY


def test_english_lists_988_samaritans_and_crisis_text_line() -> None:
    """The English list carries 988, Samaritans 116 123 and Crisis Text Line."""
    text = " ".join(" ".join(i.values()) for i in resources_for("en"))
    assert "988" in text
    assert "116 123" in text
    assert "741741" in text


def test_spanish_lists_024_and_988_in_spanish() -> None:
    """The Spanish list carries Línea 024 and 988's Spanish option."""
    text = " ".join(" ".join(i.values()) for i in resources_for("es"))
    assert "024" in text
    assert "988" in text


@pytest.mark.parametrize("language", [None, "fr", "zz", ""])
def test_unknown_languages_fall_back_to_english(language: str | None) -> None:
    """A missing or unknown language gets the English list."""
    assert resources_for(language) == resources_for("en")


def test_regional_codes_use_their_language() -> None:
    """A regional code such as es-MX gets the Spanish list."""
    assert resources_for("es-MX") == resources_for("es")


def test_callers_get_a_copy() -> None:
    """Changing a returned list does not change what the next caller gets."""
    items = resources_for("en")
    items[0]["name"] = "changed"
    items.clear()
    assert resources_for("en")[0]["name"] != "changed"
