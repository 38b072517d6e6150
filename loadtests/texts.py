"""What simulated people say: ordinary, benign chat (no contact details, no
crisis words), so the bench measures the relay and not the safety paths."""

from __future__ import annotations

TEXTS = (
    "I have been feeling a bit low this week and wanted to talk to someone.",
    "That sounds really hard. What has been on your mind the most?",
    "Work has been busy and I keep worrying about little things at night.",
    "It makes sense to feel tired when there is so much going on.",
    "Thanks for listening, it helps to put it into words.",
    "Would it help to think about one small thing you could do tomorrow?",
    "Maybe a walk in the morning, I used to enjoy that a lot.",
    "That is a lovely idea. How did you feel after those walks?",
)

NOTES = (
    "I would like to talk about a hard week.",
    "Things at home have been tense lately.",
    "I feel lonely since I moved to a new city.",
    "Exams are coming and I cannot focus.",
)
