"""Generate the demo service catalogue: ``platforms.csv`` and ``institutions.csv``.

The geography (``districts.csv``, ``clusters.csv``) is real; every platform and institution
written here is fictional demo data, marked ``（演示）`` / ``(demo)`` in its name and
``demo=true``. The output is deterministic (fixed seed, standard library only)::

    python kb/data/generate_demo_catalogue.py
"""

from __future__ import annotations

import csv
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SEED = 20240601

CATEGORY_KEYS: tuple[str, ...] = (
    "information",
    "financing",
    "startup",
    "talent",
    "technology",
    "management",
    "market",
    "legal",
)
CATEGORY_NAMES: dict[str, tuple[str, str]] = {
    "information": ("信息服务", "information"),
    "financing": ("投融资服务", "investment and financing"),
    "startup": ("创业服务", "startup"),
    "talent": ("人才与培训服务", "talent and training"),
    "technology": ("技术创新和质量服务", "technology innovation and quality"),
    "management": ("管理咨询服务", "management consulting"),
    "market": ("市场开拓服务", "market development"),
    "legal": ("法律服务", "legal"),
}

COLUMNS: tuple[str, ...] = (
    "code",
    "name_zh",
    "name_en",
    "tier",
    "district_code",
    "cluster_code",
    "categories",
    "capacity",
    "hours",
    "phone",
    "address_zh",
    "address_en",
    "lat",
    "lon",
    "recognition",
    "active",
    "content_zh",
    "content_en",
    "process_zh",
    "process_en",
    "standards_zh",
    "standards_en",
    "fees_zh",
    "fees_en",
    "hours_zh",
    "hours_en",
    "demo",
)

Row = dict[str, str]
Text = tuple[str, str]

# --------------------------------------------------------------------------- geography

# Chongqing's planning regions ("一区两群"): central urban area, new urban districts of the
# metropolitan area, the north-east (Three Gorges reservoir) and south-east (Wuling Mountains).
# fmt: off
REGIONS: dict[str, tuple[str, ...]] = {
    "core": (
        "yuzhong", "dadukou", "jiangbei", "shapingba", "jiulongpo",
        "nanan", "beibei", "yubei", "banan",
    ),
    "west": (
        "fuling", "changshou", "jiangjin", "hechuan", "yongchuan", "nanchuan",
        "qijiang", "dazu", "bishan", "tongliang", "tongnan", "rongchang",
    ),
    "northeast": (
        "wanzhou", "kaizhou", "liangping", "chengkou", "fengdu", "dianjiang",
        "zhongxian", "yunyang", "fengjie", "wushan", "wuxi",
    ),
    "southeast": ("qianjiang", "wulong", "shizhu", "xiushan", "youyang", "pengshui"),
}

# How many demo institutions each district gets (more in the main urban area).
INSTITUTION_COUNTS: dict[str, int] = {
    "yuzhong": 9, "dadukou": 4, "jiangbei": 9, "shapingba": 9, "jiulongpo": 9,
    "nanan": 7, "beibei": 5, "yubei": 11, "banan": 5,
    "fuling": 5, "changshou": 4, "jiangjin": 4, "hechuan": 4, "yongchuan": 5,
    "nanchuan": 3, "qijiang": 3, "dazu": 3, "bishan": 4, "tongliang": 3,
    "tongnan": 2, "rongchang": 3,
    "wanzhou": 7, "kaizhou": 3, "liangping": 3, "chengkou": 1, "fengdu": 2,
    "dianjiang": 2, "zhongxian": 2, "yunyang": 2, "fengjie": 2, "wushan": 1, "wuxi": 1,
    "qianjiang": 5, "wulong": 2, "shizhu": 2, "xiushan": 2, "youyang": 2, "pengshui": 2,
}

# Jitter radius (km) around a district's seat; small for the compact central districts.
JITTER_KM: dict[str, float] = {
    "yuzhong": 0.8, "nanan": 1.2, "jiulongpo": 1.5, "dadukou": 1.5,
    "jiangbei": 2.0, "shapingba": 2.0,
}
DEFAULT_JITTER_KM = 3.0
CLUSTER_JITTER_KM = 1.2

# Real street names near each seat (zh, en); other districts use generic street names.
ROADS: dict[str, tuple[Text, ...]] = {
    "yuzhong": (
        ("民族路", "Minzu Road"), ("中山三路", "Zhongshan 3rd Road"),
        ("民生路", "Minsheng Road"), ("邹容路", "Zourong Road"),
        ("长江一路", "Changjiang 1st Road"), ("大坪正街", "Daping Main Street"),
    ),
    "jiangbei": (
        ("建新北路", "Jianxin North Road"), ("建新东路", "Jianxin East Road"),
        ("北滨一路", "Beibin 1st Road"), ("洋河一路", "Yanghe 1st Road"),
    ),
    "shapingba": (
        ("小龙坎正街", "Xiaolongkan Main Street"), ("汉渝路", "Hanyu Road"),
        ("天星桥正街", "Tianxingqiao Main Street"), ("渝碚路", "Yubei Road"),
    ),
    "jiulongpo": (
        ("杨家坪正街", "Yangjiaping Main Street"), ("谢家湾正街", "Xiejiawan Main Street"),
        ("石杨路", "Shiyang Road"), ("科园一路", "Keyuan 1st Road"),
    ),
    "nanan": (
        ("南坪西路", "Nanping West Road"), ("江南大道", "Jiangnan Avenue"),
        ("南城大道", "Nancheng Avenue"), ("南滨路", "Nanbin Road"),
    ),
    "dadukou": (
        ("松青路", "Songqing Road"), ("文体路", "Wenti Road"), ("春晖路", "Chunhui Road"),
    ),
    "beibei": (
        ("天生路", "Tiansheng Road"), ("云华路", "Yunhua Road"), ("碚峡路", "Beixia Road"),
    ),
    "yubei": (
        ("双龙大道", "Shuanglong Avenue"), ("新南路", "Xinnan Road"),
        ("龙山路", "Longshan Road"), ("双湖支路", "Shuanghu Branch Road"),
    ),
    "banan": (("龙洲大道", "Longzhou Avenue"), ("渝南大道", "Yunan Avenue")),
    "wanzhou": (
        ("北山大道", "Beishan Avenue"), ("白岩路", "Baiyan Road"), ("太白路", "Taibai Road"),
    ),
    "fuling": (("太极大道", "Taiji Avenue"), ("兴华中路", "Xinghua Middle Road")),
    "jiangjin": (("鼎山大道", "Dingshan Avenue"),),
    "qianjiang": (("新华大道", "Xinhua Avenue"),),
}
GENERIC_ROADS: tuple[Text, ...] = (
    ("人民路", "Renmin Road"), ("建设路", "Jianshe Road"), ("滨江路", "Binjiang Road"),
    ("新华路", "Xinhua Road"), ("解放路", "Jiefang Road"), ("中山路", "Zhongshan Road"),
    ("文化路", "Wenhua Road"), ("工业大道", "Gongye Avenue"),
)
CLUSTER_ROADS: dict[str, tuple[Text, ...]] = {
    "liangjiang": (("金开大道", "Jinkai Avenue"), ("星光大道", "Xingguang Avenue")),
    "xiyong": (("西永大道", "Xiyong Avenue"),),
    "cq-hitech": (("科学大道", "Kexue Avenue"),),
    "konggang-park": (("空港大道", "Konggang Avenue"),),
    "cq-etdz": (("通江大道", "Tongjiang Avenue"),),
}
GENERIC_CLUSTER_ROADS: tuple[Text, ...] = (
    ("园区大道", "Yuanqu Avenue"), ("创业大道", "Chuangye Avenue"),
    ("科技路", "Keji Road"), ("工业园路", "Gongyeyuan Road"),
)

# What each industrial cluster's window platform offers (3-6 keys).
CLUSTER_CATEGORIES: dict[str, tuple[str, ...]] = {
    "liangjiang": ("information", "financing", "startup", "talent", "technology", "market"),
    "xiyong": ("information", "talent", "technology", "market"),
    "cq-hitech": ("information", "financing", "startup", "technology", "legal"),
    "jiulong-park": ("financing", "talent", "technology", "management"),
    "cq-etdz": ("information", "financing", "startup", "market", "legal"),
    "konggang-park": ("financing", "talent", "technology", "market"),
    "jianqiao-park": ("financing", "technology", "management"),
    "shuangfu-park": ("financing", "talent", "technology", "market"),
    "changshou-etdz": ("information", "technology", "management", "legal"),
    "wanzhou-etdz": ("information", "financing", "talent", "technology", "market"),
    "fuling-hitech": ("financing", "technology", "market", "legal"),
    "bishan-hitech": ("financing", "startup", "talent", "technology"),
    "yongchuan-hitech": ("startup", "talent", "technology", "market"),
    "rongchang-hitech": ("financing", "technology", "market"),
    "tongliang-hitech": ("financing", "talent", "technology", "management"),
    "dazu-hitech": ("financing", "technology", "market", "management"),
    "hechuan-hitech": ("information", "financing", "talent", "technology"),
    "qianjiang-hitech": ("information", "financing", "startup", "market"),
}
DEFAULT_CLUSTER_CATEGORIES: tuple[str, ...] = ("information", "financing", "technology", "market")

