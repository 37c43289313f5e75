"""Region rules as data: docs/domain.md's values, names in Chinese and English."""

from __future__ import annotations

import doctest

import pytest

from bot.rules import regions


def test_doctests() -> None:
    assert doctest.testmod(regions).failed == 0


@pytest.mark.parametrize("key, days", [("beijing", 10), ("shanghai", 5), ("chengdu", 7),
                                       ("xian", 7), ("default", 15)])
def test_validity_days_of_domain_md(key: str, days: int) -> None:
    assert regions.all_regions()[key].temporary_report_days == days


def test_the_eight_cities_and_a_default_are_there() -> None:
    keys = {region.key for region in regions.known_cities()}
    assert keys == {"beijing", "shanghai", "chengdu", "xian", "guangzhou", "shenzhen",
                    "hangzhou", "wuhan"}
    assert not regions.default().known


def test_every_region_is_complete() -> None:
    for region in regions.all_regions().values():
        assert region.hotline == "12333"
        assert region.fee_yuan in (20, 25)
        assert 0 <= region.processing_days_min <= region.processing_days_max
        for text in (region.name_zh, region.written_report_zh, region.bank_zh,
                     region.name_en, region.written_report_en, region.bank_en):
            assert text.strip()


@pytest.mark.parametrize("name", ["北京", "北京市", "beijing", "Beijing", " BEIJING ",
                                  "Beijing City", "peking"])
def test_beijing_by_any_name(name: str) -> None:
    found = regions.lookup(name)
    assert found is not None and found.key == "beijing"


@pytest.mark.parametrize("name", ["Xi'an", "xian", "XI'AN", "Xi An", "西安", "西安市", "xi-an"])
def test_xian_by_any_name(name: str) -> None:
    found = regions.lookup(name)
    assert found is not None and found.key == "xian"


def test_every_chinese_and_english_name_finds_its_region() -> None:
    for region in regions.all_regions().values():
        for name in (region.name_zh, region.name_zh + "市", region.name_en.upper(),
                     region.key):
            assert regions.lookup(name) == region


@pytest.mark.parametrize("name", ["Atlantis", "", "市", "南京"])
def test_unknown_is_none_and_resolves_to_default(name: str) -> None:
    assert regions.lookup(name) is None
    assert regions.resolve(name).key == "default"


def test_as_dict_has_known_and_no_aliases() -> None:
    data = regions.resolve("上海").as_dict()
    assert data["known"] is True and "aliases" not in data and data["key"] == "shanghai"
