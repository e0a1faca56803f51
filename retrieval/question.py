"""The question frame of a German query: the words that ask, not the words that say what about.

"Wie viele Einwohner hat Berlin?" asks about `Einwohner` and `Berlin`; `viele` only says that a number is
wanted, and a passage holding the answer says "3,7 Millionen", not "viele". The stop list removes `wie`,
but the frame words after it (`viele`, `heißt`, `lautet`, `versteht man unter`, `nennen Sie`, `seit wann`)
are ordinary words there and match passages that merely use them (`laut` = "according to"). Only the
frame at the start of a question (or after a leading preposition: "In welchem Jahr", "Seit wann") is cut;
the same words elsewhere are content. Rules are grammar, not tuned on a data set: interrogatives, the
verbs of naming and meaning that German questions open with, and quantity words after `wie`.
"""

from __future__ import annotations

import re

# A leading preposition ("In welchem Jahr", "Seit wann", "Durch was", "Ab wann", "Bis wann") belongs to the frame
# only together with the interrogative after it.
_PREP = r"(?:in|an|auf|aus|bei|bis|durch|für|gegen|mit|nach|seit|ab|über|unter|von|vor|zu|zum|zur|um|als)"
_WH = (r"(?:wie|was|wer|wen|wem|wessen|wann|wo|woher|wohin|warum|weshalb|wieso|weswegen|wozu|wofür|womit|wodurch|"
       r"worauf|woraus|worin|worüber|wovon|wonach|welche[rsnm]?)")
# What follows `wie` when it asks for an amount or a name ("Wie viele", "Wie heißt", "Wie nennt man").
_HOW = r"(?:viele?|vielen|oft|lange|heißt|heisst|hieß|hiess|hießen|lautet|lauteten|lautete|nennt\s+man|nannte\s+man)"
# Frames of definition and naming questions, wherever the interrogative sits.
_FRAMES = (
    r"was\s+versteh(?:t|en)\s+(?:man|sie)\s+unter",
    r"was\s+(?:bedeutet|bezeichnet|meint)(?:\s+(?:man|der\s+begriff|das\s+wort))?",
    r"wie\s+(?:bezeichnet|nennt|nannte)\s+man",
    r"(?:nennen|beschreiben|erklären|erläutern)\s+sie",
)
_FRAME = re.compile(
    rf"^\s*(?:{'|'.join(_FRAMES)}|(?:{_PREP}\s+)?{_WH}(?:\s+{_HOW})?)\b[\s,:]*", re.IGNORECASE)


def strip_question(query: str) -> str:
    """`query` without its leading question frame; the query itself when nothing would be left."""
    rest = _FRAME.sub("", query, count=1).strip()
    return rest if any(ch.isalnum() for ch in rest) else query.strip()