INDUSTRIES: dict[str, tuple[Text, ...]] = {
    "core": (
        ("电子信息", "Electronics and Information"), ("汽车零部件", "Auto Parts"),
        ("软件和信息服务", "Software and IT Services"), ("生物医药", "Biomedicine"),
        ("现代物流", "Modern Logistics"),
    ),
    "west": (
        ("装备制造", "Equipment Manufacturing"), ("摩托车零部件", "Motorcycle Parts"),
        ("新材料", "New Materials"), ("食品加工", "Food Processing"),
        ("五金制造", "Hardware Manufacturing"),
    ),
    "northeast": (
        ("柑橘", "Citrus"), ("特色农产品", "Specialty Agricultural Products"),
        ("生态旅游", "Eco-tourism"), ("纺织服装", "Textiles and Garments"),
    ),
    "southeast": (
        ("中药材", "Chinese Medicinal Herbs"), ("特色农产品", "Specialty Agricultural Products"),
        ("生态旅游", "Eco-tourism"), ("民族手工艺", "Ethnic Handicrafts"),
    ),
}

# Fictional trade-name words (zh, pinyin).
NAME_WORDS: tuple[Text, ...] = (
    ("星辰", "Xingchen"), ("嘉川", "Jiachuan"), ("明远", "Mingyuan"), ("汇智", "Huizhi"),
    ("鼎诚", "Dingcheng"), ("恒源", "Hengyuan"), ("博创", "Bochuang"), ("德润", "Derun"),
    ("金桥", "Jinqiao"), ("瑞丰", "Ruifeng"), ("华岳", "Huayue"), ("青禾", "Qinghe"),
    ("云帆", "Yunfan"), ("睿达", "Ruida"), ("启航", "Qihang"), ("同心", "Tongxin"),
    ("禾信", "Hexin"), ("晨曦", "Chenxi"), ("锦程", "Jincheng"), ("弘毅", "Hongyi"),
    ("致远", "Zhiyuan"), ("信和", "Xinhe"), ("朗润", "Langrun"), ("嘉禾", "Jiahe"),
    ("山岚", "Shanlan"), ("澄江", "Chengjiang"), ("立德", "Lide"), ("众诚", "Zhongcheng"),
    ("和煦", "Hexu"), ("远帆", "Yuanfan"), ("启明", "Qiming"), ("聚源", "Juyuan"),
    ("安和", "Anhe"), ("卓越", "Zhuoyue"), ("盛景", "Shengjing"), ("知行", "Zhixing"),
    ("丰泽", "Fengze"), ("沐阳", "Muyang"), ("翔宇", "Xiangyu"), ("慧源", "Huiyuan"),
    ("长风", "Changfeng"), ("新桥", "Xinqiao"), ("秋实", "Qiushi"), ("合力", "Heli"),
    ("砺行", "Lixing"), ("蓝岸", "Lan'an"), ("正一", "Zhengyi"), ("松涛", "Songtao"),
    ("泓川", "Hongchuan"), ("景行", "Jingxing"), ("东篱", "Dongli"), ("银杏", "Yinxing"),
    ("明德", "Mingde"), ("乐业", "Leye"), ("朝晖", "Zhaohui"), ("清源", "Qingyuan"),
    ("北辰", "Beichen"), ("九章", "Jiuzhang"), ("方圆", "Fangyuan"), ("行远", "Xingyuan"),
)
BANK_BRANDS: tuple[Text, ...] = (
    ("渝丰", "Yufeng"), ("嘉汇", "Jiahui"), ("山泽", "Shanze"), ("瑞江", "Ruijiang"),
)

# Extra sentence appended to content for an optional (secondary) category.
EXTRA_CONTENT: dict[str, Text] = {
    "information": (
        "同时提供政策解读、行业信息和按需定向推送。",
        "Also offers policy interpretation, industry news and targeted information.",
    ),
    "financing": (
        "同时协助企业对接银行和担保机构、准备融资材料。",
        "Also helps firms meet banks and guarantors and prepare financing documents.",
    ),
    "startup": (
        "同时为初创企业代办登记手续并提供创业辅导。",
        "Also handles registration paperwork and coaching for new firms.",
    ),
    "talent": (
        "同时组织相关岗位培训和人才推荐。",
        "Also runs related job training and recommends candidates.",
    ),
    "technology": (
        "同时提供技术咨询和产学研合作对接。",
        "Also provides technical consulting and industry-university-research matchmaking.",
    ),
    "management": (
        "同时提供管理诊断和内控、规范化建设咨询。",
        "Also provides management diagnosis and advice on internal controls.",
    ),
    "market": (
        "同时帮助企业参加展会、开拓国内外市场。",
        "Also helps firms attend trade fairs and reach domestic and foreign markets.",
    ),
    "legal": (
        "同时提供合同审查、合规和维权方面的法律咨询。",
        "Also gives legal advice on contracts, compliance and rights protection.",
    ),
}

# fmt: on

# --------------------------------------------------------------------------- hours

DAY_NAMES: dict[str, tuple[str, str]] = {
    "mon": ("周一", "Mon"),
    "tue": ("周二", "Tue"),
    "wed": ("周三", "Wed"),
    "thu": ("周四", "Thu"),
    "fri": ("周五", "Fri"),
    "sat": ("周六", "Sat"),
    "sun": ("周日", "Sun"),
}
HOURS_GROUP_RE = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3}|(?:,[a-z]{3})*)) "
    r"(?P<times>\d{2}:\d{2}-\d{2}:\d{2}(?:,\d{2}:\d{2}-\d{2}:\d{2})*)$"
)

H_OFFICE = "mon-fri 09:00-12:00,14:00-17:30"
H_OFFICE_SAT = "mon-fri 09:00-12:00,14:00-17:30; sat 09:00-12:00"
H_GOV = "mon-fri 09:00-12:00,13:30-17:00"
H_BANK = "mon-fri 09:00-17:00; sat,sun 09:30-16:00"
H_BANK_WEEKDAY = "mon-fri 09:00-17:00"
H_LAW = "mon-fri 09:00-12:00,13:30-18:00; sat 09:30-12:00"
H_SCHOOL = "mon-fri 08:30-12:00,14:00-21:00; sat,sun 09:00-17:00"
H_SCHOOL_SMALL = "mon-fri 09:00-17:00; sat 09:00-17:00"
H_DAYLONG = "mon-sat 09:00-18:00"
H_SHIFTED = "mon-fri 09:30-18:30"
H_CAMPUS = "mon-fri 08:30-12:00,14:30-17:30"
H_PARTTIME = "mon,wed,fri 09:00-12:00,14:00-17:00"
H_MUNICIPAL = "mon-fri 08:30-18:00; sat,sun 09:00-17:00"


def _clock(t: str) -> str:
    hour, minute = t.split(":")
    return f"{int(hour)}:{minute}"


