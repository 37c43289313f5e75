"""Per-city rules for a lost card, read from regions.yml, found by Chinese or English name.

>>> lookup("北京市").key
'beijing'
>>> lookup("Xi'an").temporary_report_days
7
>>> lookup("Atlantis") is None
True
>>> resolve("Atlantis").key
'default'
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).with_name("regions.yml")
DEFAULT_KEY = "default"


@dataclass(frozen=True)
class Region:
    key: str
    name_en: str
    name_zh: str
    temporary_report_days: int
    fee_yuan: int
    processing_days_min: int
    processing_days_max: int
    hotline: str
    written_report_en: str
    written_report_zh: str
    bank_en: str
    bank_zh: str
    aliases: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        """False for the national default: the city has no rules of its own here."""
        return self.key != DEFAULT_KEY

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Region:
        """A region as the card service API states it (`as_dict`'s shape)."""
        names = [name for name in cls.__dataclass_fields__ if name != "aliases"]
        return cls(**{name: data[name] for name in names})

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("aliases")
        data["known"] = self.known
        return data


def normalise(name: str) -> str:
    """Case, spaces, apostrophes, dashes and a trailing 市 / "city" do not matter.

    >>> normalise(" Xi'an City ")
    'xian'
    >>> normalise("西安市")
    '西安'
    """
    text = name.strip().casefold()
    for suffix in ("市", " city", "city"):
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    return "".join(ch for ch in text if ch.isalnum())


@functools.lru_cache(maxsize=1)
def _load(path: Path = DATA) -> tuple[dict[str, Region], dict[str, str]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    regions: dict[str, Region] = {}
    names: dict[str, str] = {}
    for key, entry in raw.items():
        days = entry["processing_days"]
        region = Region(
            key=key,
            name_en=entry["name_en"],
            name_zh=entry["name_zh"],
            temporary_report_days=int(entry["temporary_report_days"]),
            fee_yuan=int(entry["fee_yuan"]),
            processing_days_min=int(days["min"]),
            processing_days_max=int(days["max"]),
            hotline=str(entry["hotline"]),
            written_report_en=entry["written_report_en"],
            written_report_zh=entry["written_report_zh"],
            bank_en=entry["bank_en"],
            bank_zh=entry["bank_zh"],
            aliases=tuple(entry.get("aliases") or ()),
        )
        regions[key] = region
        for name in (key, region.name_en, region.name_zh, *region.aliases):
            names[normalise(name)] = key
    if DEFAULT_KEY not in regions:
        raise ValueError(f"{path} has no '{DEFAULT_KEY}' entry")
    return regions, names


def all_regions() -> dict[str, Region]:
    return dict(_load()[0])


def known_cities() -> list[Region]:
    return [region for region in _load()[0].values() if region.known]


def default() -> Region:
    return _load()[0][DEFAULT_KEY]


def lookup(name: str) -> Region | None:
    """The region a person's city name means, or None when we have no entry for it."""
    regions, names = _load()
    key = names.get(normalise(name or ""))
    return regions[key] if key else None


def resolve(name: str) -> Region:
    """The city's rules, else the national default."""
    return lookup(name) or default()


def registered_in(id_number: str) -> Region | None:
    """The known city a child's ID number was registered in: a likely place of the card.

    >>> registered_in("310101201203150023").name_en
    'Shanghai'
    >>> registered_in("320102201203150020") is None
    True
    """
    from bot.rules.identity import registered_city

    city = registered_city(id_number)
    return lookup(city) if city else None


def mentioned_in(text: str) -> Region | None:
    """The known city a sentence names, the longest name first ("在上海" names Shanghai).

    >>> mentioned_in("we live in Xi'an, near the station").key
    'xian'
    >>> mentioned_in("孩子在成都上学").name_zh
    '成都'
    >>> mentioned_in("no city here") is None
    True
    """
    regions, names = _load()
    flat = normalise(text or "")
    for name in sorted(names, key=len, reverse=True):
        # Short Latin names only as whole words: "xian" must not match inside other words.
        if len(name) >= 2 and name in flat and names[name] != DEFAULT_KEY:
            if name.isascii() and not re.search(rf"\b{re.escape(name)}\b",
                                                re.sub(r"['’\-]", "", text.casefold())):
                continue
            return regions[names[name]]
    return None
