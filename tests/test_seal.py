"""Sealing what Redis keeps (chatserver/seal.py) and seekers' derived aliases."""

from __future__ import annotations

from chatserver import aliases, seal


def test_a_sealed_value_opens_only_with_its_key_and_seat() -> None:
    key = seal.record_key("resume-token-1")
    sealer = seal.Sealer(key)
    sealed = sealer.seal(b"Quiet Fox", "seat-a")
    assert b"Quiet Fox" not in sealed
    assert sealer.seal(b"Quiet Fox", "seat-a") != sealed  # a fresh nonce each time
    assert seal.Sealer(seal.record_key("resume-token-1")).open(sealed, "seat-a") == b"Quiet Fox"
    assert seal.Sealer(seal.record_key("resume-token-2")).open(sealed, "seat-a") is None
    assert sealer.open(sealed, "seat-b") is None
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert sealer.open(altered, "seat-a") is None
    assert sealer.open(sealed[:12], "seat-a") is None
    assert sealer.open(b"", "seat-a") is None


def test_sealed_text_round_trips_and_refuses_what_is_not_sealed() -> None:
    sealer = seal.Sealer(seal.secret_key("s3cret", "note"))
    sealed = sealer.seal_text("a hard week, é", "seat-a")
    assert "hard" not in sealed and sealed.isascii()
    assert sealer.open_text(sealed, "seat-a") == "a hard week, é"
    assert sealer.open_text("a hard week", "seat-a") is None  # kept in the open
    assert sealer.open_text("!!not base64!!", "seat-a") is None
    assert seal.Sealer(seal.secret_key("s3cret", "alias")).open_text(sealed, "seat-a") is None


def test_keys_differ_by_what_they_come_from() -> None:
    keys = {seal.record_key("t"), seal.record_key("u"), seal.secret_key("t", "note"),
            seal.secret_key("t", "alias"), seal.secret_key("u", "note")}
    assert len(keys) == 5 and all(len(k) == 32 for k in keys)


def test_a_seekers_alias_is_the_same_on_every_node_and_spread_over_the_words() -> None:
    key = seal.secret_key("deployment secret", "alias")
    alias = aliases.seeker_alias(key, "seat-1")
    assert alias == aliases.seeker_alias(seal.secret_key("deployment secret", "alias"), "seat-1")
    adjective, animal = alias.split(" ")
    assert adjective in aliases.ADJECTIVES and animal in aliases.ANIMALS
    many = {aliases.seeker_alias(key, f"seat-{i}") for i in range(3000)}
    # 900 pairs; 3,000 seats drawn evenly leave almost none unused (expected ~33)
    assert len(many) > 800
    others = [aliases.seeker_alias(seal.secret_key("other", "alias"), f"seat-{i}")
              for i in range(50)]
    assert others != [aliases.seeker_alias(key, f"seat-{i}") for i in range(50)]
