"""Score how at risk a seeker's message reads: ``normal``, ``elevated`` or ``crisis``.

Contract:

- ``score(text, language)`` is pure: no I/O, no network, and nothing one call
  does changes what another returns (a word cache only saves time).
  It accepts any ``str`` (empty, huge, emoji, control characters) and never
  raises. Only the first ``MAX_CHARS`` characters are read (the protocol caps a
  message at 2000). It takes tens of microseconds for a chat-sized message.
- ``language`` is a hint ("en", "es", ...). Every language in the lexicon's
  ``[languages].always`` is tried whatever the hint, because people switch
  languages; ``None`` or an unknown code tries every language.
- The lexicon, ``chatserver/data/risk_lexicon.toml``, is read and compiled once,
  at import. A malformed entry raises ``ValueError`` at import, never later.

How it works: the message is normalised (case, accents, apostrophes, repeated
letters, leetspeak, chat abbreviations, emoji as words), everyday hyperbole is
removed, then each lexicon group is matched and negated matches ("i'm not going
to kill myself") are dropped. ``_decide`` combines the groups found into a
level. docs/safety.md explains the rules and what they miss.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise, repeat
from operator import itemgetter
from typing import Any, Literal

Level = Literal["normal", "elevated", "crisis"]
LEVELS: tuple[Level, ...] = ("normal", "elevated", "crisis")
MAX_CHARS = 10_000
_SEEN_MAX = 50_000  # words remembered (normalised, and the entries they start)

_GROUPS = (
    "hyperbole", "intent", "urgent", "overdose", "plan", "preparation", "veiled", "passive",
    "hopeless", "self_harm", "means", "medication", "timeframe", "benign",
)
_NOT_NEGATED = frozenset({"timeframe", "benign", "jest"})


def rank(level: Level) -> int:
    """Return 0 for normal, 1 for elevated, 2 for crisis."""
    return LEVELS.index(level)


def higher(a: Level, b: Level) -> Level:
    """Return the higher of two levels."""
    return a if rank(a) >= rank(b) else b


# -- normalisation -----------------------------------------------------------

_COMBINING = re.compile(r"[\u0300-\u036f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_HAS_DIGIT = re.compile(r"[0-9@$]")
_LEET_WORD = re.compile(r"(?<![a-z0-9@$])[a-z@$][a-z0-9@$]*[0-9@$][a-z0-9@$]*")
_LEET = str.maketrans("013457@$", "oieastas")
_DOSE = re.compile(r"\b([0-9]+) ?(?:mg|milligrams?|mgs)\b")
_KILOMETRES = re.compile(r"\b([0-9]+) ?kms?\b")  # "20 kms" is a distance, not "kill myself"
_DOUBLES = tuple((c + c, c) for c in "abcdefghijklmnopqrstuvwxyz")
_CLAUSE_MARKS = ".!?;,:()[]|\n\r"
# One table for every ASCII character: letters and digits stay, apostrophes go
# ("don't" -> "dont"), clause marks become "|", everything else a space.
# As bytes: the text is ASCII by then, and bytes.translate is a table lookup in C
# where str.translate with a dict is a dict lookup per character (3x slower).
_ASCII = bytes(
    c if c < 128 and chr(c).isalnum() else ord("|") if chr(c) in _CLAUSE_MARKS else ord(" ")
    for c in range(256)
)
_DROPPED = b"'`"
# For ASCII text: _ASCII after lower() (A-Z to a-z) in one lookup, except that what
# _HAS_DIGIT finds becomes _LEET_MARK, a byte _ASCII gives nothing: a text without it
# then needs none of the rest of _fold_characters.
_LEET_MARK = 1
_ASCII_LOWER = bytes(
    _LEET_MARK if _HAS_DIGIT.match(chr(c)) else _ASCII[ord(chr(c).lower())] for c in range(256)
)
_UNICODE_MARKS: dict[int, str | None] = {
    0xFE0F: None, 0x200D: None, 0x2019: None, 0x2018: None, 0xB4: None,  # ’ ‘ ´
    0x2026: "|", 0xA1: " ", 0xBF: " ",  # … ¡ ¿
}


def _fold(text: str, emoji: Mapping[int, str | None]) -> str:
    """Lowercase, map emoji to words, strip accents and punctuation, squeeze letters."""
    return _squeeze(_fold_characters(text, emoji))


def _squeeze(t: str) -> str:
    for double, single in _DOUBLES:  # "killlll" -> "kil": faster than a regex here
        while double in t:
            t = t.replace(double, single)
    return t


def _fold_characters(text: str, emoji: Mapping[int, str | None],
                     marked: re.Pattern[str] | None = None) -> str:
    """_fold without the squeezing of letters (done word by word by the normaliser).

    ``marked``, when given, finds any character that ``emoji`` maps: the text is
    translated only when it has one, as translating changes nothing else (and
    str.translate raises and clears a KeyError at every other non-ASCII one)."""
    if text.isascii():
        folded = text.encode("ascii").translate(_ASCII_LOWER, _DROPPED)
        if _LEET_MARK not in folded:  # an int: `bytes in bytes` first raises a TypeError
            # What the rest gives such a text, lower() and all: no emoji or accents,
            # no digit, "@" or "$" for the leetspeak and unit rules.
            return folded.decode("ascii").replace("|", " | ")
    t = text.lower()
    if not t.isascii():
        if marked is None or marked.search(t):
            t = t.translate(emoji)
        t = _COMBINING.sub("", unicodedata.normalize("NFKD", t))
        if not t.isascii():  # as accents alone often leave it
            t = _NON_ASCII.sub(" ", t)
    if _HAS_DIGIT.search(t):
        t = _LEET_WORD.sub(lambda m: m.group().translate(_LEET), t)
        t = _KILOMETRES.sub(r"\1 km", _DOSE.sub(r" \1 mg ", t))
    return t.encode("ascii").translate(_ASCII, _DROPPED).decode("ascii").replace("|", " | ")


@dataclass(frozen=True, slots=True)
class _Normaliser:
    emoji: Mapping[int, str | None]
    words: Mapping[str, str]
    phrases: tuple[tuple[str, str], ...]  # (" two words ", " one ")

    # Each word met, squeezed and through the words table: a dict lookup a word
    # instead of 26 substring searches a message (what _fold's squeeze costs).
    known: dict[str, str] = field(default_factory=dict)

    # Derived from words and phrases by __post_init__, for split. A phrase
    # " a b ... " occurs in the padded text only where its first two words a b are
    # two adjacent words of the text; none of those words is empty.
    #  - pairs: each phrase's (a, b); None when a phrase lacks them (then the
    #    phrases are tried on every text);
    #  - spaced: the words-table values that are not exactly one word, such as
    #    "kil myself" (or "", were it one);
    #  - unusual: those, and each phrase's b.
    pairs: frozenset[tuple[str, str]] | None = field(init=False)
    spaced: frozenset[str] = field(init=False)
    unusual: frozenset[str] = field(init=False)
    marked: re.Pattern[str] = field(init=False)  # finds a character emoji maps

    def __post_init__(self) -> None:
        marks = "".join(sorted(re.escape(chr(c)) for c in self.emoji))
        object.__setattr__(self, "marked", re.compile(f"[{marks}]" if marks else "(?!)"))
        pairs = [tuple(p[1:-1].split(" ")[:2]) for p, _ in self.phrases]
        usable = all(len(pair) == 2 and all(pair) for pair in pairs)
        spaced = frozenset(v for v in self.words.values() if v.split() != [v])
        object.__setattr__(self, "pairs", frozenset(pairs) if usable else None)
        object.__setattr__(self, "spaced", spaced)
        object.__setattr__(self, "unusual", spaced | {pair[-1] for pair in pairs})

    def _word(self, word: str) -> str:
        squeezed = _squeeze(word)
        mapped = self.words.get(squeezed, squeezed)
        if len(self.known) > _SEEN_MAX:
            self.known.clear()
        self.known[word] = mapped
        return mapped

    def __call__(self, text: str) -> str:
        return " ".join(self.split(text))

    def split(self, text: str) -> Sequence[str]:
        """Return the words of the normalised text ``t``, ``t.split(" ")``, or none
        when ``t`` is empty: ``t`` is ``" ".join`` of them, as __call__ returns.

        In most texts none of the words looked up in ``known`` is unusual. Each is
        then one word, so they are the words of ``t`` without the phrases, and no
        phrase occurs, as none has its second word among them: ``t`` is their
        join, as the phrase loop would leave it. Otherwise the loop runs only when
        two adjacent words are a phrase's first two (as it would replace nothing
        else), on the padded join as ever."""
        known = self.known
        words = _fold_characters(text, self.emoji, self.marked).split()
        mapped: Sequence[str]
        try:  # every word met before (most messages): looked up in C
            mapped = itemgetter(*words)(known) if len(words) > 1 else [known[w] for w in words]
        except KeyError:
            mapped = [known.get(w) or self._word(w) for w in words]
        pairs = self.pairs
        if pairs is not None and self.unusual.isdisjoint(mapped):
            return mapped
        if self.spaced.isdisjoint(mapped):
            tokens = mapped
        else:  # strip(): a value may be "", then maybe at an end
            tokens = " ".join(mapped).strip().split(" ")
        if pairs is None or not pairs.isdisjoint(pairwise(tokens)):
            t = " " + " ".join(mapped) + " "
            for pair, one in self.phrases:
                while pair in t:
                    t = t.replace(pair, one)
            tokens = t.strip().split(" ")
        return tokens if tokens != [""] else []


def _make_normaliser(table: dict[str, Any]) -> _Normaliser:
    emoji: dict[int, str | None] = dict(_UNICODE_MARKS)
    for char, word in table.get("emoji", {}).items():
        emoji[ord(char)] = f" {word} "
    bare = _Normaliser(emoji, {}, ())
    words = {bare(k): bare(v) for k, v in table.get("words", {}).items()}
    base = _Normaliser(emoji, words, ())
    phrases = tuple((f" {base(k)} ", f" {base(v)} ") for k, v in table.get("phrases", {}).items())
    for pair, joined in phrases:
        if pair in joined:  # would never stop replacing
            raise ValueError(f"risk lexicon: phrase {pair.strip()!r} maps onto itself")
    return _Normaliser(emoji, words, phrases)


# -- entries -----------------------------------------------------------------

_ENTRY_TOKEN = re.compile(r"\([^)]*\)\??|\S+")
_ANY_WORD = "[^ |]+"
_COUNT = r"[1-9][0-9]+\b(?! (?:mg|mcg|ml|g)\b)"


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: hashed by identity
class _Entry:
    group: str
    regex: re.Pattern[str]
    anchors: frozenset[str]  # first words that start a match
    prefixes: frozenset[str]  # first-word prefixes (from "word*")
    # For each anchor and prefix: the words that can follow it in a match ("" for
    # the end of the text), or None when any word can (or none need).
    follows: Mapping[str, frozenset[str] | None]


_END = ""  # the "word" after the last one, in a _Entry's follows


class _Any:
    """The gate of a word whose entries are tried whatever word follows it."""

    __slots__ = ()

    def __contains__(self, word: object) -> bool:
        return True


_ANY = _Any()


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


class _EntryCompiler:
    """Turn the entry notation of risk_lexicon.toml (described at its top) into regexes."""

    def __init__(self, normalise: _Normaliser, lists: Mapping[str, list[str]]) -> None:
        self.normalise = normalise
        self.lists = lists

    def alternatives(self, token: str) -> list[str]:
        if token.startswith("{") and token.endswith("}"):
            name = token[1:-1]
            if name not in self.lists:
                raise ValueError(f"risk lexicon: no [words].{name} for {token}")
            return self.lists[name]
        if token.startswith("("):
            return token[1:-1].split("|")
        return [token]

    def alternative(self, alt: str) -> tuple[str, str, bool]:
        """Return (regex, first word, whether the first word is a prefix)."""
        if alt.endswith("*"):
            stem = self.normalise(alt[:-1])
            if len(stem) < 3 or " " in stem:
                raise ValueError(f"risk lexicon: a prefix must be one word of 3+ letters: {alt!r}")
            return re.escape(stem) + "[a-z0-9]*", stem, True
        words = alt.split()
        if len(words) > 1 and any(w in ("_", "#") for w in words):
            if words[0] in ("_", "#"):
                raise ValueError(f"risk lexicon: alternative must start with a word: {alt!r}")
            parts = [_ANY_WORD if w == "_" else _COUNT if w == "#" else self.alternative(w)[0]
                     for w in words]
            return " ".join(parts), self.alternative(words[0])[1], False
        text = self.normalise(alt)
        if not text:
            raise ValueError(f"risk lexicon: empty alternative in {alt!r}")
        return re.escape(text), text.split(" ")[0], False

    def _first_words(self, tokens: list[str]) -> frozenset[str] | None:
        """The words a match of ``tokens`` (an entry after its first word) can
        begin with, "|" or _END for a clause or text end; None: any, or none needed."""
        if not tokens:
            return None
        token = tokens[0]
        optional = token.endswith("?") and len(token) > 1
        body = token[:-1] if optional else token
        if body in ("...", "_", "#"):
            return None
        words: frozenset[str] | None = frozenset()
        for alt in ["."] if body == "." else self.alternatives(body):
            if alt == ".":
                words = _union(words, frozenset({"|", _END}))
                continue
            _, first, is_prefix = self.alternative(alt)
            words = None if is_prefix else _union(words, frozenset({first}))
        if optional:
            words = _union(words, self._first_words(tokens[1:]))
        return words

    def _follows(self, alt: str, rest: list[str]) -> frozenset[str] | None:
        """The words that can come right after the first word of ``alt`` (an
        alternative of an entry's first token), when ``rest`` follows ``alt``."""
        if not alt.endswith("*"):
            words = alt.split()
            if len(words) > 1 and any(w in ("_", "#") for w in words):
                second = words[1]
                if second in ("_", "#") or second.endswith("*"):
                    return None
                return frozenset({self.alternative(second)[1]})
            words = self.normalise(alt).split(" ")
            if len(words) > 1:
                return frozenset({words[1]})
        return self._first_words(rest)

    def entry(self, group: str, entry: str) -> _Entry:
        tokens = _ENTRY_TOKEN.findall(entry)
        if not tokens or tokens[0] in ("...", ".", "_", "#") or tokens[0].endswith("?"):
            raise ValueError(f"risk lexicon: entry must start with a word: {entry!r}")
        source = ""
        anchors: set[str] = set()
        prefixes: set[str] = set()
        for i, token in enumerate(tokens):
            optional = token.endswith("?") and len(token) > 1
            body = token[:-1] if optional else token
            if body == "...":
                source += f"(?: {_ANY_WORD}){{0,4}}"
                continue
            if body == ".":
                source += r"(?= \||$)"
                continue
            alternatives = self.alternatives(body)
            if i > 0 and "." in alternatives:  # "(anymore|.)": a word, or the clause ends
                rest = [self.alternative(a)[0] for a in alternatives if a != "."]
                source += r"(?:(?= \||$)| (?:" + "|".join(rest) + "))"
                continue
            if body in ("_", "#"):
                piece = _ANY_WORD if body == "_" else _COUNT
            else:
                compiled = [self.alternative(a) for a in alternatives]
                piece = "(?:" + "|".join(c[0] for c in compiled) + ")"
                if i == 0:
                    for _, first, is_prefix in compiled:
                        (prefixes if is_prefix else anchors).add(first)
            if i == 0:
                source = piece
            else:
                source += f"(?: {piece})?" if optional else f" {piece}"
        regex = re.compile(f"(?:{source})(?![a-z0-9])")
        follows: dict[str, frozenset[str] | None] = {}
        for alt in self.alternatives(tokens[0]):
            first = self.alternative(alt)[1]
            after = self._follows(alt, tokens[1:])
            follows[first] = _union(follows[first], after) if first in follows else after
        return _Entry(group, regex, frozenset(anchors), frozenset(prefixes), follows)


# The entries a word can start; (for two or more) one regex that matches where
# any of them does; the words that can follow the word in any of their matches
# (None: any).
_Candidates = tuple[re.Pattern[str] | None, tuple[_Entry, ...], frozenset[str] | None]


@dataclass(frozen=True, slots=True)
class _Index:
    """Entries by the first word they need, so a message only tries what can match."""

    exact: Mapping[str, tuple[_Entry, ...]]
    prefixes: Mapping[str, tuple[tuple[str, _Entry], ...]]  # by the prefix's first 3 letters
    seen: dict[str, _Candidates]  # candidates per word, filled as words are met
    together: dict[tuple[_Entry, ...], re.Pattern[str]]  # one regex for several candidates
    # Filled and cleared with ``seen``, from its candidates, for matches_words:
    #  - gates: per word, the next words after which its entries are tried (an
    #    empty set when it starts none), or _ANY when they are tried after any;
    #  - quiet: the words whose gate is not _ANY;
    #  - pairs: (word, next word) for each quiet word and each next word in its gate.
    gates: dict[str, frozenset[str] | _Any]
    quiet: set[str]
    pairs: set[tuple[str, str]]

    @classmethod
    def of(cls, entries: list[_Entry]) -> _Index:
        exact: dict[str, list[_Entry]] = {}
        prefixes: dict[str, list[tuple[str, _Entry]]] = {}
        for e in entries:
            for word in e.anchors:
                exact.setdefault(word, []).append(e)
            for stem in e.prefixes:
                prefixes.setdefault(stem[:3], []).append((stem, e))
        return cls({k: tuple(v) for k, v in exact.items()},
                   {k: tuple(v) for k, v in prefixes.items()}, {}, {}, {}, set(), set())

    def candidates(self, token: str) -> _Candidates:
        found = self.seen.get(token)
        if found is None:
            entries = self.exact.get(token, ())
            follows: frozenset[str] | None = frozenset()
            for entry in entries:
                follows = _union(follows, entry.follows[token])
            for stem, entry in self.prefixes.get(token[:3], ()):
                if token.startswith(stem):
                    entries = (*entries, entry)
                    follows = _union(follows, entry.follows[stem])
            found = (self._together(entries) if len(entries) > 1 else None, entries, follows)
            if len(self.seen) > _SEEN_MAX or len(self.pairs) > _SEEN_MAX:  # pairs: a few a word
                self.forget()
            self.seen[token] = found
            self.gates[token] = _ANY if follows is None else follows
            if follows is not None:
                self.quiet.add(token)
                self.pairs.update(zip(repeat(token), follows))
        return found

    def forget(self) -> None:
        """Empty the caches (they only save time: a word's candidates never change)."""
        self.seen.clear()
        self.gates.clear()
        self.quiet.clear()
        self.pairs.clear()

    def _together(self, entries: tuple[_Entry, ...]) -> re.Pattern[str]:
        """One regex that matches at a position exactly when one of the entries does
        (an alternation tries every branch): one call instead of one per entry for
        the common word that starts several entries and, in most messages, none."""
        regex = self.together.get(entries)
        if regex is None:
            regex = re.compile("|".join(f"(?:{e.regex.pattern})" for e in entries))
            self.together[entries] = regex
        return regex

    def matches(self, text: str) -> list[tuple[_Entry, re.Match[str]]]:
        """Return every entry matching at a word start of ``text``, in text order."""
        return self.matches_words(text.split(" "), text)

    def matches_words(self, tokens: Sequence[str], text: str | None = None
                      ) -> list[tuple[_Entry, re.Match[str]]]:
        """``matches(" ".join(tokens))``; that text (``text``, when given) is made
        only when some word's entries are to be tried.

        The walk tries a word's entries (its candidates) unless its gate says the
        next word cannot follow it in any of them. In most messages it would try
        none, which two set operations in C tell without a Python step a word: when
        every word is quiet (met, and its gate a set) and no (word, next word) is
        in ``pairs``, no word's gate holds the word after it."""
        # zip without strict= (the lengths are equal): the keyword argument would
        # cost a slower call, and itertools.pairwise a new tuple a word.
        following = [*tokens[1:], _END]
        if self.quiet.issuperset(tokens) and self.pairs.isdisjoint(
                zip(tokens, following)):  # noqa: B905
            return []
        gates = self.gates  # gates.get(...), not a bound gates.get: compiled, a call in C
        seen = self.seen
        found = []
        pos = 0  # where token starts in the text
        for token, after in zip(tokens, following):  # noqa: B905
            follows = gates.get(token)
            if follows is None:  # not met yet (or forgotten)
                self.candidates(token)
                follows = self.gates[token]
            if follows and (follows is _ANY or after in follows):
                if text is None:
                    text = " ".join(tokens)
                anyone, entries, _ = seen.get(token) or self.candidates(token)
                if anyone is None or anyone.match(text, pos) is not None:
                    for entry in entries:
                        m = entry.regex.match(text, pos)
                        if m is not None:
                            found.append((entry, m))
            pos += len(token) + 1
        return found


# -- the lexicon -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lexicon:
    normalise: _Normaliser
    languages: tuple[str, ...]
    always: tuple[str, ...]
    indexes: Mapping[tuple[str, ...], _Index]
    negation: re.Pattern[str]
    # indexes[key(language)] for each language of the lexicon and None (the hints
    # score meets), looked up once here instead of at every message.
    by_language: Mapping[str | None, _Index] = field(init=False)

    def __post_init__(self) -> None:
        by_language = {lang: self.indexes[self.key(lang)] for lang in (*self.languages, None)}
        object.__setattr__(self, "by_language", by_language)

    def key(self, language: str | None) -> tuple[str, ...]:
        if language in self.languages and language not in self.always:
            return (*self.always, language)
        if language in self.always:
            return self.always
        return self.languages


def _load(data: dict[str, Any]) -> _Lexicon:
    normalise = _make_normaliser(data.get("normalise", {}))
    compiler = _EntryCompiler(normalise, data.get("words", {}))
    languages = tuple(sorted({lang for g in _GROUPS for lang in data[g]}))
    always = tuple(lang for lang in languages if lang in data["languages"]["always"])
    keys = {always, languages, *((*always, lang) for lang in languages if lang not in always)}
    markers = data["markers"]
    jest = [compiler.entry("jest", e) for e in markers["jest"]]
    indexes = {
        key: _Index.of(
            [compiler.entry(g, e) for g in _GROUPS for lang in key for e in data[g].get(lang, [])]
            + jest
        )
        for key in keys
    }
    negators = "|".join(re.escape(normalise(w)) for w in markers["negators"])
    stops = "|".join(re.escape(normalise(w)) for w in markers["negation_stops"])
    negation = re.compile(
        rf"(?<![a-z0-9])(?:{negators})(?: (?!(?:{stops})(?![a-z0-9]))[^ |]+){{0,2}} $"
    )
    return _Lexicon(normalise, languages, always, indexes, negation)


def _read_packaged() -> _Lexicon:
    path = resources.files("chatserver").joinpath("data/risk_lexicon.toml")
    return _load(tomllib.loads(path.read_text(encoding="utf-8")))


_LEXICON = _read_packaged()


def normalise(text: str) -> str:
    """Return ``text`` as the scorer sees it (for tests and for lexicon authors)."""
    return _LEXICON.normalise(text[:MAX_CHARS])


# -- scoring -----------------------------------------------------------------


def _without_hyperbole(text: str, spans: list[tuple[int, int]]) -> str:
    """Replace every hyperbole match with a clause break, so nothing matches across it."""
    out, last = [], 0
    for start, end in spans:
        if start >= last:
            out.append(text[last:start])
            out.append("|")
            last = end
    out.append(text[last:])
    return "".join(out)


def _found(index: _Index, matches: list[tuple[_Entry, re.Match[str]]]) -> set[str]:
    """Return the names of the groups with at least one match that is not negated,
    given the index's matches (not none) in a text."""
    text = matches[0][1].string
    hyperbole = [m.span() for e, m in matches if e.group == "hyperbole"]
    if hyperbole:
        text = _without_hyperbole(text, hyperbole)
        matches = index.matches(text)
    negation = _LEXICON.negation
    found: set[str] = set()
    for entry, m in matches:
        if entry.group in found or entry.group == "hyperbole":
            continue
        start = m.start()
        if entry.group in _NOT_NEGATED or not negation.search(text, max(0, start - 60), start):
            found.add(entry.group)
    return found


# The sets of groups _decide tests, built once (a set display is built at every call).
_MEANS = frozenset({"means", "medication"})
_IDEATION = frozenset({"passive", "hopeless", "veiled"})
_PLANNING = frozenset({"plan", "preparation"})
_URGENT = frozenset({"urgent", "overdose"})
_VEILED_OR_PLAN = frozenset({"veiled", "plan"})
_PLAN_OR_SELF_HARM = frozenset({"plan", "self_harm"})


def _decide(found: set[str]) -> Level:
    """Combine the groups found in a message into a level (docs/safety.md, "Rules")."""
    if "benign" in found:
        found.discard("medication")
    means = bool(found & _MEANS)
    ideation = found & _IDEATION
    context = ideation | (found & _PLANNING)
    if found & _URGENT:
        return "crisis"
    if "intent" in found:
        joking = "jest" in found and not (means or context or "timeframe" in found)
        return "elevated" if joking else "crisis"
    if means and context:
        return "crisis"
    if found & _VEILED_OR_PLAN and "timeframe" in found:
        return "crisis"
    if found & _PLANNING and ideation:
        return "crisis"
    if ideation or found & _PLAN_OR_SELF_HARM:
        return "elevated"
    return "normal"


def score(text: str, language: str | None = None) -> Level:
    """Return the risk level of one seeker message; see the module docstring."""
    tokens = _LEXICON.normalise.split(text[:MAX_CHARS])
    if not tokens:
        return "normal"
    index = _LEXICON.by_language.get(language) or _LEXICON.indexes[_LEXICON.key(language)]
    matches = index.matches_words(tokens)
    if not matches:  # then nothing is found, and _decide(set()) is "normal"
        return "normal"
    return _decide(_found(index, matches))
