"""The QA prompt a generator receives around a packed context: a text file with `{context}` and `{question}`.

The shipped German template (retrieval/prompts/qa_de.txt) tells the model to answer only from the numbered
sources, to cite them as [1], [2], and to say "Das steht nicht in den Unterlagen." when they do not hold the
answer. The setting `context_prompt` names a replacement file; it must hold both placeholders once or more.
Placeholders are replaced literally (no str.format), so braces in the sources or the question stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest.errors import ConfigError
from retrieval.schema import RetrievalError

DEFAULT_PROMPT = Path(__file__).parent / "prompts" / "qa_de.txt"
PLACEHOLDERS = ("{context}", "{question}")


class PromptError(ConfigError, RetrievalError):
    """The configured prompt template cannot be read or lacks a placeholder."""


@dataclass(frozen=True)
class PromptTemplate:
    text: str
    name: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> PromptTemplate:
        """The template at `path` (setting `context_prompt`), or the shipped German one."""
        file = Path(path).expanduser() if path else DEFAULT_PROMPT
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"context_prompt: {file}: cannot read the prompt template ({exc})") from exc
        missing = [p for p in PLACEHOLDERS if p not in text]
        if missing:
            raise PromptError(f"context_prompt: {file}: the template lacks the placeholder(s) {', '.join(missing)} "
                              "(it needs {context} where the sources go and {question} for the question)")
        return cls(text, "qa_de" if file == DEFAULT_PROMPT else str(file))

    def fill(self, context: str, question: str) -> str:
        """The prompt with the sources and the question put in (in one pass: a question holding the text
        '{context}' is not expanded)."""
        parts = self.text.split("{context}")
        return context.join(part.replace("{question}", question) for part in parts)
