"""The risk scorer: measured on the labelled set, then behaviour by behaviour.

`pytest tests/test_risk.py -s` prints the precision/recall table; a failing
threshold test shows the same table and the misclassified lines.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatserver import risk
from chatserver.risk import LEVELS, Level, higher, normalise, rank, score

LABELLED = Path(__file__).parent / "data" / "risk_labelled.tsv"
HELD_OUT_MARKER = "# ---- held out"

CRISIS_RECALL_MIN = 0.95
ELEVATED_OR_ABOVE_RECALL_MIN = 0.90
FALSE_ALARM_MAX = 0.05


@dataclass(frozen=True)
class Example:
    level: Level
    language: str
    text: str
    held_out: bool


def _examples() -> list[Example]:
    examples, held_out = [], False
    for number, line in enumerate(LABELLED.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(HELD_OUT_MARKER):
            held_out = True
        if not line.strip() or line.startswith("#"):
            continue
        level, language, text = line.split("\t", 2)
        assert level in LEVELS, f"{LABELLED.name}:{number}: unknown level {level!r}"
        examples.append(Example(level, language, text, held_out))  # type: ignore[arg-type]
    return examples


EXAMPLES = _examples()


@dataclass(frozen=True)
class Report:
    crisis_recall: float
    elevated_or_above_recall: float
    false_alarms: float
    text: str


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def _report(examples: list[Example], title: str) -> Report:
    pairs = [(e.level, score(e.text, e.language), e) for e in examples]
    lines = [f"{title}: {len(pairs)} lines", "level      precision  recall   n"]
    for level in LEVELS:
        predicted = sum(p == level for _, p, _ in pairs)
        actual = sum(a == level for a, _, _ in pairs)
        hit = sum(a == p == level for a, p, _ in pairs)
        lines.append(
            f"{level:<10} {_ratio(hit, predicted):>9.2f}  {_ratio(hit, actual):>6.2f}  {actual:>3}"
        )
    crisis = [p for a, p, _ in pairs if a == "crisis"]
    at_risk = [p for a, p, _ in pairs if a != "normal"]
    normal = [p for a, p, _ in pairs if a == "normal"]
    report = Report(
        crisis_recall=_ratio(crisis.count("crisis"), len(crisis)),
        elevated_or_above_recall=_ratio(sum(p != "normal" for p in at_risk), len(at_risk)),
        false_alarms=_ratio(sum(p != "normal" for p in normal), len(normal)),
        text="",
    )
    lines += [
        f"crisis recall            {report.crisis_recall:.2f}  (min {CRISIS_RECALL_MIN})",
        f"elevated-or-above recall {report.elevated_or_above_recall:.2f}"
        f"  (min {ELEVATED_OR_ABOVE_RECALL_MIN})",
        f"false alarms on normal   {report.false_alarms:.2f}  (max {FALSE_ALARM_MAX})",
        "misclassified:",
        *(f"  want {a:<8} got {p:<8} [{e.language}] {e.text}" for a, p, e in pairs if a != p),
    ]
    return Report(report.crisis_recall, report.elevated_or_above_recall,
                  report.false_alarms, "\n".join(lines))


def test_labelled_set_is_big_and_balanced_enough() -> None:
    """The labelled set has 200+ lines, every level, both languages and a held-out part."""
    assert len(EXAMPLES) >= 200
    assert {e.level for e in EXAMPLES} == set(LEVELS)
    assert {e.language for e in EXAMPLES} >= {"en", "es"}
    assert sum(e.held_out for e in EXAMPLES) >= 60


def test_scorer_meets_the_thresholds_on_the_labelled_set() -> None:
    """Crisis recall, elevated-or-above recall and false alarms meet the thresholds."""
    full = _report(EXAMPLES, "full set")
    held = _report([e for e in EXAMPLES if e.held_out], "held-out part (never tuned against)")
    print(f"\n{full.text}\n\n{held.text}")
    assert full.crisis_recall >= CRISIS_RECALL_MIN, full.text
    assert full.elevated_or_above_recall >= ELEVATED_OR_ABOVE_RECALL_MIN, full.text
    assert full.false_alarms <= FALSE_ALARM_MAX, full.text


# -- levels ------------------------------------------------------------------


def test_rank_orders_the_levels() -> None:
    """Rank is 0, 1, 2 for normal, elevated, crisis."""
    assert [rank(level) for level in LEVELS] == [0, 1, 2]


@pytest.mark.parametrize("a", LEVELS)
@pytest.mark.parametrize("b", LEVELS)
def test_higher_returns_the_higher_level(a: Level, b: Level) -> None:
    """Higher returns whichever level ranks higher, in either order."""
    assert rank(higher(a, b)) == max(rank(a), rank(b))


# -- normalisation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("I'M GOING TO", "im going to"),
        ("I am", "im"),
        ("i don’t", "i dont"),
        ("do not", "dont"),
        ("killlll myselffff", "kil myself"),
        ("K1ll mys3lf", "kil myself"),
        ("está cansada", "esta cansada"),
        ("¿Qué pasa?", "que pasa |"),
        ("kms rn", "kil myself right now"),
        ("wanna ctb tmrw", "want to kil myself tomorow"),
        ("took 800mg", "tok 800 mg"),
        ("it is 20 kms away", "it is 20 km away"),
        ("💊💊", "pils pils"),
    ],
)
def test_normalise_folds_spelling_variants(raw: str, normalised: str) -> None:
    """Case, accents, apostrophes, repeats, leetspeak, abbreviations and emoji fold to one form."""
    assert normalise(raw) == normalised


@pytest.mark.parametrize(
    "text",
    ["I want to kill myself", "i want to kill myself", "I WANT TO KILL MYSELF",
     "i want to killll myselfff", "i w4nt to k1ll mys3lf", "i wanna kill my self",
     "want to kill myself.", "kms", "i want to unalive myself", "gonna ctb"],
)
def test_spelling_variants_of_intent_score_crisis(text: str) -> None:
    """Explicit intent is crisis however it is spelled."""
    assert score(text) == "crisis"


def test_spanish_matches_with_and_without_accents() -> None:
    """Spanish phrases match whether or not the writer types the tildes."""
    assert score("todos estarían mejor sin mí") == "elevated"
    assert score("todos estarian mejor sin mi") == "elevated"
    assert score("ME VOY A SUICIDAR") == "crisis"


# -- hyperbole, negation, reporting ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["this homework is killing me", "I could kill for a coffee", "dying to see it",
     "I'm dead lol", "that joke killed me", "me muero de risa", "me mata el calor",
     "I'm dying of embarrassment", "me quiero morir de vergüenza", "i cut myself shaving",
     "to die for", "me voy a matar a estudiar"],
)
def test_everyday_hyperbole_stays_normal(text: str) -> None:
    """Everyday exaggeration about dying or killing is normal."""
    assert score(text) == "normal"


@pytest.mark.parametrize(
    "text",
    ["I'm not suicidal", "i'm not going to kill myself", "I would never hurt myself",
     "i don't want to die", "no quiero matarme", "nunca me haría daño", "no pienso suicidarme"],
)
def test_negated_statements_stay_normal(text: str) -> None:
    """A negation right before the statement cancels it."""
    assert score(text) == "normal"


def test_negation_does_not_reach_across_a_new_statement() -> None:
    """"not okay, i want to die" is not negated: the negation belongs to another clause."""
    assert score("i'm not okay i want to die") == "crisis"
    assert score("i dont know why but i want to kill myself") == "crisis"


@pytest.mark.parametrize(
    "text",
    ["my friend's essay about suicide prevention", "the suicide squad was bad",
     "my friend says she wants to kill herself", "a documentary on suicide rates",
     "vi una película sobre un chico que se suicida"],
)
def test_talk_about_others_or_topics_stays_normal(text: str) -> None:
    """Talk about suicide as a topic or about someone else does not score the seeker."""
    assert score(text) == "normal"


def test_a_joke_marker_lowers_bare_intent_to_elevated() -> None:
    """Intent marked as a joke with nothing else is elevated, not crisis or normal."""
    assert score("gonna kill myself if they play that song again lol") == "elevated"
    assert score("quiero matarme jajaja") == "elevated"
    assert score("lol i have the pills, i want to kill myself tonight") == "crisis"


# -- means, plans, timeframes -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["I have the pills ready", "took 30 tylenol", "i took 12 of my sleeping pills",
     "im going to end it tonight", "i can't go on, i bought a rope",
     "ya tengo las pastillas listas", "me tomé 20 pastillas", "i drank antifreeze"],
)
def test_means_with_intent_plan_or_time_is_crisis(text: str) -> None:
    """Means with a plan, a count, a timeframe or ideation is crisis."""
    assert score(text) == "crisis"


@pytest.mark.parametrize(
    "text",
    ["I took ibuprofen for my headache", "took 2 tylenol", "the rope swing is fun",
     "i take 800mg ibuprofen my doctor prescribed", "i need to take my pills tonight",
     "we crossed the bridge today", "me tomé un ibuprofeno para el dolor de cabeza"],
)
def test_means_alone_stays_normal(text: str) -> None:
    """A means word in an ordinary sentence is normal."""
    assert score(text) == "normal"


@pytest.mark.parametrize(
    "text",
    ["I wish I could sleep and not wake up", "everyone would be better off without me",
     "I started cutting again", "no quiero despertar", "todos estarían mejor sin mí",
     "me volví a cortar", "i relapsed on sh"],
)
def test_passive_ideation_and_self_harm_are_elevated(text: str) -> None:
    """Passive ideation and self-harm are elevated."""
    assert score(text) == "elevated"


# -- emoji ---------------------------------------------------------------------


def test_pill_emoji_counts_as_medication() -> None:
    """💊 is medication: normal alone, crisis with ideation."""
    assert score("💊") == "normal"
    assert score("no reason to live 💊") == "crisis"
    assert score("💊💊💊") == "crisis"


def test_laughing_skull_is_a_joke_marker() -> None:
    """💀 reads as laughing, like "lol"."""
    assert score("lmao i'm dead 💀") == "normal"
    assert score("i want to kill myself 💀") == "elevated"


def test_knife_and_rope_emoji_are_means() -> None:
    """🔪 and 🪢 are means: nothing alone, crisis with hopelessness."""
    assert score("🔪") == score("🪢") == "normal"
    assert score("i can't do this anymore 🪢") == "crisis"


# -- languages and robustness ----------------------------------------------------


def test_every_always_language_is_tried_whatever_the_hint() -> None:
    """A Spanish message is scored under an English hint, and the reverse."""
    assert score("quiero matarme", "en") == "crisis"
    assert score("i want to kill myself", "es") == "crisis"
    assert score("i want to kill myself", "xx") == "crisis"
    assert score("i want to kill myself", None) == "crisis"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["en", "es", None, "fr", ""]))
def test_score_never_raises(text: str, language: str | None) -> None:
    """Any string in any language hint scores to a level without raising."""
    assert score(text, language) in LEVELS


@pytest.mark.parametrize(
    "text",
    ["", " ", "\x00\x1f\x7f", "\u200d\ufe0f", "💊" * 5000, "a" * 50_000,
     "kill myself " * 2000, "|||...,,,", "\ud800", "i" + " " * 10_000 + "want to die"],
)
def test_score_handles_edge_inputs(text: str) -> None:
    """Empty, control, surrogate and huge strings score without raising."""
    assert score(text) in LEVELS


def test_a_malformed_entry_fails_at_load() -> None:
    """An entry that does not start with a word is refused when the lexicon loads."""
    path = Path(risk.__file__).parent / "data" / "risk_lexicon.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["intent"]["en"].append("... kill myself")
    with pytest.raises(ValueError, match="must start with a word"):
        risk._load(data)


# -- the quick paths give what the plain ones give --------------------------------

_LEXICON_DATA = tomllib.loads(
    (Path(risk.__file__).parent / "data" / "risk_lexicon.toml").read_text(encoding="utf-8"))
_TABLES = _LEXICON_DATA["normalise"]
_ENTRY_WORDS = sorted({
    word
    for group in risk._GROUPS for entries in _LEXICON_DATA[group].values() for entry in entries
    for word in entry.replace("(", " ").replace(")", " ").replace("|", " ").split()
    if word.isalpha()
} | {w for words in _LEXICON_DATA["words"].values() for w in " ".join(words).split()})
_NORMALISE_PIECES = sorted(
    set(_TABLES["words"]) | {w for p in _TABLES["phrases"] for w in p.split()}
    | set(_TABLES.get("emoji", {}))
    | {"kill", "myself", "not", "2", "I", "AM", "don't", ".", "!", "killlll", "mysellf", "sooo",
       "kmss", "wannna", "nooot", "iii", "aa", "dooo"}
)


def _fold_characters_plainly(text: str) -> str:
    """What _fold_characters gives, every step taken on every text."""
    t = text.lower()
    if not t.isascii():
        t = unicodedata.normalize("NFKD", t.translate(risk._LEXICON.normalise.emoji))
        t = risk._NON_ASCII.sub(" ", risk._COMBINING.sub("", t))
    if risk._HAS_DIGIT.search(t):
        t = risk._LEET_WORD.sub(lambda m: m.group().translate(risk._LEET), t)
        t = risk._KILOMETRES.sub(r"\1 km", risk._DOSE.sub(r" \1 mg ", t))
    return t.encode("ascii").translate(risk._ASCII, risk._DROPPED).decode("ascii").replace(
        "|", " | ")


_FOLD_ALPHABET = (
    "abcxyzABCXYZ 0123456789@$'`.,!?;:()[]|\n\r\t\x0b\x1f\x00-_/*#\u00a0\u2028"
    "áéíóúñüÁÉÍÓÚÑÜçßµ\u0301\u0300\u0327\u20dd\u212a\u0130Σσςﬁ①½²ＡＢ１ℌ"
    + "".join(sorted(map(chr, risk._LEXICON.normalise.emoji)))
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=_FOLD_ALPHABET, max_size=40)))
def test_folding_skips_only_steps_that_change_nothing(text: str) -> None:
    """The ASCII path, the emoji test and the ASCII test fold as every step does."""
    n = risk._LEXICON.normalise
    assert risk._fold_characters(text, n.emoji, n.marked) == _fold_characters_plainly(text)
    assert risk._fold_characters(text, n.emoji) == _fold_characters_plainly(text)


def test_the_ascii_table_marks_exactly_what_the_digit_test_finds() -> None:
    """_ASCII_LOWER is _ASCII after lower(), but for _LEET_MARK, which _ASCII never gives."""
    assert risk._LEET_MARK not in risk._ASCII
    for c in range(128):
        want = ord(chr(c).lower()) if not risk._HAS_DIGIT.match(chr(c)) else None
        got = risk._ASCII_LOWER[c]
        assert got == (risk._LEET_MARK if want is None else risk._ASCII[want]), chr(c)


def _normalise_without_pre_checks(text: str) -> str:
    """What normalise gives when the word table and every phrase are always applied."""
    n = risk._LEXICON.normalise
    get = n.words.get
    folded = risk._squeeze(_fold_characters_plainly(text[:risk.MAX_CHARS]))
    t = " " + " ".join([get(w, w) for w in folded.split()]) + " "
    for words, joined in n.phrases:
        while words in t:
            t = t.replace(words, joined)
    return t.strip()


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_NORMALISE_PIECES), st.sampled_from([" ", "  ", ", "])),
                max_size=12))
def test_the_quick_pre_checks_never_change_the_normalised_text(
        parts: list[tuple[str, str]]) -> None:
    """Skipping the word table and the phrases when none can apply changes nothing."""
    text = "".join(a + b for a, b in parts)
    assert normalise(text) == _normalise_without_pre_checks(text)
    words = risk._LEXICON.normalise.split(text)
    assert list(words) == (normalise(text).split(" ") if normalise(text) else [])


def _assert_quick_matches_are_all_matches(text: str, key: tuple[str, ...]) -> None:
    index = risk._LEXICON.indexes[key]
    one_by_one, pos = [], 0
    for token in text.split(" "):
        for entry in index.candidates(token)[1]:
            m = entry.regex.match(text, pos)
            if m is not None:
                one_by_one.append((entry, m.span()))
        pos += len(token) + 1
    assert [(e, m.span()) for e, m in index.matches(text)] == one_by_one


_KEYS = sorted(risk._LEXICON.indexes, key=len)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_ENTRY_WORDS + ["|", "not", "i", "dont", "."]), max_size=14),
       st.sampled_from(_KEYS), st.sampled_from([e.text for e in EXAMPLES] + [""]))
def test_one_regex_per_word_and_the_next_word_test_miss_no_match(
        words: list[str], key: tuple[str, ...], example: str) -> None:
    """Trying a word's entries together, and only when the next word can follow,
    finds every match that trying each entry at every word finds."""
    cut = len(words) // 2
    text = normalise(" ".join([*words[:cut], example, *words[cut:]]))
    _assert_quick_matches_are_all_matches(text, key)


def test_the_quick_matching_misses_nothing_on_the_labelled_set() -> None:
    """The same, on every labelled example, in every language set."""
    for example in EXAMPLES:
        for key in _KEYS:
            _assert_quick_matches_are_all_matches(normalise(example.text), key)


def _every_match(index: risk._Index, text: str) -> list[tuple[risk._Entry, tuple[int, int]]]:
    """What _Index.matches must yield, by its definition: at every word start, in
    text order, every entry the word can start whose regex matches there."""
    found, pos = [], 0
    for token in text.split(" "):
        entries = list(index.exact.get(token, ()))
        entries += [e for stem, e in index.prefixes.get(token[:3], ()) if token.startswith(stem)]
        for entry in entries:
            m = entry.regex.match(text, pos)
            if m is not None:
                found.append((entry, m.span()))
        pos += len(token) + 1
    return found


def _check_index_matches(texts: list[str]) -> None:
    for key, index in risk._LEXICON.indexes.items():
        for text in texts:
            t = normalise(text)
            got = [(e, m.span()) for e, m in index.matches(t)]
            assert got == _every_match(index, t), (key, text)
            words = risk._LEXICON.normalise.split(text)  # as score has them
            got = [(e, m.span()) for e, m in index.matches_words(words)]
            assert got == _every_match(index, t), (key, text)


def _skipped(index: risk._Index, words: list[str]) -> bool:
    """Whether matches_words returns at once, without walking the words."""
    return index.quiet.issuperset(words) and index.pairs.isdisjoint(
        zip(words, [*words[1:], risk._END], strict=True))


_FILLER = ["|", "not", "i", "dont", "a", "the", "to", "it", "was", "so", "we", "you", "and",
           "2", "20", "hour", "hours", "my", "me", "in", "on", "this", "that", "is", "have"] + [
    word for index in risk._LEXICON.indexes.values() for word in index.exact  # can end a text
    if risk._END in (index.candidates(word)[2] or ())]


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(_ENTRY_WORDS + _FILLER), max_size=14),
                 st.lists(st.sampled_from(_FILLER + _ENTRY_WORDS[::10]), max_size=6)),
       st.sampled_from([e.text for e in EXAMPLES] + ["", "", "", "", "", ""]))
def test_skipping_the_walk_never_misses_a_match(words: list[str], example: str) -> None:
    """matches_words skips the walk only when trying every entry at every word finds none."""
    for index in risk._LEXICON.indexes.values():
        for t in (normalise(" ".join([*words, example])), normalise(" ".join([example, *words]))):
            index.matches(t)  # meets the words: then the quick test can apply
            if _skipped(index, t.split(" ")):
                assert _every_match(index, t) == []
            assert [(e, m.span()) for e, m in index.matches(t)] == _every_match(index, t)


def test_the_gates_agree_with_the_candidates_of_every_word_met() -> None:
    """A word is quiet exactly when its gate is not _ANY, its gate is the words its
    candidates can be followed by, and pairs holds (word, next word) for exactly those."""
    for index in risk._LEXICON.indexes.values():
        for text in [e.text for e in EXAMPLES] + _ENTRY_WORDS + _FILLER:
            index.matches(normalise(text))
        assert index.gates.keys() == index.seen.keys()
        pairs = set()
        for word, gate in index.gates.items():
            _, entries, follows = index.candidates(word)
            assert (word in index.quiet) == (gate is not risk._ANY)
            assert gate is risk._ANY if follows is None else gate == follows
            assert bool(entries) or (gate is not risk._ANY and not gate)
            if isinstance(gate, frozenset):
                pairs |= {(word, after) for after in gate}
        assert index.pairs == pairs


def test_the_walk_is_skipped_for_some_labelled_messages_not_all() -> None:
    """The quick test skips some labelled messages, all without a match, and not the rest."""
    index = risk._LEXICON.indexes[risk._LEXICON.key("en")]
    texts = [normalise(e.text) for e in EXAMPLES]
    for t in texts:
        index.matches(t)
    skipped = [t for t in texts if _skipped(index, t.split(" "))]
    assert 0 < len(skipped) < len(texts)
    assert all(_every_match(index, t) == [] for t in skipped)


def test_the_index_kept_for_a_language_is_the_index_of_its_key() -> None:
    """by_language holds indexes[key(language)] for every language and None."""
    lexicon = risk._LEXICON
    assert lexicon.by_language.keys() == {*lexicon.languages, None}
    for language, index in lexicon.by_language.items():
        assert index is lexicon.indexes[lexicon.key(language)]


def test_index_matches_finds_what_trying_every_word_finds() -> None:
    """The index visits only the words that start an entry, skipping those whose next
    word cannot follow; on the labelled set it finds exactly what trying every entry
    of every word finds, in the same order; and on every one or two filler words."""
    _check_index_matches([e.text for e in EXAMPLES])
    _check_index_matches([*_FILLER, *(f"{a} {b}" for a in _FILLER for b in _FILLER)])


@pytest.mark.parametrize("most", [60, 3])
def test_index_matches_holds_when_its_cache_is_cleared_mid_message(
        monkeypatch: pytest.MonkeyPatch, most: int) -> None:
    """The index's word cache is cleared when it passes _SEEN_MAX, which may happen
    while a message's words are being looked up: with a clear every few messages it
    still finds exactly what trying every word finds, and with one every few words."""
    monkeypatch.setattr(risk, "_SEEN_MAX", most)  # 60: more than a message's words, as 50,000 is
    for index in risk._LEXICON.indexes.values():  # cold: every word is new again
        index.forget()
    _check_index_matches([e.text for e in EXAMPLES])
    for index in risk._LEXICON.indexes.values():  # seen alone: the rest still holds
        index.seen.clear()
    _check_index_matches([e.text for e in EXAMPLES])
