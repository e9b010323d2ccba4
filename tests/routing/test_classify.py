"""The classifier on real sentences, named hard cases and arbitrary input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pypinyin import Style, lazy_pinyin

from routing import Classification, classify
from routing.classify import CUE, get_matcher, load_lexicon
from routing.text import expand_braces, is_han, term_pinyin_toned

REPO = Path(__file__).resolve().parents[2]
DEV_SET = REPO.parent / "shared" / "data" / "classify_dev.tsv"
EXTRA_SET = Path(__file__).resolve().parent / "data" / "classify_extra.tsv"
# Written in batches, each before a round of lexicon changes, to check they generalise.
EXTRA2_SET = Path(__file__).resolve().parent / "data" / "classify_extra2.tsv"
# Written before the round that added expos, crowdfunding, approvals, skilled trades,
# succession, safety assessments, platform onboarding and counterfeits (first run: 49/72).
EXTRA3_SET = Path(__file__).resolve().parent / "data" / "classify_extra3.tsv"
CATEGORIES = (
    "information",
    "financing",
    "startup",
    "talent",
    "technology",
    "management",
    "market",
    "legal",
)


def _rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


def _accuracy(rows: list[list[str]]) -> tuple[float, list[str]]:
    labelled = [r for r in rows if r[0] in CATEGORIES]
    misses = [f"{r[0]}: {r[1]} -> {classify(r[1]).category}" for r in labelled]
    misses = [m for m, r in zip(misses, labelled, strict=True) if classify(r[1]).category != r[0]]
    return 1 - len(misses) / len(labelled), misses


def test_lexicon_has_the_catalogue_categories_in_keypad_order() -> None:
    catalogue = yaml.safe_load((REPO / "kb" / "data" / "categories.yaml").read_text("utf-8"))
    keys = [c["key"] for c in sorted(catalogue, key=lambda c: c["dtmf"])]
    assert tuple(load_lexicon()["categories"]) == tuple(keys) == CATEGORIES


def test_lexicon_is_broad_and_bilingual() -> None:
    for key, section in load_lexicon()["categories"].items():
        zh = sum(len(terms) for terms in section["zh"].values())
        en = sum(len(terms) for terms in section["en"].values())
        assert zh >= 120, (key, zh)
        assert en >= 80, (key, en)


def test_dev_set_accuracy_is_at_least_95_percent() -> None:
    rows = _rows(DEV_SET)
    assert len(rows) == 96
    accuracy, misses = _accuracy(rows)
    assert accuracy >= 0.95, misses


def test_extra_set_has_enough_rows_per_category() -> None:
    rows = _rows(EXTRA_SET)
    for key in CATEGORIES:
        assert sum(1 for r in rows if r[0] == key) >= 15, key


def test_extra_set_accuracy_and_complaints() -> None:
    rows = _rows(EXTRA_SET)
    accuracy, misses = _accuracy(rows)
    assert accuracy >= 0.95, misses
    wrong = [r[1] for r in rows if classify(r[1]).complaint != (r[2] == "1")]
    assert len(wrong) <= len(rows) * 0.02, wrong


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # recogniser homophones of the key words
        ("容资难找谁帮忙", "financing"),
        ("想找个律诗咨询一下", "legal"),
        ("员工陪训有什么课程", "talent"),
        ("著册公司要什么材料", "startup"),
        # overlapping vocabulary decided by meaning
        ("给销售团队安排培训", "talent"),
        ("融资租赁合同纠纷", "legal"),
        ("借款合同纠纷怎么打官司", "legal"),
        ("想申请创业担保贷款", "financing"),
        ("想参加跨境电商的培训班", "talent"),
        ("区里某个部门乱罚款，企业想维权", "legal"),
        # scripts, widths, fillers, no punctuation
        ("請問有沒有最新的產業政策通知", "information"),
        ("企業想申請貸款", "financing"),
        ("ＩＰＯ辅导找谁", "financing"),
        ("想找律师　咨询合同问题", "legal"),
        ("嗯那个就是我们想那个嗯注册一家公司", "startup"),
        ("我们厂就是那个缺工人能不能帮忙招人然后工资怎么定", "talent"),
        # mixed Chinese and English, English typos and SMS spellings
        ("想apply一个bank loan", "financing"),
        ("我们需要hire几个engineer", "talent"),
        ("合同dispute怎么办", "legal"),
        ("need finacing for new production line", "financing"),
        ("need a lawyr for a contract", "legal"),
        ("pls send info on latest tax incentives", "information"),
        ("how to open a small company", "startup"),
        ("we want to exibit at a trade fair", "market"),
    ],
)
def test_named_hard_cases(text: str, expected: str) -> None:
    result = classify(text)
    assert result.category == expected, result


def test_negation_removes_the_negated_need() -> None:
    result = classify("不需要贷款，是合同纠纷")
    assert result.category == "legal"
    assert result.alternatives[0][0] == "legal"
    assert dict(result.alternatives)["financing"] == 0.0


def test_negation_denies_only_the_next_thing_named() -> None:
    assert classify("有没有不要抵押的贷款产品").category == "financing"


def test_homophones_of_two_characters_need_the_same_tones() -> None:
    # 找人 (zhao3 ren2) is an ordinary word, not 招人 (zhao1 ren2) misheard.
    result = classify("企业经营出现困难想找人分析原因")
    assert result.category == "management", result
    assert dict(result.alternatives)["talent"] == 0.0
    # 钱了 (qian2) is not 欠了 (qian4).
    assert classify("公司账上没钱了，能借到钱吗").category == "financing"


def test_misspelling_ties_go_to_the_closer_prefix() -> None:
    result = classify("do we need a lawer to review this agreement")
    assert result.category == "legal", result
    assert "lawer" in result.evidence


def test_brace_alternatives_in_the_lexicon() -> None:
    assert expand_braces("{开|办}{个|}店") == ["开个店", "开店", "办个店", "办店"]
    assert classify("我辞职了想自己搞个小公司").category == "startup"
    assert classify("暑假想招一批临时工").category == "talent"


def test_neutral_question_forms_do_not_negate() -> None:
    assert classify("有没有贷款").category == "financing"
    assert classify("要不要做检测").category == "technology"


@pytest.mark.parametrize(
    "text",
    [
        "热线一直打不通",
        "你们服务态度太差了",
        "没人回电话",
        "上次推荐的机构乱收费",
        "說好的回訪一直沒有",
        "nobody called me back",
        "they overcharged me",
        "the hotline never answers",
        "your staff were rude to me",
    ],
)
def test_complaints_about_the_service(text: str) -> None:
    result = classify(text)
    assert result.complaint is True, result
    assert result.evidence, result


def test_complaint_keeps_a_clear_need() -> None:
    result = classify("申请贷款的事一个月了都没人回电话")
    assert result.complaint is True
    assert result.category == "financing"


def test_second_extra_set_accuracy_and_complaints() -> None:
    rows = _rows(EXTRA2_SET)
    assert len(rows) >= 160
    accuracy, misses = _accuracy(rows)
    assert accuracy >= 0.95, misses
    wrong = [r[1] for r in rows if classify(r[1]).complaint != (r[2] == "1")]
    assert len(wrong) <= len(rows) * 0.02, wrong


def test_third_extra_set_accuracy_and_complaints() -> None:
    rows = _rows(EXTRA3_SET)
    assert len(rows) == 80
    accuracy, misses = _accuracy(rows)
    assert accuracy >= 0.95, misses
    wrong = [r[1] for r in rows if classify(r[1]).complaint != (r[2] == "1")]
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # exhibitions and fairs: generic "<trade>展", named expos in Chinese and English, stalls
        ("明年想组团去科隆的五金展", "market"),
        ("能不能帮我们报名中国国际工业博览会", "market"),
        ("想在汉诺威工业博览会上租个展位", "market"),
        ("想参加家居展", "market"),
        ("how do we get a booth at Hannover Messe", "market"),
        ("any subsidies for exhibiting at Gulfood in Dubai", "market"),
        ("想在年货节上摆个摊卖腊肉", "market"),
        # platform onboarding (入驻, 开店, 上架 on a named platform) and big firms' vendor lists
        ("我们的水果想上美团优选 怎么入驻", "market"),
        ("抖音开店需要什么资质", "market"),
        ("how do I open a shop on Taobao", "market"),
        ("how do we get on the approved vendor list of a state-owned group", "market"),
        ("想进入一汽的配套体系当二级供应商", "market"),
        # crowdfunding is financing, whatever product it funds
        ("想在京东众筹上发起一个项目", "financing"),
        ("we plan a Kickstarter campaign for our new lamp", "financing"),
        ("looking at crowdfunding for a consumer gadget", "financing"),
        # approvals and licences for a new business, franchise shops, articles of association
        ("想办个托儿所 要去哪里审批", "startup"),
        ("opening a private kindergarten, what approvals are needed", "startup"),
        ("打算加盟一家炸鸡店 开店前要办啥", "startup"),
        ("公司还没注册 章程范本哪里有", "startup"),
        # hiring skilled trades, and training whatever its subject
        ("我们急需三个氩弧焊工", "talent"),
        ("饭店想找个川菜大厨", "talent"),
        ("想找个会做面点的师傅", "talent"),
        ("we need a licensed electrician and two plumbers for our workshop", "talent"),
        ("想派店员去学短视频运营", "talent"),
        # succession and governance
        ("我年纪大了 想把厂子交给女儿 怎么交班", "management"),
        ("家族企业里亲戚太多 想建立现代治理结构", "management"),
        ("we are planning succession for a family-owned factory", "management"),
        # product safety assessments and certifications by industry
        ("婴儿奶瓶要做食品接触材料检测", "technology"),
        ("出口的充电宝要做UN38.3和MSDS", "technology"),
        ("我们的儿童玩具要出口欧盟 要做哪些安全认证", "technology"),
        ("our cosmetics need a safety assessment before launch", "technology"),
        ("面膜做功效评价找哪家机构", "technology"),
        # counterfeits, poaching, broken agreements: a dispute, wherever it happens
        ("电商平台上有人卖我们的高仿货", "legal"),
        ("代理商违反排他协议 又代理了竞品", "legal"),
        ("a competitor is selling knock-offs of our bags online", "legal"),
        ("前合伙人撬走了我们的大客户", "legal"),
        ("前员工把我们的客户名单带到了竞争对手那里", "legal"),
        # a policy question stays information even when the policy is about hiring
        ("想了解一下今年企业招工方面有啥扶持政策", "information"),
    ],
)
def test_vocabulary_classes(text: str, expected: str) -> None:
    result = classify(text)
    assert result.category == expected, result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 展 alone is an exhibition, but not inside 进展, 开展, 展期
        ("展", "market"),
        ("案子有什么进展吗", None),
        ("想开展一次员工培训", "talent"),
        ("贷款能不能展期", "financing"),
        # a platform is market, an incubator you move into is startup
        ("孵化器怎么入驻", "startup"),
        # 第二代产品 is a product generation, not succession
        ("第二代产品要做检测", "technology"),
        # "stalled" is not a market stall
        ("the project stalled because of funding", "financing"),
    ],
)
def test_new_short_terms_stay_in_their_lane(text: str, expected: str | None) -> None:
    assert classify(text).category == expected


@pytest.mark.parametrize(
    "text",
    [
        # having to tell the story again
        "每次打热线都得从头说一遍情况",
        "I keep having to repeat my story to a new operator every time",
        # wrong information from the hotline
        "你们给的截止时间是错的 我们错过了申报",
        "your staff gave us the wrong deadline",
        # a referred institution's number is dead or wrong
        "你们转介的担保公司电话是空号",
        "the number you gave me for the lab is not in service",
        "转介的机构电话一直是停机状态",
        "the phone number on your referral is wrong",
        # a referred adviser who never came, case closed anyway
        "推荐的律师一次都没联系过我们 就说已经结案了",
        "你们派的顾问根本没来过",
        "说好派专家来诊断 结果根本没来",
        "打了三次电话 每次都要我重新讲一遍",
    ],
)
def test_complaint_classes_about_referrals_and_information(text: str) -> None:
    assert classify(text).complaint is True, classify(text)


@pytest.mark.parametrize(
    "text",
    [
        "设备停机了怎么维修",
        "设备处于停机状态怎么办",
        "我们还没联系过律师 想找一个",
        "想了解一下怎么填申报材料",
        # telling one's story, or correcting one's own wrong data, is no grumble
        "我从头说一下情况 我们想贷款",
        "营业执照上的地址是错的 怎么变更",
        "申报信息有误怎么修改",
        "请再说一遍",
        "we submitted wrong information on our application, how to fix it",
    ],
)
def test_new_complaint_words_need_a_grumble(text: str) -> None:
    assert classify(text).complaint is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # words one letter away from a new lexicon word are not spell-corrected into it
        ("I want to open a small bakery, what permits do I need", "startup"),
        ("is this acceptable for a bank loan", "financing"),
        ("we sell exclusively online and want more buyers", "market"),
    ],
)
def test_near_words_are_not_corrected_into_new_terms(text: str, expected: str) -> None:
    result = classify(text)
    assert result.category == expected, result
    assert result.complaint is False


def test_cue_phrases_never_hide_a_term_inside_them() -> None:
    # A longer match keeps only context entries of the matches inside it, so a phrase that
    # is only a cue would silently drop a category term it contains ("what certifications").
    matcher = get_matcher()
    for index in (matcher.zh_index, matcher.en_index):
        for key, entries in index.items():
            if any(e.kind != CUE for e in entries) or len(key) < 2:
                continue
            inner = [
                key[i:j]
                for i in range(len(key))
                for j in range(i + 1, len(key) + 1)
                if (i, j) != (0, len(key))
                and any(e.kind == "category" for e in index.get(key[i:j], ()))
            ]
            assert not inner, (key, inner)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("电器出口美国要做UL认证吗", "technology"),
        ("what certifications do we need to export toys to the EU", "technology"),
        ("离职员工开了同样的公司 抢我们的客户", "legal"),
        ("distributor broke our exclusive agreement and sells to our customers directly", "legal"),
        # having an exclusive distributor is no dispute
        ("we have an exclusive agreement with a distributor and want more buyers", "market"),
        ("车间急缺两个会开叉车的", "talent"),
    ],
)
def test_heads_of_mixed_requests(text: str, expected: str) -> None:
    assert classify(text).category == expected, classify(text)


def test_segmented_pinyin_equals_whole_term_pinyin() -> None:
    # term_pinyin_toned reads word by word with a cache; it must read as pypinyin does.
    terms = [t for t in get_matcher().zh_index if len(t) >= 2][:3000]
    terms += ["长期招几个熟练的数控车工", "银行行长", "东西南北", "重庆重新开始", "朝阳区的朝气"]
    for term in terms:
        whole = lazy_pinyin(term, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")
        expected = tuple(s.replace("ü", "v") for s in whole) if len(whole) == len(term) else None
        if not all(is_han(c) for c in term):
            expected = None
        assert term_pinyin_toned(term) == expected, term


@pytest.mark.parametrize(
    "text",
    [
        # promised free, then charged
        "你们推荐的咨询公司说好是免费的 结果上门就要收服务费",
        "the agency you recommended said it was free and then billed us",
        # unreachable: busy tone, on hold, hung up
        "你们介绍的会计事务所我打了五次电话都是忙音",
        "your hotline kept me on hold and then hung up on me",
        "你们那个 hotline 一直 busy signal",
        # kicked from office to office (踢皮球)
        "被你们转了三个部门 都说不归他们管",
        "I got bounced between three departments and nobody could answer",
        # waited, nothing happened; a referral that drags on
        "热线登记的需求都两个星期了还没人联系",
        "你們轉介的律所一直拖 兩個月都沒下文",
        # rude, impatient, perfunctory
        "接线员态度好差 直接把电话挂了",
        "the trainer you sent was impatient and clueless",
        "你们的回访就是走过场",
    ],
)
def test_complaint_classes(text: str) -> None:
    result = classify(text)
    assert result.complaint is True, result


def test_a_mild_grumble_is_a_complaint_only_when_aimed_at_the_hotline() -> None:
    for grumble in ("一直拖", "审批还是没"):
        assert classify(grumble).complaint is False
        assert classify("你们" + grumble).complaint is True


@pytest.mark.parametrize(
    "text",
    [
        "你们能帮忙代办营业执照吗 收费吗",
        "担保公司收费标准是多少",
        "贷款审批要等多久",
        "can you tell me if the training is free",
    ],
)
def test_questions_about_fees_and_delays_are_not_complaints(text: str) -> None:
    result = classify(text)
    assert result.complaint is False, result
    assert result.category is not None, result


@pytest.mark.parametrize(
    "text",
    [
        "税务局的人办事拖拉还乱收费我们要投诉",
        "街道办不给我们办手续还刁难",
        "城管来店里乱罚款",
        "a government office is fining us unfairly, how do we protect our rights",
        "民营企业维权投诉中心怎么联系",
        # an office's own staff or window is that office, not the hotline
        "税务局的工作人员态度很差 故意刁难我们",
        "社保局的窗口让我们来回跑了五趟",
        "供应商电话一直不接 货款也不退",
        "the tax office passed us around for weeks",
    ],
)
def test_grievance_against_an_office_is_legal_not_a_complaint(text: str) -> None:
    result = classify(text)
    assert result.complaint is False, result
    assert result.category == "legal", result


@pytest.mark.parametrize(
    "text",
    ["想贷款", "想找律师", "要招人", "想参加展会", "I need a business loan", "培训"],
)
def test_plain_needs_are_not_complaints(text: str) -> None:
    assert classify(text).complaint is False


def test_language() -> None:
    assert classify("想贷款").language == "zh"
    assert classify("I need a loan").language == "en"
    assert classify("想apply一个bank loan").language == "zh"
    assert classify("I am in 渝北 and need a loan").language == "en"


def test_evidence_quotes_the_callers_own_words() -> None:
    result = classify("企業想申請貸款")
    assert result.evidence == ("貸款",)
    result = classify("容资难")
    assert result.evidence == ("容资难",)


def test_result_is_json_ready() -> None:
    data = classify("想找律师咨询合同问题").to_dict()
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert data["category"] == "legal"
    assert [pair[0] for pair in data["alternatives"]][0] == "legal"
    assert set(data) == {
        "category",
        "confidence",
        "alternatives",
        "evidence",
        "complaint",
        "language",
    }


def test_threshold_decides_when_to_ask_again() -> None:
    threshold = get_matcher().threshold
    for text in ["想贷款", "有点问题", "产品", "factory automation consulting", "", "你好"]:
        result = classify(text)
        assert (result.category is None) == (result.confidence < threshold), result
    assert classify("产品").category is None
    assert classify("想贷款").confidence > 0.7


def test_empty_and_noise_give_no_category() -> None:
    for text in ["", "   ", "\x00\x01\x02", "😀🎉🙏", "。。。！！！", "1234567890", "嗯嗯嗯那个"]:
        result = classify(text)
        assert result.category is None
        assert result.confidence < 0.1
        assert result.complaint is False


def test_ten_thousand_characters_of_noise_is_bounded() -> None:
    noise = ("😀\x07#@%\u200b¥\ufeff" * 2000)[:10_000]
    classify(noise)
    started = time.perf_counter()
    result = classify(noise)
    assert time.perf_counter() - started < 0.1
    assert result.category is None


def test_long_text_with_a_need_at_its_start() -> None:
    text = "我们想申请贷款" + "啊" * 9_990
    assert classify(text).category == "financing"


def _check_invariants(result: Classification) -> None:
    assert 0.0 <= result.confidence <= 1.0
    keys = [key for key, _ in result.alternatives]
    assert sorted(keys) == sorted(CATEGORIES)
    scores = [score for _, score in result.alternatives]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert result.confidence == scores[0]
    assert result.category in (None, keys[0])
    assert result.language in ("zh", "en")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_keeps_the_invariants(text: str) -> None:
    _check_invariants(classify(text))


def _to_length(seed: str, length: int) -> str:
    return (seed * (length // max(len(seed), 1) + 1))[:length] if seed else ""


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200), st.integers(min_value=5_000, max_value=10_000))
def test_long_random_text_keeps_the_invariants(seed: str, length: int) -> None:
    _check_invariants(classify(_to_length(seed, length)))


NOISE = st.text(
    alphabet=st.one_of(
        st.characters(categories=["Cc", "Cf", "Zs", "Nd", "Po", "Ps", "Pe", "Sm", "Sc", "So"]),
        st.sampled_from("😀🎉🙏👍🔥💯❤️\u200b\ufeff"),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(NOISE, st.integers(min_value=0, max_value=10_000))
def test_noise_gives_no_category(seed: str, length: int) -> None:
    result = classify(_to_length(seed, length))
    _check_invariants(result)
    assert result.category is None
    assert result.confidence == 0.0
