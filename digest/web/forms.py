"""Reading the sign-up and preferences forms: cleaned values, or messages in bokmål keyed by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from digest.config import Settings
from digest.subscribers import clean_name, normalise_address


@dataclass
class Choices:
    name: str = ""
    municipality: str = ""
    digests: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def read_choices(settings: Settings, *, name: str, municipality: str, digests: list[str], topics: list[str],
                 allow_no_digest: bool = False) -> Choices:
    choices = Choices()
    try:
        choices.name = clean_name(name)[:200]
    except ValueError:
        choices.errors["navn"] = "Navnet kan ikke ha linjeskift eller kontrolltegn."
    municipality = " ".join(municipality.split())
    if settings.municipalities and municipality and municipality not in settings.municipalities:
        choices.errors["kommune"] = "Velg en kommune fra listen."
    elif len(municipality) > 100:
        choices.errors["kommune"] = "Kommunenavnet kan ikke være lengre enn 100 tegn."
    choices.municipality = municipality
    unknown = [d for d in digests if d not in settings.digests]
    choices.digests = sorted({d for d in digests if d in settings.digests})
    if unknown:
        choices.errors["nyhetsbrev"] = "Velg bare nyhetsbrev fra listen."
    elif not choices.digests and not allow_no_digest:
        choices.errors["nyhetsbrev"] = "Velg minst ett nyhetsbrev."
    choices.topics = sorted({t for t in topics if t in settings.topics})
    return choices


def read_address(address: str) -> tuple[str, str | None]:
    try:
        return normalise_address(address), None
    except ValueError:
        return address.strip(), "Skriv inn en gyldig e-postadresse, for eksempel navn@eksempel.no."


def form_lists(settings: Settings) -> dict[str, Any]:
    """What the shared form fields list: digests, municipalities, topics."""
    return {
        "digests": list(settings.digests.items()),
        "municipalities": settings.municipalities,
        "topics": list(settings.topics.items()),
    }
