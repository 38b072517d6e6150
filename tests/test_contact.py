"""Off-platform contact masking: what is masked, what is left alone, and that it is total."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chatserver.contact import NOTICE, mask_contacts


@pytest.mark.parametrize(
    "contact",
    [
        "+34 612 34 56 78", "555-123-4567", "(555) 123-4567", "555.123.4567", "612345678",
        "0044 7700 900123", "+447700900123", "555-1234", "+1 555 1234", "000 000 0000",
        "ana.lopez@gmail.com", "someone+tag@mail.example.org", "ana at gmail dot com",
        "ana [at] gmail [dot] com", "ana(at)hotmail(dot)es", "ana@gmail . com",
        "ana arroba gmail punto com",
        "@someone", "insta: foo_bar", "ig: foo.bar", "snap me at xyz", "snapchat - xyz123",
        "add me on discord abc#1234", "abc#1234", "my insta is foo_bar", "mi insta es foo_bar",
        "find me on tiktok as dancer99", "hmu on snap xyz", "t.me/xyz", "https://t.me/xyz",
        "wa.me/34612345678", "https://chat.whatsapp.com/AbCdEf", "discord.gg/abcd",
        "instagram.com/foo", "www.snapchat.com/add/xyz", "m.me/someone",
    ],
)
def test_contact_details_are_masked(contact: str) -> None:
    """Each kind of contact detail is replaced by the notice, in the middle of a sentence."""
    masked, changed = mask_contacts(f"hey, {contact} ok?")
    assert changed
    assert NOTICE in masked
    assert contact not in masked


@pytest.mark.parametrize(
    "text",
    [
        "see you at 10:30", "I'm 17", "I took 800mg", "in 2019 I moved", "for 2 hours",
        "from 2019-2020", "on 12/05/2024", "2024-05-12", "I took 30 pills", "it cost 1,000,000",
        "score was 3-2", "chapter 12345", "call me tomorrow", "meet at the park",
        "i'm at school", "I saw it on tiktok lol", "talk on discord later", "oh snap that's cool",
        "follow me on insta", "the @ sign", "https://findahelpline.com", "https://988lifeline.org",
        "text HOME to 741741", "i slept 8 hours", "room 101", "",
    ],
)
def test_ordinary_text_and_numbers_are_left_alone(text: str) -> None:
    """Times, ages, doses, years, dates, counts and ordinary words are not masked."""
    assert mask_contacts(text) == (text, False)


def test_several_details_in_one_message_are_all_masked() -> None:
    """Every detail in a message is masked, and the rest of the text is kept."""
    masked, changed = mask_contacts("call 555-123-4567 or mail a@b.com, insta: foo")
    assert changed
    assert masked == f"call {NOTICE} or mail {NOTICE}, {NOTICE}"


def test_phone_digits_spelled_one_by_one_are_masked() -> None:
    """A phone number typed digit by digit with spaces is still a phone number."""
    assert mask_contacts("6 1 2 3 4 5 6 7 8")[1]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_masking_never_raises_and_leaves_nothing_to_mask(text: str) -> None:
    """Any string masks without raising, and the result holds no detected contact."""
    masked, changed = mask_contacts(text)
    assert changed == (masked != text)
    assert mask_contacts(masked) == (masked, False)


_words = st.lists(st.sampled_from(["i", "feel", "ok", "call", "me", "thanks", "¿", "🙂"]),
                  max_size=5).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(
    _words,
    st.sampled_from(["+34 6", "+1 ", "0044 7", "6", "+52 55 "]),
    st.lists(st.integers(0, 9), min_size=8, max_size=9),
    st.sampled_from([" ", "-", ".", ""]),
    _words,
)
def test_generated_phone_numbers_are_masked(
    before: str, prefix: str, digits: list[int], separator: str, after: str
) -> None:
    """Phone numbers in many formats are masked wherever they sit in a message."""
    number = prefix + separator.join(
        "".join(map(str, digits[i : i + 3])) for i in range(0, len(digits), 3)
    )
    masked, changed = mask_contacts(f"{before} {number} {after}")
    assert changed
    assert number not in masked


@pytest.mark.parametrize("text", ["ınstagram.com/ana", "ſnapchat.com/add/ana", "İnsta: ana_b"])
def test_letters_that_match_only_ignoring_case_are_masked(text: str) -> None:
    """"ı" and "İ" match "i", "ſ" matches "s" for the patterns: the quick tests agree."""
    assert mask_contacts(f"see {text} ok") == (f"see {NOTICE} ok", True)


@pytest.mark.parametrize("text", ["ana\nat gmail.com", "ana at\tgmail dot com",
                                  "ana(at )gmail.com", "ana\tarroba\tgmail punto com"])
def test_spelled_out_at_with_any_whitespace_is_masked(text: str) -> None:
    """"at" around newlines, tabs or inside brackets with spaces is still an e-mail."""
    assert mask_contacts(f"write to {text} please") == (f"write to {NOTICE} please", True)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[a-z][a-z0-9._]{0,15}[a-z0-9]", fullmatch=True),
    st.sampled_from(["gmail.com", "hotmail.es", "outlook.com", "proton.me", "uni.edu"]),
)
def test_generated_email_addresses_are_masked(user: str, domain: str) -> None:
    """E-mail addresses are masked, written plainly or with "at" and "dot"."""
    plain = f"{user}@{domain}"
    spoken = f"{user} at {domain.replace('.', ' dot ')}"
    for address in (plain, spoken):
        masked, changed = mask_contacts(f"write to {address} please")
        assert changed
        assert address not in masked


_PIECES = ["at", "dot", "punto", "arroba", ".", " . ", "(at)", "[dot]", "{at}", "(dot)", "]",
           "@", "#1234", "com", "es", "me", "co", "org", "gmail", "ana_b", "insta", "ig", "snap",
           "discord", "t.me/x", "wa.me", "my", "is", ":", "555-1234", "+34 600 123 456", "\n",
           "İ", "é", "COM", "Dot", "AT", "Insta", "\t", "(", ")", "[", "ı", "ſ", "ınsta", "ſnap",
           "x.com", "T.ME", "fb", "fb.me/x", "telegram", ".org", "INSTAGR", "reddit.com/u/x",
           "tiktok", ".c", "\u212a", "ik.me", "0", "7", "\udc80"]


def _mask_without_pre_checks(text: str) -> tuple[str, bool]:
    """What mask_contacts would give if every pattern ran on every pass."""
    from chatserver import contact

    masked = text
    for _ in range(contact._MAX_PASSES):
        again = masked
        for _, pattern in contact._KINDS:
            again = pattern.sub(contact._replace, again)
        if again == masked:
            break
        masked = again
    return masked, masked != text


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(["", " ", "  "])),
                max_size=14))
@example([("at", ""), ("\n", ""), ("at", " "), ("at", ""), ("t.me/x", "")])  # found by make test
@example([("ana", ""), ("(", ""), ("at", " "), (")", ""), ("gmail", ""), (".", ""), ("com", "")])
def test_the_quick_pre_checks_never_change_what_is_masked(parts: list[tuple[str, str]]) -> None:
    """Skipping the patterns whose quick test says no gives what running them all gives."""
    text = "".join(a + b for a, b in parts)
    assert mask_contacts(text) == _mask_without_pre_checks(text)


_ORDINARY = ["i", "feel", "ok", "thanks", "that", "night", "what's", "it", "on", "Hey", "a",
             "the", "¿qué", "tal?", "🙂", "...", ",", "!", "dotcom", "anecdotes", "line", "app",
             "id", "myinsta", "xdiscordx", "{", "}", "\u0307", "K"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PIECES + _ORDINARY),
                          st.sampled_from(["", " ", "  ", ". "])), max_size=14))
@example([("things", " "), ("at", " "), ("night", ". ")])
@example([("ana", " "), ("at", " "), ("gmail", ". "), ("com", "")])
@example([("ana", " "), ("at", " "), ("gmail", " "), ("dot", " "), ("com", "")])
@example([("see", " "), ("ınsta", ""), (".", ""), ("com", "")])
@example([("ana", " "), ("arroba", " "), ("gmail", " "), ("punto", " "), ("es", "")])
def test_the_pre_check_passes_a_text_only_when_every_quick_test_says_no(
    parts: list[tuple[str, str]],
) -> None:
    """The pre-check finds nothing in a text only when every quick test says no to it."""
    from chatserver import contact

    text = "".join(a + b for a, b in parts)
    if contact._nothing_to_find(text):
        low = contact._lower(text)
        raw = low.encode("utf-8", "replace")
        assert [wanted for wanted, _ in contact._KINDS if wanted(low, raw)] == []


@pytest.mark.parametrize(
    "text",
    [
        "I have been feeling a bit low this week and wanted to talk to someone.",
        "That sounds really hard. What has been on your mind the most?",
        "Work has been busy and I keep worrying about little things at night.",
        "¿Qué tal? Hoy estoy muy cansada 🙂", "", "ok...",
    ],
)
def test_ordinary_messages_skip_the_quick_tests(text: str) -> None:
    """Ordinary chat passes the pre-check, so masking it runs no quick test and no pattern."""
    from chatserver import contact

    assert contact._nothing_to_find(text)
    assert mask_contacts(text) == (text, False)
