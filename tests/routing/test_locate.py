"""Place recognition against the shipped catalogue and against rows a caller passes in."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import Place, locate
from routing.locate import Gazetteer

DATA = Path(__file__).resolve().parents[2] / "kb" / "data"


def _csv(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


DISTRICTS = _csv("districts.csv")
CLUSTERS = _csv("clusters.csv")


def _pinyin(row: dict[str, str]) -> str:
    """The catalogue codes of districts are their pinyin: yubei, nanan, zhongxian."""
    return row["code"]


def _assert_found(text: str, code: str, kind: str = "district") -> Place:
    place = locate(text)
    assert place is not None, text
    assert (place.code, place.kind) == (code, kind), (text, place)
    assert text[place.span[0] : place.span[1]] == place.matched
    assert 0.0 < place.score <= 1.0
    return place


def test_catalogue_has_all_38_divisions() -> None:
    assert len(DISTRICTS) == 38


@pytest.mark.parametrize("row", DISTRICTS, ids=[r["code"] for r in DISTRICTS])
def test_every_district_by_full_name(row: dict[str, str]) -> None:
    place = _assert_found(f"我们公司在{row['name_zh']}，想咨询一下", row["code"])
    assert place.matched == row["name_zh"]
    assert place.score == 1.0
    assert place.district_code == row["code"]
    assert place.span == (5, 5 + len(row["name_zh"]))


@pytest.mark.parametrize("row", DISTRICTS, ids=[r["code"] for r in DISTRICTS])
def test_every_district_by_short_name(row: dict[str, str]) -> None:
    place = _assert_found(f"我们在{row['short_zh']}开了个厂", row["code"])
    assert place.matched == row["short_zh"]


@pytest.mark.parametrize("row", DISTRICTS, ids=[r["code"] for r in DISTRICTS])
def test_every_district_by_pinyin(row: dict[str, str]) -> None:
    core = _pinyin(row)
    _assert_found(f"our factory is in {core}", row["code"])
    _assert_found(f"our factory is in {core.capitalize()}, need help", row["code"])


@pytest.mark.parametrize("row", DISTRICTS, ids=[r["code"] for r in DISTRICTS])
def test_every_district_by_english_name(row: dict[str, str]) -> None:
    place = _assert_found(f"We are located in {row['name_en']}.", row["code"])
    assert place.matched == row["name_en"]
    assert place.score == 1.0


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("sha ping ba", "shapingba"),
        ("jiu long po qu", "jiulongpo"),
        ("yubei qu", "yubei"),
        ("YUBEI", "yubei"),
        ("ＹＵＢＥＩ", "yubei"),
        ("我在渝北區", "yubei"),
        ("重慶市沙坪壩區", "shapingba"),
        ("Zhong County", "zhongxian"),
        ("zhongxian", "zhongxian"),
    ],
)
def test_spelling_variants(text: str, code: str) -> None:
    _assert_found(text, code)


@pytest.mark.parametrize(
    ("row", "alias"),
    [(row, alias) for row in CLUSTERS for alias in row["aliases_zh"].split("|") if len(alias) >= 3]
    + [(row, row["name_zh"]) for row in CLUSTERS],
    ids=lambda value: value if isinstance(value, str) else value["code"],
)
def test_every_cluster_by_chinese_alias(row: dict[str, str], alias: str) -> None:
    place = _assert_found(f"公司在{alias}里面", row["code"], "cluster")
    assert place.district_code == row["district_code"]
    assert place.name_zh == row["name_zh"]


@pytest.mark.parametrize(
    ("row", "alias"),
    [(row, alias) for row in CLUSTERS for alias in row["aliases_zh"].split("|") if len(alias) == 2],
    ids=lambda value: value if isinstance(value, str) else value["code"],
)
def test_two_character_cluster_alias_needs_place_context(row: dict[str, str], alias: str) -> None:
    _assert_found(f"我们在{alias}", row["code"], "cluster")
    _assert_found(f"{alias}园区的企业", row["code"], "cluster")


@pytest.mark.parametrize(
    ("row", "alias"),
    [(row, alias) for row in CLUSTERS for alias in row["aliases_en"].split("|")],
    ids=lambda value: value if isinstance(value, str) else value["code"],
)
def test_every_cluster_by_english_alias(row: dict[str, str], alias: str) -> None:
    _assert_found(f"our plant is in {alias}, thanks", row["code"], "cluster")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("沙平坝", "shapingba"),  # homophone
        ("鱼北区有什么政策", "yubei"),  # homophone of the full name
        ("我们在鱼北", "yubei"),  # homophone of a short name after 在
        ("九龙波区", "jiulongpo"),  # near-homophone (p heard as b)
        ("九龙波", "jiulongpo"),
        ("大度口", "dadukou"),
        ("shapinba", "shapingba"),  # one letter missing
        ("jiulongpuo", "jiulongpo"),
        ("yongchaun district", "yongchuan"),  # transposition, with the suffix
        ("江津去", "jiangjin"),
    ],
)
def test_misrecognised_forms(text: str, code: str) -> None:
    place = _assert_found(text, code)
    assert place.score < 1.0


def test_exact_names_score_above_fuzzy_hits() -> None:
    exact = locate("沙坪坝区")
    heard = locate("沙平坝区")
    assert exact is not None and heard is not None
    assert exact.code == heard.code == "shapingba"
    assert exact.score > heard.score


def test_longest_and_best_name_wins() -> None:
    _assert_found("璧山高新区", "bishan-hitech", "cluster")
    _assert_found("重庆高新区", "cq-hitech", "cluster")
    _assert_found("九龙工业园区", "jiulong-park", "cluster")
    _assert_found("九龙坡区", "jiulongpo")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "想申请贷款扩大生产",
        "我们想找律师咨询合同纠纷",
        "川渝中小企业合作交流会",
        "祝您生意兴隆繁荣昌盛",
        "祝老人家健康长寿",
        "工厂在长江北岸",
        "我们有个茶园想卖茶叶",
        "我们预备申请贷款",
        "河南岸边有个厂",
        "忠心耿耿",
        "大足球场",
        "I need a business loan for a banana farm",
        "they ban an export of our goods",
        "the fueling station needs a permit",
        "zhong xiao qi ye dai kuan",
        "we are a young company looking for customers",
        "😀🎉 \x00\x07",
        "business center for SMEs",
    ],
)
def test_no_place_in_sentences_without_one(text: str) -> None:
    assert locate(text) is None


def test_place_is_json_ready() -> None:
    place = locate("我在渝北区")
    assert place is not None
    data = place.to_dict()
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert data == {
        "kind": "district",
        "code": "yubei",
        "name_zh": "渝北区",
        "name_en": "Yubei District",
        "district_code": "yubei",
        "span": [2, 5],
        "matched": "渝北区",
        "score": 1.0,
    }


def test_span_points_into_the_original_text_after_normalisation() -> None:
    text = "嗯　我们\x07公司在 沙坪壩 那边"
    place = locate(text)
    assert place is not None and place.code == "shapingba"
    assert text[place.span[0] : place.span[1]] == "沙坪壩" == place.matched


def test_caller_supplied_rows() -> None:
    gazetteer = Gazetteer.from_rows(
        [{"code": "d1", "name_zh": "测试区", "name_en": "Ceshi District", "short_zh": "测试"}],
        [
            {
                "code": "c1",
                "name_zh": "示范产业园",
                "name_en": "Demo Park",
                "aliases_zh": "示范园|样板工业园",
                "aliases_en": "Demo Park|Sample Zone",
                "district_code": "d1",
            }
        ],
    )
    place = locate("我们在测试区", gazetteer=gazetteer)
    assert place is not None and place.code == "d1"
    place = gazetteer.locate("在样板工业园里")
    assert place is not None and (place.code, place.kind, place.district_code) == (
        "c1",
        "cluster",
        "d1",
    )
    assert gazetteer.locate("ceshi district") is not None
    assert gazetteer.locate("我在渝北区") is None
    assert locate("我在渝北区") is not None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_any_text_gives_a_valid_place_or_none(text: str) -> None:
    place = locate(text)
    if place is not None:
        assert 0.0 < place.score <= 1.0
        assert 0 <= place.span[0] < place.span[1] <= len(text)
        assert text[place.span[0] : place.span[1]] == place.matched
        assert place.kind in ("district", "cluster")