def _days(spec: str, lang: int) -> str:
    if "-" in spec:
        first, last = spec.split("-")
        if lang == 0:
            return f"{DAY_NAMES[first][0]}至{DAY_NAMES[last][0]}"
        return f"{DAY_NAMES[first][1]}-{DAY_NAMES[last][1]}"
    names = [DAY_NAMES[d][lang] for d in spec.split(",")]
    if lang == 0:
        return "、".join(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def render_hours(hours: str) -> Text:
    """Render the machine schedule in Chinese and English words."""
    zh: list[str] = []
    en: list[str] = []
    for group in hours.split(";"):
        match = HOURS_GROUP_RE.match(group.strip())
        if match is None:
            raise ValueError(f"bad hours group: {group!r}")
        times = ["-".join(_clock(t) for t in span.split("-")) for span in match["times"].split(",")]
        zh.append(f"{_days(match['days'], 0)} {', '.join(times)}")
        en.append(f"{_days(match['days'], 1)} {', '.join(times)}")
    return "；".join(zh), "; ".join(en)


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """A kind of service institution and its five publics (templates)."""

    key: str
    name_zh: str
    name_en: str
    categories: tuple[str, ...]
    optional: tuple[str, ...]
    capacity: tuple[int, int]
    hours: tuple[str, ...]
    content: Text
    process: Text
    standards: Text
    fees: Text
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()
    county_ok: bool = True
    clusterable: bool = False


KINDS: tuple[Kind, ...] = (
    Kind(
        key="bank_desk",
        name_zh="{bank}银行{short}{word}支行小微企业服务中心",
        name_en="{bank_en} Bank {short_en} {word_en} Sub-branch Small Business Centre",
        categories=("financing",),
        optional=("information",),
        capacity=(30, 60),
        hours=(H_BANK, H_BANK_WEEKDAY),
        content=(
            "小微企业流动资金贷款、信用贷款、知识产权和应收账款质押贷款，"
            "银企保对接、贷款申请辅导，以及结算、财务管理和信用记录咨询。",
            "Working-capital and credit loans for small firms, loans secured on IP and "
            "receivables, bank-enterprise-guarantor matchmaking, loan application guidance, "
            "and advice on settlement, financial management and credit records.",
        ),
        process=(
            "1. 热线转办或到网点提出融资需求；2. 客户经理{resp}个工作小时内联系并约见；"
            "3. 企业提交营业执照、近期财务报表和流水；4. 银行调查和审批；"
            "5. 签订合同、放款；6. 贷后跟踪和客户回访。",
            "1) Raise the need through the hotline or at a branch; 2) a relationship manager "
            "calls within {resp} working hours and arranges a meeting; 3) the firm submits its "
            "licence, recent accounts and bank statements; 4) due diligence and approval; "
            "5) contract and disbursement; 6) follow-up and client revisit.",
        ),
        standards=(
            "受理后{resp}个工作小时内联系企业；材料齐全后{days}个工作日内给出审批意见；"
            "利率和全部费用在签约前一次性书面告知。",
            "Contacts the firm within {resp} working hours of intake; gives a credit decision "
            "within {days} working days of a complete file; discloses the rate and all fees in "
            "writing before signing.",
        ),
        fees=(
            "融资咨询和贷款辅导免费；贷款利率按合同约定，执行国家利率政策，"
            "不收取承诺费、资金管理费等额外费用。",
            "Financing advice and loan guidance are free; the loan rate follows the contract "
            "and national rate policy, with no commitment, fund-management or other extra fees.",
        ),
        params=(("resp", ("2", "4")), ("days", ("5", "7", "10"))),
        clusterable=True,
    ),
    Kind(
        key="guarantee",
        name_zh="{prefix}{word}融资担保有限公司",
        name_en="{prefix_en} {word_en} Financing Guarantee Co., Ltd.",
        categories=("financing",),
        optional=(),
        capacity=(15, 40),
        hours=(H_OFFICE, H_GOV),
        content=(
            "为缺少抵押物的中小企业提供贷款担保、履约担保、诉讼保全担保，"
            "组织银企保三方对接，协助申请政府性融资担保和贴费政策。",
            "Loan, performance and litigation-preservation guarantees for SMEs short of "
            "collateral, three-way bank-enterprise-guarantor matchmaking, and help applying for "
            "government guarantee schemes and fee subsidies.",
        ),
        process=(
            "1. 提出担保申请；2. 项目受理和初审；3. 尽职调查；4. 评审会审议；"
            "5. 签订委托担保合同，银行放款；6. 保后跟踪和回访。",
            "1) Apply for a guarantee; 2) intake and first review; 3) due diligence; "
            "4) credit committee review; 5) guarantee contract signed and the bank lends; "
            "6) post-guarantee monitoring and revisit.",
        ),
        standards=(
            "受理后{resp}个工作小时内响应；资料齐全后{days}个工作日内出具评审结论；"
            "未通过的项目书面说明原因。",
            "Responds within {resp} working hours of intake; gives a review decision within "
            "{days} working days of a complete file; explains any refusal in writing.",
        ),
        fees=(
            "担保费年费率{rate}%，不超过政府性融资担保机构规定上限；不收取保证金以外的其他费用。",
            "Guarantee fee {rate}% a year, within the cap for government-backed guarantors; "
            "no charges beyond the deposit.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("7", "10", "15")),
            ("rate", ("0.8", "1.0", "1.2", "1.5")),
        ),
    ),
    Kind(
        key="microloan",
        name_zh="{prefix}{word}小额贷款有限公司",
        name_en="{prefix_en} {word_en} Micro-credit Co., Ltd.",
        categories=("financing",),
        optional=(),
        capacity=(10, 30),
        hours=(H_OFFICE, H_SHIFTED),
        content=(
            "面向个体工商户和小微企业的小额信用贷款、短期周转贷款和应急转贷，"
            "额度一般在5万至100万元。",
            "Small credit loans, short-term working-capital loans and emergency bridge loans "
            "for sole traders and micro firms, usually CNY 50,000 to 1,000,000.",
        ),
        process=(
            "1. 电话或热线转办咨询；2. 提交身份证明、营业执照和经营流水；"
            "3. 实地走访核实经营情况；4. 审批；5. 签约放款；6. 到期提醒和回访。",
            "1) Enquire by phone or through the hotline; 2) submit ID, licence and turnover "
            "records; 3) on-site visit; 4) approval; 5) contract and disbursement; "
            "6) due-date reminders and revisit.",
        ),
        standards=(
            "受理后{resp}个工作小时内联系企业；资料齐全后{days}个工作日内放款或答复；"
            "年化利率在签约前明示。",
            "Contacts the firm within {resp} working hours; lends or answers within {days} "
            "working days of a complete file; states the annualised rate before signing.",
        ),
        fees=(
            "年化利率按合同约定，不超过一年期贷款市场报价利率（LPR）的4倍；不收取咨询费、手续费。",
            "Annualised rate as contracted, never above four times the one-year Loan Prime "
            "Rate (LPR); no consulting or handling fees.",
        ),
        params=(("resp", ("2", "4")), ("days", ("2", "3", "5"))),
    ),
    Kind(
        key="law_firm",
        name_zh="重庆{word}律师事务所{short}分所",
        name_en="Chongqing {word_en} Law Firm, {short_en} Office",
        categories=("legal",),
        optional=("management", "information"),
        capacity=(10, 40),
        hours=(H_LAW, H_OFFICE),
        content=(
            "企业常年法律顾问、合同起草与审查、劳动用工合规、债权清收、"
            "商事纠纷诉讼和仲裁代理、企业维权，以及面向中小企业的法律知识讲座。",
            "Retained legal counsel, contract drafting and review, employment compliance, "
            "debt recovery, commercial litigation and arbitration, protection of a firm's "
            "rights, and legal education sessions for SMEs.",
        ),
        process=(
            "1. 热线转办或电话预约；2. 律师{resp}个工作小时内回电了解案情；"
            "3. 面谈或视频咨询；4. 需要代理的签订委托合同；5. 办理和进度告知；6. 结案回访。",
            "1) Hotline referral or phone appointment; 2) a lawyer calls back within {resp} "
            "working hours; 3) consultation in person or by video; 4) engagement letter if "
            "representation is needed; 5) handling with progress updates; 6) closing revisit.",
        ),
        standards=(
            "{resp}个工作小时内回电；一般咨询{days}个工作日内给出书面意见；"
            "符合法律援助条件的转介法律援助机构。",
            "Calls back within {resp} working hours; gives written advice on routine questions "
            "within {days} working days; refers eligible firms to legal aid.",
        ),
        fees=(
            "首次法律咨询30分钟免费；常年法律顾问每年{low}-{high}元；"
            "诉讼和仲裁代理按律师服务收费相关规定协商收费。",
            "First 30-minute consultation free; retained counsel CNY {low}-{high} a year; "
            "litigation and arbitration fees negotiated under the rules on lawyers' fees.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("2", "3")),
            ("low", ("6000", "8000", "10000")),
            ("high", ("30000", "50000")),
        ),
    ),
    Kind(
        key="testing_lab",
        name_zh="{prefix}{word}检验检测技术有限公司",
        name_en="{prefix_en} {word_en} Testing Technology Co., Ltd.",
        categories=("technology",),
        optional=("management",),
        capacity=(15, 50),
        hours=(H_OFFICE, H_SHIFTED),
        content=(
            "具备CMA资质的机械、电子电器、金属材料和化工产品检验检测，"
            "计量校准，出具产品质量检验报告，开展质量问题分析和失效分析。",
            "CMA-accredited testing of machinery, electrical and electronic products, metals "
            "and chemicals, metrology and calibration, product test reports, and quality and "
            "failure analysis.",
        ),
        process=(
            "1. 咨询检测项目和标准；2. 签订委托书并送样或预约上门取样；3. 检测；"
            "4. 出具报告；5. 对不合格项目解读并提出改进建议；6. 回访。",
            "1) Discuss test items and standards; 2) sign the request and send samples or book "
            "pick-up; 3) testing; 4) report issued; 5) failed items explained with improvement "
            "advice; 6) revisit.",
        ),
        standards=(
            "受理后{resp}个工作小时内答复检测方案；常规项目{days}个工作日内出具报告，"
            "可加急至48小时；检测数据保密。",
            "Proposes a test plan within {resp} working hours; routine reports within {days} "
            "working days, 48 hours when expedited; test data kept confidential.",
        ),
        fees=(
            "按检测项目收费，常规项目每项{low}-{high}元；"
            "登记的中小企业按公示价8折收费，加急另加30%。",
            "Charged per test item, CNY {low}-{high} for routine items; registered SMEs pay 80% "
            "of the posted price; expedited service +30%.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("5", "7", "10")),
            ("low", ("150", "200", "300")),
            ("high", ("2000", "3000", "5000")),
        ),
        county_ok=False,
        clusterable=True,
    ),
    Kind(
        key="quality_center",
        name_zh="{prefix}{word}质量与节能技术服务中心",
        name_en="{prefix_en} {word_en} Quality and Energy Saving Service Centre",
        categories=("technology", "management"),
        optional=(),
        capacity=(10, 30),
        hours=(H_OFFICE, H_GOV),
        content=(
            "质量管理体系（ISO 9001）导入辅导、标准化咨询、能源审计和节能诊断、"
            "清洁生产审核，推广新技术、新工艺、新材料。",
            "Coaching to adopt a quality management system (ISO 9001), standardisation "
            "advice, energy audits and energy-saving diagnosis, cleaner-production audits, and "
            "promotion of new technology, processes and materials.",
        ),
        process=(
            "1. 提出需求；2. 工程师上门调研；3. 出具诊断报告和改进方案；"
            "4. 企业确认后实施辅导；5. 效果评估；6. 回访。",
            "1) State the need; 2) an engineer visits; 3) diagnosis report and improvement "
            "plan; 4) coaching once the firm agrees; 5) results assessment; 6) revisit.",
        ),
        standards=(
            "受理后{resp}个工作小时内联系企业；{days}个工作日内完成现场诊断；"
            "诊断报告附可量化的改进目标。",
            "Contacts the firm within {resp} working hours; completes the on-site diagnosis "
            "within {days} working days; reports include measurable targets.",
        ),
        fees=(
            "首次诊断免费（政府购买服务）；体系辅导和节能改造咨询按项目报价，一般{low}-{high}元。",
            "First diagnosis free (government-funded); system coaching and energy-saving "
            "consulting quoted per project, usually CNY {low}-{high}.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("5", "10")),
            ("low", ("3000", "5000")),
            ("high", ("20000", "40000")),
        ),
        clusterable=True,
    ),
    Kind(
        key="training_school",
        name_zh="{prefix}{word}职业培训学校",
        name_en="{prefix_en} {word_en} Vocational Training School",
        categories=("talent",),
        optional=("management", "startup"),
        capacity=(30, 60),
        hours=(H_SCHOOL, H_SCHOOL_SMALL),
        content=(
            "承办银河培训工程中小企业经营管理人员培训，开展岗位技能培训、"
            "电工焊工等职业技能等级认定辅导，以及远程网络课程。",
            "Runs Galaxy programme (银河培训工程) courses for SME managers, job-skills training, "
            "coaching for vocational skill certificates such as electrician and welder, and "
            "online distance courses.",
        ),
        process=(
            "1. 查询课程或由热线转介；2. 报名并确认补贴资格；3. 参加面授或线上学习；"
            "4. 考核；5. 颁发结业证书；6. 培训效果回访。",
            "1) Browse courses or get a hotline referral; 2) enrol and confirm subsidy "
            "eligibility; 3) attend in class or online; 4) assessment; 5) certificate; "
            "6) follow-up on training results.",
        ),
        standards=(
            "咨询当日答复；每月至少开班{days}期；课程表和师资提前公示，"
            "学员满意度低于90%的课程整改。",
            "Answers enquiries the same day; starts at least {days} classes a month; publishes "
            "timetables and trainers in advance; revises courses rated below 90% satisfaction.",
        ),
        fees=(
            "银河培训工程等政府补贴项目对学员免费；其他课程每人每期{low}-{high}元，"
            "按公示标准收费。",
            "Government-funded programmes such as the Galaxy programme are free to trainees; "
            "other courses CNY {low}-{high} per person per course, at posted prices.",
        ),
        params=(("days", ("2", "3", "4")), ("low", ("300", "500")), ("high", ("1500", "2800"))),
    ),
    Kind(
        key="hr_agency",
        name_zh="{prefix}{word}人力资源服务有限公司",
        name_en="{prefix_en} {word_en} Human Resources Service Co., Ltd.",
        categories=("talent",),
        optional=("management",),
        capacity=(20, 50),
        hours=(H_OFFICE_SAT, H_DAYLONG),
        content=(
            "招聘信息发布和专场招聘会、中高级人才寻访与推荐、人才测评、"
            "劳动合同和社保代理、薪酬体系咨询。",
            "Job postings and recruitment fairs, search and recommendation of mid- and "
            "senior-level candidates, talent assessment, employment-contract and social "
            "insurance administration, and pay-structure advice.",
        ),
        process=(
            "1. 提交用人需求；2. 顾问{resp}个工作小时内确认岗位画像；3. 发布信息、寻访候选人；"
            "4. 测评和推荐；5. 企业面试录用；6. 试用期跟踪和回访。",
            "1) Submit the hiring need; 2) a consultant confirms the role profile within "
            "{resp} working hours; 3) posting and candidate search; 4) assessment and "
            "shortlist; 5) the firm interviews and hires; 6) probation follow-up and revisit.",
        ),
        standards=(
            "{resp}个工作小时内响应；{days}个工作日内推荐首批候选人；"
            "推荐人员试用期内离职免费补推一次。",
            "Responds within {resp} working hours; first shortlist within {days} working days; "
            "one free replacement if a placed candidate leaves during probation.",
        ),
        fees=(
            "招聘信息发布和招聘会入场免费；中高级人才推荐按到岗年薪的{pct}%收费；"
            "人才测评每人{low}元起。",
            "Job postings and fair admission are free; mid/senior placements cost {pct}% of "
            "first-year salary; assessments from CNY {low} per person.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("5", "7")),
            ("pct", ("12", "15", "18")),
            ("low", ("200", "300", "500")),
        ),
        clusterable=True,
    ),
    Kind(
        key="consultancy",
        name_zh="{prefix}{word}企业管理咨询有限公司",
        name_en="{prefix_en} {word_en} Management Consulting Co., Ltd.",
        categories=("management",),
        optional=("information", "financing"),
        capacity=(8, 25),
        hours=(H_OFFICE, H_SHIFTED),
        content=(
            "参与中小企业管理提升计划，提供管理诊断、战略和组织设计、成本管控、"
            "精益生产、内部控制咨询，组织专家志愿顾问进企业。",
            "Takes part in the SME management-improvement plan: management diagnosis, "
            "strategy and organisation design, cost control, lean production and internal "
            "control consulting, and visits by volunteer expert advisers.",
        ),
        process=(
            "1. 提出需求；2. 顾问{resp}个工作小时内电话沟通；3. 上门管理诊断；"
            "4. 提交诊断报告和改进建议；5. 企业确认后开展专项咨询；6. 三个月后回访效果。",
            "1) State the need; 2) a consultant calls within {resp} working hours; "
            "3) on-site management diagnosis; 4) diagnosis report and recommendations; "
            "5) project consulting if the firm agrees; 6) revisit after three months.",
        ),
        standards=(
            "{resp}个工作小时内响应；{days}个工作日内完成诊断并提交书面报告；"
            "每个项目指定一名主责顾问。",
            "Responds within {resp} working hours; completes the diagnosis and written report "
            "within {days} working days; one named lead consultant per project.",
        ),
        fees=(
            "首次管理诊断免费（政府购买服务）；专项咨询按项目报价，"
            "一般每项{low}-{high}万元，签约前书面确认。",
            "First diagnosis free (government-funded); project consulting quoted per project, "
            "usually CNY {low}0,000-{high}0,000, confirmed in writing before signing.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("7", "10")),
            ("low", ("1", "2")),
            ("high", ("5", "8", "10")),
        ),
    ),
    Kind(
        key="incubator",
        name_zh="{prefix}{word}创业孵化基地",
        name_en="{prefix_en} {word_en} Startup Incubation Base",
        categories=("startup",),
        optional=("financing", "talent"),
        capacity=(15, 45),
        hours=(H_DAYLONG, H_OFFICE_SAT),
        content=(
            "为初创企业提供工位和小型办公室、工商税务登记代办、创业导师一对一辅导、"
            "路演和投资对接、创业沙龙和初创企业交流活动。",
            "Desks and small offices for new firms, registration and tax paperwork done on "
            "the founder's behalf, one-to-one mentoring, pitch days and investor matchmaking, "
            "and founder meet-ups.",
        ),
        process=(
            "1. 提交创业项目简介；2. 基地{resp}个工作小时内约谈；3. 入驻评审；"
            "4. 签订入驻协议，办理登记；5. 导师辅导和资源对接；6. 季度回访和毕业评估。",
            "1) Send a short project description; 2) the base meets the founder within "
            "{resp} working hours; 3) admission review; 4) residency agreement and "
            "registration; 5) mentoring and introductions; 6) quarterly revisit and "
            "graduation review.",
        ),
        standards=(
            "{resp}个工作小时内响应；代办登记{days}个工作日内完成；每家入驻企业配备一名创业导师。",
            "Responds within {resp} working hours; registration paperwork done within {days} "
            "working days; every resident firm gets a mentor.",
        ),
        fees=(
            "代办登记和创业辅导免费；入驻前6个月工位免费，之后每工位每月{low}-{high}元。",
            "Registration paperwork and coaching are free; desks free for the first six "
            "months, then CNY {low}-{high} per desk per month.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("3", "5")),
            ("low", ("200", "300")),
            ("high", ("500", "800")),
        ),
        clusterable=True,
    ),
    Kind(
        key="registration_agency",
        name_zh="{prefix}{word}企业登记代理有限公司",
        name_en="{prefix_en} {word_en} Business Registration Agency Co., Ltd.",
        categories=("startup",),
        optional=("financing",),
        capacity=(10, 35),
        hours=(H_OFFICE_SAT, H_SHIFTED),
        content=(
            "代办公司设立、变更、注销登记，办理食品经营、道路运输等行政许可，"
            "刻章、开户、税务登记一站式代办，为新办企业提供创业政策咨询。",
            "Company formation, amendment and deregistration filed on the founder's behalf, "
            "permits such as food business and road transport, one-stop seals, bank account "
            "and tax registration, and startup policy advice for new firms.",
        ),
        process=(
            "1. 电话咨询确定办理事项；2. 提交身份证明和材料清单所列资料；"
            "3. 签订代办协议；4. 网上申报和窗口办理；5. 交付执照、印章等；6. 回访。",
            "1) Phone to agree what is needed; 2) provide ID and the listed documents; "
            "3) sign the agency agreement; 4) online filing and counter visits; "
            "5) licence and seals delivered; 6) revisit.",
        ),
        standards=(
            "当日答复材料清单；资料齐全后{days}个工作日内完成设立登记；办理进度每日告知。",
            "Sends the document list the same day; completes formation within {days} working "
            "days of complete documents; daily progress updates.",
        ),
        fees=(
            "设立登记代办费{low}元起（政府规费按实代收）；符合条件的返乡和大学生创业者代办免费。",
            "Formation service from CNY {low} (official fees passed through at cost); free for "
            "eligible returning-home and graduate founders.",
        ),
        params=(("days", ("2", "3", "5")), ("low", ("300", "500", "800"))),
    ),
    Kind(
        key="chamber",
        name_zh="{prefix}{word}中小企业商会",
        name_en="{prefix_en} {word_en} SME Chamber of Commerce",
        categories=("market", "information"),
        optional=("legal",),
        capacity=(10, 30),
        hours=(H_OFFICE, H_GOV),
        content=(
            "会员企业供需对接和商务信息发布，组织参加渝洽会、中博会、西部农交会等展会，"
            "政策宣讲和解读，行业运行情况收集和反映。",
            "Supply-demand matchmaking and business news for members, group participation in "
            "the Chongqing investment and trade fair, the China International SME Expo and the "
            "western agricultural products fair, policy briefings, and reporting members' "
            "business conditions.",
        ),
        process=(
            "1. 提出需求或报名活动；2. 秘书处{resp}个工作小时内联系；3. 匹配供需或展会资源；"
            "4. 组织对接或参展；5. 跟踪成效；6. 回访。",
            "1) State the need or sign up for an event; 2) the secretariat calls within {resp} "
            "working hours; 3) matching with partners or fairs; 4) meetings or exhibiting; "
            "5) follow-up of results; 6) revisit.",
        ),
        standards=(
            "{resp}个工作小时内联系企业；每月至少发布一期供需信息简报；"
            "展会信息提前{days}天通知会员。",
            "Contacts the firm within {resp} working hours; publishes a supply-demand bulletin "
            "at least monthly; announces fairs {days} days ahead.",
        ),
        fees=(
            "非会员咨询免费；会费每年{low}-{high}元；展位费按主办方标准代收代付，不加价。",
            "Free advice for non-members; membership CNY {low}-{high} a year; booth fees "
            "passed through at the organiser's price without mark-up.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("30", "45")),
            ("low", ("500", "1000")),
            ("high", ("3000", "5000")),
        ),
    ),
    Kind(
        key="trade_association",
        name_zh="{prefix}{industry}产业促进会",
        name_en="{prefix_en} {industry_en} Industry Promotion Association",
        categories=("market", "information"),
        optional=("technology",),
        capacity=(10, 30),
        hours=(H_GOV, H_OFFICE),
        content=(
            "{industry}行业信息和市场行情发布、贸易预警，组织企业参加高交会、"
            "中博会等专业展会，对接上下游采购，推动区域品牌建设。",
            "{industry_en} industry news, market prices and trade early warnings, group "
            "participation in the high-tech fair, the China International SME Expo and other "
            "trade shows, upstream and downstream sourcing, and regional brand building.",
        ),
        process=(
            "1. 提出需求；2. 协会{resp}个工作小时内联系；3. 推荐对接资源或展会；"
            "4. 组织洽谈；5. 跟踪成交情况；6. 回访。",
            "1) State the need; 2) the association calls within {resp} working hours; "
            "3) suggested partners or fairs; 4) business meetings; 5) follow-up of deals; "
            "6) revisit.",
        ),
        standards=(
            "{resp}个工作小时内联系企业；每季度发布行业运行报告；"
            "重大贸易风险{days}个工作日内向会员预警。",
            "Contacts the firm within {resp} working hours; quarterly industry report; warns "
            "members of major trade risks within {days} working days.",
        ),
        fees=(
            "行业信息查询和对接服务免费；会费每年{low}元起；展会组团服务按实际成本收取。",
            "Industry information and matchmaking free; membership from CNY {low} a year; "
            "group exhibition services at cost.",
        ),
        params=(("resp", ("4", "8")), ("days", ("2", "3")), ("low", ("600", "1000", "2000"))),
    ),
    Kind(
        key="university",
        name_zh="重庆{word}职业技术学院{short}校区产学研服务中心",
        name_en="Chongqing {word_en} Polytechnic {short_en} Campus Industry-Academia Centre",
        categories=("technology", "talent"),
        optional=(),
        capacity=(20, 50),
        hours=(H_CAMPUS, H_PARTTIME),
        content=(
            "产学研合作项目对接、共性关键技术联合攻关、实验室和大型仪器共享、"
            "教师技术咨询，学生实习和毕业生招聘对接、企业员工学历与技能提升。",
            "Industry-university-research project matchmaking, joint work on shared key "
            "technical problems, shared labs and large instruments, technical advice from "
            "faculty, internships and graduate hiring, and upskilling for employees.",
        ),
        process=(
            "1. 提交技术或用人需求；2. 中心{resp}个工作小时内联系；3. 匹配教师团队或专业；"
            "4. 对接洽谈；5. 签订合作协议；6. 项目跟踪和回访。",
            "1) Submit the technical or hiring need; 2) the centre calls within {resp} "
            "working hours; 3) matching with a faculty team or programme; 4) meeting; "
            "5) cooperation agreement; 6) project follow-up and revisit.",
        ),
        standards=(
            "{resp}个工作小时内联系企业；{days}个工作日内推荐对接团队；仪器共享提前一周预约。",
            "Contacts the firm within {resp} working hours; proposes a team within {days} "
            "working days; instrument bookings one week ahead.",
        ),
        fees=(
            "需求对接和招聘对接免费；合作研发按项目合同约定；"
            "大型仪器共享按成本价收费，每机时{low}元起。",
            "Matchmaking and hiring services free; joint R&D per contract; shared instruments "
            "at cost, from CNY {low} per machine-hour.",
        ),
        params=(("resp", ("8",)), ("days", ("5", "10")), ("low", ("80", "120", "200"))),
        county_ok=False,
    ),
    Kind(
        key="research_institute",
        name_zh="{prefix}{word}工业技术研究院",
        name_en="{prefix_en} {word_en} Institute of Industrial Technology",
        categories=("technology",),
        optional=("management", "talent"),
        capacity=(15, 40),
        hours=(H_OFFICE, H_CAMPUS),
        content=(
            "行业共性技术研发、技术咨询和技术诊断、工业设计、新技术新工艺新材料推广、"
            "信息化和智能化改造诊断、科技成果转化。",
            "Research on shared industry technologies, technical consulting and diagnosis, "
            "industrial design, promotion of new technology, processes and materials, "
            "digitalisation and smart-manufacturing diagnosis, and technology transfer.",
        ),
        process=(
            "1. 提交技术问题；2. 研究院{resp}个工作小时内安排工程师联系；3. 现场诊断；"
            "4. 提出解决方案和报价；5. 签约实施；6. 验收和回访。",
            "1) Describe the technical problem; 2) an engineer calls within {resp} working "
            "hours; 3) on-site diagnosis; 4) solution and quote; 5) contract and delivery; "
            "6) acceptance and revisit.",
        ),
        standards=(
            "{resp}个工作小时内响应；{days}个工作日内提交诊断意见；"
            "技术成果和企业数据签订保密协议。",
            "Responds within {resp} working hours; diagnosis within {days} working days; "
            "non-disclosure agreement covering results and company data.",
        ),
        fees=(
            "首次技术诊断免费；技术开发和设计服务按合同约定，工业设计每项{low}元起。",
            "First technical diagnosis free; development and design services per contract; "
            "industrial design from CNY {low} per project.",
        ),
        params=(("resp", ("4", "8")), ("days", ("5", "7")), ("low", ("5000", "8000"))),
        county_ok=False,
        clusterable=True,
    ),
    Kind(
        key="ecommerce",
        name_zh="{prefix}{word}电子商务服务有限公司",
        name_en="{prefix_en} {word_en} E-commerce Service Co., Ltd.",
        categories=("market",),
        optional=("startup", "talent"),
        capacity=(10, 35),
        hours=(H_DAYLONG, H_SHIFTED),
        content=(
            "网店开设和代运营、直播电商培训、农特产品网络销售、跨境电商入门辅导、"
            "产品拍摄和线上推广，以及展会线上对接。",
            "Online shop set-up and operation, live-stream selling training, online sales of "
            "local farm products, first steps in cross-border e-commerce, product photography "
            "and online promotion, and online matchmaking at fairs.",
        ),
        process=(
            "1. 提出需求；2. 运营顾问{resp}个工作小时内联系；3. 店铺和产品诊断；"
            "4. 确定运营方案；5. 开店或代运营；6. 月度数据报告和回访。",
            "1) State the need; 2) an operations adviser calls within {resp} working hours; "
            "3) shop and product review; 4) operations plan; 5) shop launch or managed "
            "operation; 6) monthly data report and revisit.",
        ),
        standards=(
            "{resp}个工作小时内响应；{days}个工作日内完成店铺上线；每月提供运营数据报告。",
            "Responds within {resp} working hours; shop live within {days} working days; "
            "monthly performance report.",
        ),
        fees=(
            "电商入门培训免费；代运营每月{low}-{high}元或按销售额提成，签约前书面确认。",
            "Introductory training free; managed operation CNY {low}-{high} a month or a sales "
            "commission, agreed in writing before signing.",
        ),
        params=(
            ("resp", ("2", "4")),
            ("days", ("5", "7")),
            ("low", ("1500", "2000")),
            ("high", ("5000", "8000")),
        ),
        clusterable=True,
    ),
    Kind(
        key="accounting",
        name_zh="重庆{word}会计师事务所{short}分所",
        name_en="Chongqing {word_en} CPA Firm, {short_en} Branch",
        categories=("financing", "management"),
        optional=(),
        capacity=(10, 30),
        hours=(H_OFFICE, H_LAW),
        content=(
            "代理记账和纳税申报、财务规范化辅导、审计和验资、税务咨询、"
            "融资和上市前财务梳理、信用评级材料准备。",
            "Bookkeeping and tax filing, coaching to put accounts in order, audits and capital "
            "verification, tax advice, financial preparation for financing and IPO, and "
            "documents for credit ratings.",
        ),
        process=(
            "1. 电话或热线转办预约；2. 会计师{resp}个工作小时内联系；3. 了解账务现状；"
            "4. 报价并签订业务约定书；5. 提供服务；6. 回访。",
            "1) Phone or hotline referral; 2) an accountant calls within {resp} working hours; "
            "3) review of the books; 4) quote and engagement letter; 5) service delivery; "
            "6) revisit.",
        ),
        standards=(
            "{resp}个工作小时内响应；纳税申报按期零延误；"
            "年度审计报告在资料齐全后{days}个工作日内出具。",
            "Responds within {resp} working hours; never misses a tax filing deadline; annual "
            "audit report within {days} working days of complete records.",
        ),
        fees=(
            "小规模纳税人代理记账每月{low}-{high}元；审计和验资按会计师事务所服务收费相关规定"
            "协商收费；初次财务咨询免费。",
            "Bookkeeping for small-scale taxpayers CNY {low}-{high} a month; audits and "
            "verifications negotiated under the rules on CPA fees; first consultation free.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("10", "15")),
            ("low", ("200", "300")),
            ("high", ("500", "800")),
        ),
    ),
    Kind(
        key="ip_agency",
        name_zh="{prefix}{word}知识产权代理有限公司",
        name_en="{prefix_en} {word_en} Intellectual Property Agency Co., Ltd.",
        categories=("legal", "technology"),
        optional=(),
        capacity=(8, 25),
        hours=(H_OFFICE, H_SHIFTED),
        content=(
            "专利和商标申请代理、专利检索和布局、知识产权维权和侵权应对、"
            "高新技术企业认定辅导、知识产权质押融资辅导。",
            "Patent and trademark filing, patent searches and portfolio planning, IP "
            "enforcement and infringement defence, coaching for high-tech enterprise "
            "recognition, and IP-backed financing guidance.",
        ),
        process=(
            "1. 提出需求；2. 代理师{resp}个工作小时内联系；3. 技术交底或商标检索；"
            "4. 报价并签约；5. 撰写和提交申请；6. 审查意见答复和结果告知。",
            "1) State the need; 2) an attorney calls within {resp} working hours; "
            "3) invention disclosure or trademark search; 4) quote and contract; "
            "5) drafting and filing; 6) office-action responses and result notification.",
        ),
        standards=(
            "{resp}个工作小时内响应；交底齐全后{days}个工作日内提交专利申请；"
            "官方通知收到后2个工作日内转告企业。",
            "Responds within {resp} working hours; files the patent within {days} working days "
            "of a complete disclosure; forwards official notices within 2 working days.",
        ),
        fees=(
            "官费按国家知识产权局标准代收；代理费：发明专利{low}元/件起，"
            "实用新型{mid}元/件起，商标注册{tm}元/件起。",
            "Official fees passed through at CNIPA rates; service fees from CNY {low} per "
            "invention patent, CNY {mid} per utility model, CNY {tm} per trademark.",
        ),
        params=(
            ("resp", ("4", "8")),
            ("days", ("10", "15", "20")),
            ("low", ("4000", "5000", "6000")),
            ("mid", ("1500", "2000")),
            ("tm", ("300", "500")),
        ),
        clusterable=True,
    ),
    Kind(
        key="info_service",
        name_zh="{prefix}{word}信息技术服务有限公司",
        name_en="{prefix_en} {word_en} Information Technology Service Co., Ltd.",
        categories=("information", "technology"),
        optional=(),
        capacity=(15, 40),
        hours=(H_SHIFTED, H_OFFICE),
        content=(
            "中小企业政策和供需信息定向推送、企业上云用数和数字化转型诊断、"
            "管理软件选型和实施、行业数据简报。",
            "Targeted push of policy and supply-demand information to SMEs, cloud adoption and "
            "digital-transformation diagnosis, business software selection and rollout, and "
            "industry data briefings.",
        ),
        process=(
            "1. 登记企业信息和需求标签；2. {resp}个工作小时内联系确认；3. 开通信息推送或上门诊断；"
            "4. 出具方案；5. 实施；6. 回访。",
            "1) Register the firm and its interest tags; 2) confirmation call within {resp} "
            "working hours; 3) information push switched on or an on-site diagnosis; "
            "4) proposal; 5) rollout; 6) revisit.",
        ),
        standards=(
            "{resp}个工作小时内响应；政策信息发布后1个工作日内推送；"
            "数字化诊断{days}个工作日内出报告。",
            "Responds within {resp} working hours; pushes new policies within 1 working day; "
            "digital diagnosis report within {days} working days.",
        ),
        fees=(
            "信息推送和首次数字化诊断免费；软件实施按项目报价，一般{low}元起。",
            "Information push and the first digital diagnosis are free; software rollout quoted "
            "per project, usually from CNY {low}.",
        ),
        params=(("resp", ("2", "4")), ("days", ("5", "7")), ("low", ("3000", "5000"))),
        clusterable=True,
    ),
    Kind(
        key="export_service",
        name_zh="{prefix}{word}国际贸易服务有限公司",
        name_en="{prefix_en} {word_en} International Trade Service Co., Ltd.",
        categories=("market",),
        optional=("information", "legal"),
        capacity=(10, 30),
        hours=(H_SHIFTED, H_OFFICE),
        content=(
            "外贸代理和出口报关、出口信用保险对接、境外展会组团、"
            "国外市场和贸易摩擦预警信息、境外客商引进和对接。",
            "Export agency and customs declaration, export credit insurance introductions, "
            "group trips to overseas fairs, foreign-market and trade-friction warnings, and "
            "bringing in foreign buyers and partners.",
        ),
        process=(
            "1. 提出出口或参展需求；2. 顾问{resp}个工作小时内联系；3. 评估产品和目标市场；"
            "4. 制定方案并报价；5. 执行；6. 回访。",
            "1) State the export or exhibition need; 2) an adviser calls within {resp} "
            "working hours; 3) product and target-market assessment; 4) plan and quote; "
            "5) delivery; 6) revisit.",
        ),
        standards=(
            "{resp}个工作小时内响应；报关单据1个工作日内完成；境外展会信息提前{days}天发布。",
            "Responds within {resp} working hours; customs paperwork within 1 working day; "
            "overseas fairs announced {days} days ahead.",
        ),
        fees=(
            "市场信息和预警服务免费；外贸代理费为货值的{pct}%；境外展会按实际成本收费。",
            "Market information and warnings free; export agency fee {pct}% of goods value; "
            "overseas fairs at cost.",
        ),
        params=(("resp", ("4", "8")), ("days", ("60", "90")), ("pct", ("0.5", "0.8", "1"))),
        county_ok=False,
        clusterable=True,
    ),
    Kind(
        key="rights_station",
        name_zh="{prefix}{word}民营企业维权服务站",
        name_en="{prefix_en} {word_en} Private Enterprise Rights Protection Station",
        categories=("legal", "information"),
        optional=(),
        capacity=(5, 20),
        hours=(H_GOV, H_PARTTIME),
        content=(
            "受理民营企业合法权益受侵害的投诉和求助，提供公益法律咨询和法治宣传，"
            "协调相关部门处理，转介民营企业维权投诉中心和法律援助。",
            "Takes complaints and requests for help from private firms whose lawful rights "
            "were harmed, gives free legal advice and legal education, coordinates with "
            "the departments concerned, and refers cases to the private-enterprise rights "
            "complaint centre and legal aid.",
        ),
        process=(
            "1. 电话、热线转办或来访提出诉求；2. 登记并{resp}个工作小时内联系；"
            "3. 核实情况；4. 协调处理或转介；5. 告知结果；6. 回访。",
            "1) Raise the matter by phone, hotline referral or visit; 2) logged and contacted "
            "within {resp} working hours; 3) facts checked; 4) coordination or referral; "
            "5) outcome reported; 6) revisit.",
        ),
        standards=(
            "{resp}个工作小时内联系企业；{days}个工作日内给出处理意见；"
            "全程登记，处理结果书面告知。",
            "Contacts the firm within {resp} working hours; gives a handling opinion within "
            "{days} working days; every step logged and the outcome given in writing.",
        ),
        fees=("公益服务，全部免费。", "Public-interest service, entirely free."),
        params=(("resp", ("2", "4")), ("days", ("5", "10"))),
    ),
)
KIND_BY_KEY: dict[str, Kind] = {kind.key: kind for kind in KINDS}

# fmt: off
# Kinds repeated in the urban pools (most common institutions).
URBAN_EXTRA_KINDS: tuple[str, ...] = (
    "law_firm", "incubator", "bank_desk", "training_school", "consultancy",
)
# Kinds placed first in the remote regions so that every category is served there.
REMOTE_FIRST_KINDS: tuple[str, ...] = (
    "bank_desk", "law_firm", "training_school", "incubator", "quality_center", "chamber",
)

# fmt: on

# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class District:
    code: str
    name_zh: str
    name_en: str
    short_zh: str
    kind: str
    lat: float
    lon: float

    @property
    def prefix_zh(self) -> str:
        """Name prefix used by local firms (石柱县, not 石柱土家族自治县)."""
        return self.short_zh + "县" if self.kind == "autonomous_county" else self.name_zh

    @property
    def short_en(self) -> str:
        return self.name_en if self.short_zh == self.name_zh else self.name_en.split()[0]


@dataclass(frozen=True)
class Cluster:
    code: str
    name_zh: str
    name_en: str
    district_code: str
    lat: float
    lon: float


def read_districts(path: Path) -> list[District]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            District(
                code=r["code"],
                name_zh=r["name_zh"],
                name_en=r["name_en"],
                short_zh=r["short_zh"],
                kind=r["kind"],
                lat=float(r["lat"]),
                lon=float(r["lon"]),
            )
            for r in csv.DictReader(handle)
        ]


def read_clusters(path: Path) -> list[Cluster]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Cluster(
                code=r["code"],
                name_zh=r["name_zh"],
                name_en=r["name_en"],
                district_code=r["district_code"],
                lat=float(r["lat"]),
                lon=float(r["lon"]),
            )
            for r in csv.DictReader(handle)
        ]


def jitter(rng: random.Random, lat: float, lon: float, radius_km: float) -> tuple[str, str]:
    """A point uniformly inside a disc of ``radius_km`` around (lat, lon), 4 decimals."""
    distance = radius_km * math.sqrt(rng.random())
    angle = rng.random() * 2 * math.pi
    dlat = distance * math.cos(angle) / 111.0
    dlon = distance * math.sin(angle) / (111.0 * math.cos(math.radians(lat)))
    return f"{lat + dlat:.4f}", f"{lon + dlon:.4f}"


def make_address(
    rng: random.Random, district: District, cluster: Cluster | None
) -> tuple[str, str]:
    if cluster is not None:
        roads = CLUSTER_ROADS.get(cluster.code, GENERIC_CLUSTER_ROADS)
    else:
        roads = ROADS.get(district.code, GENERIC_ROADS)
    road_zh, road_en = rng.choice(roads)
    number = rng.randint(1, 399)
    floor = rng.choice((0, 0, 2, 3, 5, 8, 12, 16))
    area_zh = cluster.name_zh if cluster is not None else ""
    floor_zh = f"{floor}楼" if floor else ""
    floor_en = f"{floor}F, " if floor else ""
    area_en = f"{cluster.name_en}, " if cluster is not None else ""
    zh = f"重庆市{district.name_zh}{area_zh}{road_zh}{number}号{floor_zh}"
    en = f"{floor_en}No. {number} {road_en}, {area_en}{district.name_en}, Chongqing"
    return zh, en


def fill(template: str, values: dict[str, str]) -> str:
    return template.format(**values) if "{" in template else template


def publics(content: Text, process: Text, standards: Text, fees: Text, hours: str) -> Row:
    hours_zh, hours_en = render_hours(hours)
    return {
        "hours": hours,
        "content_zh": content[0],
        "content_en": content[1],
        "process_zh": process[0],
        "process_en": process[1],
        "standards_zh": standards[0],
        "standards_en": standards[1],
        "fees_zh": fees[0],
        "fees_en": fees[1],
        "hours_zh": hours_zh,
        "hours_en": hours_en,
    }


def category_list_zh(keys: Iterable[str]) -> str:
    return "、".join(CATEGORY_NAMES[k][0] for k in keys)


def category_list_en(keys: Sequence[str]) -> str:
    names = [CATEGORY_NAMES[k][1] for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --------------------------------------------------------------------------- platforms


def build_platforms(districts: list[District], clusters: list[Cluster]) -> list[Row]:
    rng = random.Random(SEED)
    by_code = {d.code: d for d in districts}
    rows: list[Row] = []

    seat = by_code["yuzhong"]
    lat, lon = jitter(rng, seat.lat, seat.lon, 0.5)
    rows.append(
        {
            "code": "muni-platform",
            "name_zh": "重庆市中小企业公共服务平台（演示）",
            "name_en": "Chongqing SME Public Service Platform (demo)",
            "tier": "municipal",
            "district_code": seat.code,
            "cluster_code": "",
            "categories": "*",
            "capacity": "100000",
            "phone": "+862360000000",
            "address_zh": "重庆市渝中区中山三路168号",
            "address_en": "No. 168 Zhongshan 3rd Road, Yuzhong District, Chongqing",
            "lat": lat,
            "lon": lon,
            "recognition": "national_demo",
            **publics(
                (
                    "全市中小企业服务枢纽：八大类服务（信息、投融资、创业、人才与培训、"
                    "技术创新和质量、管理咨询、市场开拓、法律）的信息查询、在线互动、"
                    "呼叫接转、服务导航和在线服务评价；受理监督电话和网络投诉；"
                    "任何需求的兜底服务。",
                    "The city-wide SME service hub: information search, online interaction, "
                    "call transfer, service navigation and online evaluation across all eight "
                    "categories (information, financing, startup, talent and training, "
                    "technology and quality, management consulting, market development, "
                    "legal); takes supervision calls and online complaints; last resort for "
                    "any need.",
                ),
                (
                    "1. 拨打热线、发短信或在线提交需求；2. 平台识别服务类别并登记；"
                    "3. 转派至就近的合格服务机构或区县、园区窗口平台；4. 跟踪办理进度；"
                    "5. 办结后回访，确认需求是否满足及满意度。",
                    "1) Call the hotline, text or submit online; 2) the platform identifies the "
                    "category and logs the case; 3) it is assigned to the nearest qualified "
                    "institution or district/cluster window; 4) progress is tracked; "
                    "5) after service, a revisit call confirms the need was met and asks "
                    "about satisfaction.",
                ),
                (
                    "服务时间内热线即时应答；需求2个工作小时内完成分派；"
                    "机构超时未联系的由平台督办；办结后3个工作日内回访；投诉5个工作日内答复。",
                    "Hotline answered live during opening hours; cases assigned within 2 "
                    "working hours; the platform chases any institution that misses its "
                    "deadline; revisit within 3 working days of closure; complaints answered "
                    "within 5 working days.",
                ),
                (
                    "平台公益服务全部免费；转介机构的收费项目按其公开标准执行，平台在转介前告知。",
                    "All platform services are free; fees of referred institutions follow "
                    "their published rates, which the platform states before referral.",
                ),
                H_MUNICIPAL,
            ),
        }
    )

    for index, district in enumerate(districts, start=1):
        lat, lon = jitter(rng, district.lat, district.lon, 0.5)
        roads = ROADS.get(district.code, GENERIC_ROADS)
        road_zh, road_en = roads[0]
        number = rng.randint(1, 299)
        hours = H_OFFICE_SAT if rng.random() < 0.3 else H_GOV
        rows.append(
            {
                "code": f"win-{district.code}",
                "name_zh": f"{district.name_zh}中小企业窗口服务平台（演示）",
                "name_en": f"{district.name_en} SME Window Service Platform (demo)",
                "tier": "district_window",
                "district_code": district.code,
                "cluster_code": "",
                "categories": "*",
                "capacity": "200",
                "phone": f"+8623610{index:02d}000",
                "address_zh": f"重庆市{district.name_zh}{road_zh}{number}号政务服务中心",
                "address_en": (
                    f"Government Service Centre, No. {number} {road_en}, "
                    f"{district.name_en}, Chongqing"
                ),
                "lat": lat,
                "lon": lon,
                "recognition": "none",
                **publics(
                    (
                        f"{district.name_zh}中小企业综合服务窗口：八大类服务需求受理、"
                        "政策咨询和惠企政策兑现指引、服务机构推荐和转介、"
                        "区县内服务资源协调，承接市级平台转派的需求。",
                        f"One-stop SME window for {district.name_en}: takes needs in all "
                        "eight categories, explains policies and how to claim support, "
                        "recommends and refers to service institutions, coordinates local "
                        "resources and handles cases passed down by the municipal platform.",
                    ),
                    (
                        "1. 到窗口、来电或经市级热线提出需求；2. 窗口登记并确定服务类别；"
                        "3. 可当场办结的当场办结，其余转介本地合格服务机构；"
                        "4. 跟踪办理；5. 回访。",
                        "1) Visit, call or come through the municipal hotline; 2) the window "
                        "logs the need and its category; 3) handled on the spot when "
                        "possible, otherwise referred to a qualified local institution; "
                        "4) tracking; 5) revisit.",
                    ),
                    (
                        "首问负责、一次性告知；4个工作小时内联系企业；"
                        "转介需求2个工作日内确认机构已接单；办结后回访。",
                        "First-contact responsibility and all requirements told at once; "
                        "contacts the firm within 4 working hours; confirms within 2 working "
                        "days that a referred institution has taken the case; revisit after "
                        "closure.",
                    ),
                    (
                        "窗口服务免费。",
                        "Window services are free of charge.",
                    ),
                    hours,
                ),
            }
        )

    for index, cluster in enumerate(clusters, start=1):
        district = by_code[cluster.district_code]
        lat, lon = jitter(rng, cluster.lat, cluster.lon, 0.5)
        keys = CLUSTER_CATEGORIES.get(cluster.code, DEFAULT_CLUSTER_CATEGORIES)
        roads = CLUSTER_ROADS.get(cluster.code, GENERIC_CLUSTER_ROADS)
        road_zh, road_en = roads[0]
        number = rng.randint(1, 199)
        rows.append(
            {
                "code": f"cwin-{cluster.code}",
                "name_zh": f"{cluster.name_zh}中小企业窗口服务平台（演示）",
                "name_en": f"{cluster.name_en} SME Window Service Platform (demo)",
                "tier": "cluster_window",
                "district_code": district.code,
                "cluster_code": cluster.code,
                "categories": "|".join(keys),
                "capacity": "120",
                "phone": f"+8623620{index:02d}000",
                "address_zh": (
                    f"重庆市{district.name_zh}{cluster.name_zh}{road_zh}{number}号企业服务中心"
                ),
                "address_en": (
                    f"Enterprise Service Centre, No. {number} {road_en}, {cluster.name_en}, "
                    f"{district.name_en}, Chongqing"
                ),
                "lat": lat,
                "lon": lon,
                "recognition": "none",
                **publics(
                    (
                        f"面向{cluster.name_zh}入园企业的{category_list_zh(keys)}，"
                        "入园项目政务代办，园区内服务机构推荐和对接。",
                        f"{category_list_en(keys).capitalize()} services for firms in "
                        f"{cluster.name_en}, paperwork for new projects done on their behalf, "
                        "and introductions to service institutions in the park.",
                    ),
                    (
                        "1. 园区企业来电、到窗口或经热线提出需求；2. 窗口登记；"
                        "3. 园区专员对接或转介园区内服务机构；4. 跟踪办理；5. 回访。",
                        "1) A park firm calls, visits or comes through the hotline; "
                        "2) the window logs the need; 3) a park officer handles it or refers "
                        "it to a service institution in the park; 4) tracking; 5) revisit.",
                    ),
                    (
                        "2个工作小时内联系企业；代办事项全程跟踪；"
                        "超出窗口服务范围的需求1个工作日内转区县窗口或市级平台。",
                        "Contacts the firm within 2 working hours; tracks every errand end to "
                        "end; passes needs outside its scope to the district window or "
                        "municipal platform within 1 working day.",
                    ),
                    ("窗口服务免费。", "Window services are free of charge."),
                    H_GOV,
                ),
            }
        )

    recognition = {
        "cwin-liangjiang": "national_demo",
        "win-yubei": "municipal_demo",
        "win-wanzhou": "municipal_demo",
        "win-yongchuan": "municipal_demo",
        "cwin-xiyong": "municipal_demo",
    }
    for row in rows:
        row["recognition"] = recognition.get(row["code"], row["recognition"])
        row["active"] = "true"
        row["demo"] = "true"
    return rows


# --------------------------------------------------------------------------- institutions


def kind_queue(rng: random.Random, region: str, slots: int) -> list[str]:
    """Kinds to hand out in a region, in order."""
    keys = [kind.key for kind in KINDS]
    if region in ("core", "west"):
        pool = keys + list(URBAN_EXTRA_KINDS) if region == "core" else keys
        queue: list[str] = []
        while len(queue) < slots * 2:
            block = list(pool)
            rng.shuffle(block)
            queue.extend(block)
        return queue
    first = list(REMOTE_FIRST_KINDS)
    rng.shuffle(first)
    rest = [k for k in keys if k not in first]
    queue = first
    while len(queue) < slots * 3:
        block = list(rest)
        rng.shuffle(block)
        queue.extend(block)
    return queue


def plan_kinds(rng: random.Random, districts: list[District]) -> dict[str, list[str]]:
    """Assign institution kinds to districts, region by region, round-robin."""
    by_code = {d.code: d for d in districts}
    plan: dict[str, list[str]] = {d.code: [] for d in districts}
    for region, codes in REGIONS.items():
        ordered = sorted(codes, key=lambda c: -INSTITUTION_COUNTS[c])
        slots = [
            code
            for rnd in range(max(INSTITUTION_COUNTS[c] for c in codes))
            for code in ordered
            if INSTITUTION_COUNTS[code] > rnd
        ]
        queue = kind_queue(rng, region, len(slots))
        for code in slots:
            county = by_code[code].kind != "district"
            for pos, key in enumerate(queue):
                if key in plan[code]:
                    continue
                if county and not KIND_BY_KEY[key].county_ok:
                    continue
                plan[code].append(queue.pop(pos))
                break
            else:
                raise RuntimeError(f"kind queue exhausted in {region}")
    return plan


def build_institutions(districts: list[District], clusters: list[Cluster]) -> list[Row]:
    rng = random.Random(SEED + 1)
    region_of = {code: region for region, codes in REGIONS.items() for code in codes}
    clusters_in: dict[str, list[Cluster]] = {}
    for item in clusters:
        clusters_in.setdefault(item.district_code, []).append(item)
    plan = plan_kinds(rng, districts)
    phones = rng.sample(range(80_000_000, 90_000_000), sum(len(v) for v in plan.values()))
    used_words: dict[str, set[str]] = {}
    rows: list[Row] = []

    for district in districts:
        words_here: set[str] = set()
        industries_here: set[str] = set()
        region = region_of[district.code]
        for key in plan[district.code]:
            kind = KIND_BY_KEY[key]
            taken = used_words.setdefault(key, set()) | words_here
            word_zh, word_en = rng.choice([w for w in NAME_WORDS if w[0] not in taken])
            used_words[key].add(word_zh)
            words_here.add(word_zh)
            industry_zh, industry_en = rng.choice(
                [i for i in INDUSTRIES[region] if i[0] not in industries_here]
            )
            if key == "trade_association":
                industries_here.add(industry_zh)
            bank_zh, bank_en = rng.choice(BANK_BRANDS)
            values = {
                "prefix": district.prefix_zh,
                "prefix_en": district.short_en,
                "short": district.short_zh,
                "short_en": district.short_en,
                "word": word_zh,
                "word_en": word_en,
                "bank": bank_zh,
                "bank_en": bank_en,
                "industry": industry_zh,
                "industry_en": industry_en,
            }
            for name, choices in kind.params:
                values[name] = rng.choice(choices)

            categories = list(kind.categories)
            content_zh = fill(kind.content[0], values)
            content_en = fill(kind.content[1], values)
            if kind.optional and rng.random() < 0.4:
                extra = rng.choice(kind.optional)
                categories.append(extra)
                content_zh += EXTRA_CONTENT[extra][0]
                content_en += " " + EXTRA_CONTENT[extra][1]

            cluster: Cluster | None = None
            if kind.clusterable and clusters_in.get(district.code) and rng.random() < 0.5:
                cluster = rng.choice(clusters_in[district.code])
            if cluster is not None:
                lat, lon = jitter(rng, cluster.lat, cluster.lon, CLUSTER_JITTER_KM)
            else:
                radius = JITTER_KM.get(district.code, DEFAULT_JITTER_KM)
                lat, lon = jitter(rng, district.lat, district.lon, radius)
            address_zh, address_en = make_address(rng, district, cluster)

            low, high = kind.capacity
            if region in ("northeast", "southeast") and district.code != "wanzhou":
                low, high = max(5, low // 2), max(10, high // 2)
            capacity = rng.randint(low, high)

            rows.append(
                {
                    "code": f"inst-{len(rows) + 1:04d}",
                    "name_zh": fill(kind.name_zh, values) + "（演示）",
                    "name_en": fill(kind.name_en, values) + " (demo)",
                    "tier": "institution",
                    "district_code": district.code,
                    "cluster_code": cluster.code if cluster is not None else "",
                    "categories": "|".join(categories),
                    "capacity": str(capacity),
                    "phone": f"+8623{phones[len(rows)]}",
                    "address_zh": address_zh,
                    "address_en": address_en,
                    "lat": lat,
                    "lon": lon,
                    "recognition": "none",
                    "active": "true",
                    **publics(
                        (content_zh, content_en),
                        (fill(kind.process[0], values), fill(kind.process[1], values)),
                        (fill(kind.standards[0], values), fill(kind.standards[1], values)),
                        (fill(kind.fees[0], values), fill(kind.fees[1], values)),
                        rng.choice(kind.hours),
                    ),
                    "demo": "true",
                    "_kind": key,
                }
            )

    _ensure_cluster_presence(rng, rows, districts, clusters)
    _assign_recognition(rng, rows, region_of)
    for row in rows:
        del row["_kind"]
    return rows


def _ensure_cluster_presence(
    rng: random.Random, rows: list[Row], districts: list[District], clusters: list[Cluster]
) -> None:
    """Move one clusterable institution into every cluster that has none."""
    by_code = {d.code: d for d in districts}
    for cluster in clusters:
        if any(r["cluster_code"] == cluster.code for r in rows):
            continue
        candidates = [
            r
            for r in rows
            if r["district_code"] == cluster.district_code
            and not r["cluster_code"]
            and KIND_BY_KEY[r["_kind"]].clusterable
        ]
        if not candidates:  # fall back to any institution of the district
            candidates = [
                r
                for r in rows
                if r["district_code"] == cluster.district_code and not r["cluster_code"]
            ]
        if not candidates:
            continue
        row = candidates[0]
        row["cluster_code"] = cluster.code
        row["lat"], row["lon"] = jitter(rng, cluster.lat, cluster.lon, CLUSTER_JITTER_KM)
        row["address_zh"], row["address_en"] = make_address(
            rng, by_code[cluster.district_code], cluster
        )


def _assign_recognition(rng: random.Random, rows: list[Row], region_of: dict[str, str]) -> None:
    """One national demo, four municipal demos, twenty key institutions, three inactive."""
    national = sorted(
        (
            r
            for r in rows
            if r["_kind"] in ("research_institute", "university")
            and region_of[r["district_code"]] == "core"
        ),
        key=lambda r: (-int(r["capacity"]), r["code"]),
    )
    national[0]["recognition"] = "national_demo"
    pool = sorted(
        (r for r in rows if r["recognition"] == "none"),
        key=lambda r: (-int(r["capacity"]), r["code"]),
    )
    # Municipal demos among the larger institutions, spread over regions.
    regions_done: set[str] = set()
    for row in pool:
        region = region_of[row["district_code"]]
        if region not in regions_done:
            row["recognition"] = "municipal_demo"
            regions_done.add(region)
        if len(regions_done) == 4:
            break
    remaining = [r for r in rows if r["recognition"] == "none"]
    for row in rng.sample(remaining, 20):
        row["recognition"] = "key"
    per_district: dict[str, int] = {}
    for row in rows:
        per_district[row["district_code"]] = per_district.get(row["district_code"], 0) + 1
    sleepy = [
        r for r in rows if r["recognition"] == "none" and per_district[r["district_code"]] >= 4
    ]
    for row in rng.sample(sleepy, 3):
        row["active"] = "false"


# --------------------------------------------------------------------------- output


def write_csv(path: Path, rows: list[Row]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    districts = read_districts(DATA_DIR / "districts.csv")
    clusters = read_clusters(DATA_DIR / "clusters.csv")
    platforms = build_platforms(districts, clusters)
    institutions = build_institutions(districts, clusters)
    write_csv(DATA_DIR / "platforms.csv", platforms)
    write_csv(DATA_DIR / "institutions.csv", institutions)
    print(f"wrote {len(platforms)} platforms and {len(institutions)} institutions")


if __name__ == "__main__":
    main()
