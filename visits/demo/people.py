"""The people of the demo population: names (English and Chinese), contact data, allergies.

Names, phones, e-mail addresses, postal addresses and national ids look real and are unique where
real ones are, but belong to no one: this is the PHI the app encrypts and searches blindly.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np

from .conditions import CODES
from .population import SyntheticAllergy, SyntheticPatient
from .sampling import pick

_EN_FEMALE = (
    "Olivia",
    "Emma",
    "Amelia",
    "Sophie",
    "Charlotte",
    "Grace",
    "Emily",
    "Hannah",
    "Jessica",
    "Lucy",
    "Chloe",
    "Ella",
    "Isabel",
    "Mia",
    "Ruby",
    "Sarah",
    "Rachel",
    "Margaret",
    "Susan",
    "Helen",
    "Karen",
    "Laura",
    "Rebecca",
    "Joanne",
    "Catherine",
    "Patricia",
    "Linda",
    "Elizabeth",
    "Anne",
    "Victoria",
    "Megan",
    "Alice",
    "Harriet",
    "Eleanor",
    "Jennifer",
    "Barbara",
    "Dorothy",
    "Jean",
    "Kathleen",
    "Natalie",
)
_EN_MALE = (
    "Oliver",
    "George",
    "Harry",
    "Jack",
    "Thomas",
    "James",
    "William",
    "Daniel",
    "David",
    "Michael",
    "Richard",
    "Robert",
    "John",
    "Peter",
    "Paul",
    "Andrew",
    "Mark",
    "Stephen",
    "Christopher",
    "Matthew",
    "Samuel",
    "Joseph",
    "Benjamin",
    "Edward",
    "Henry",
    "Charles",
    "Anthony",
    "Kevin",
    "Brian",
    "Gary",
    "Ian",
    "Alan",
    "Graham",
    "Simon",
    "Adam",
    "Luke",
    "Ryan",
    "Nathan",
    "Patrick",
    "Frank",
)
_EN_FAMILY = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Hughes",
    "Edwards",
    "Turner",
    "Harris",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "Scott",
    "Young",
    "Mitchell",
    "Bennett",
    "Carter",
    "Shaw",
    "Murphy",
    "O'Brien",
    "Fletcher",
    "Kelly",
    "Price",
)
_ZH_FEMALE = (
    "Mei",
    "Xiu Ying",
    "Li Na",
    "Jing",
    "Fang",
    "Yan",
    "Hui",
    "Ling",
    "Xin Yi",
    "Yu Tong",
    "Zi Han",
    "Hong",
    "Min",
    "Lan",
    "Qian",
    "Ying",
    "Xiao Hong",
    "Shu Fen",
    "Wen",
    "Jia Hui",
    "Yue",
    "Ting",
    "Dan",
    "Lei Lei",
)
_ZH_MALE = (
    "Wei",
    "Jun",
    "Hao",
    "Lei",
    "Qiang",
    "Ming",
    "Jian",
    "Yong",
    "Tao",
    "Bo",
    "Hao Ran",
    "Zi Xuan",
    "Yu Hang",
    "Jie",
    "Peng",
    "Chao",
    "Gang",
    "Bin",
    "Xiang",
    "Zhi Qiang",
    "Kai",
    "Long",
    "Feng",
    "Liang",
)
_ZH_FAMILY = (
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Gao",
    "Luo",
    "Zheng",
    "Liang",
    "Xie",
    "Tang",
    "Han",
    "Cao",
    "Deng",
    "Feng",
    "Song",
    "Ye",
)
_STREETS = (
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Park Avenue",
    "Mill Lane",
    "Queen Street",
    "King's Road",
    "Green Lane",
    "Manor Way",
    "Elm Grove",
    "Oak Close",
    "Riverside Drive",
    "Castle Street",
    "London Road",
    "Nanjing Road",
    "Chapel Street",
    "Orchard Way",
    "The Crescent",
    "North Street",
)
_CITIES = (
    ("London", "E"),
    ("Manchester", "M"),
    ("Leeds", "LS"),
    ("Bristol", "BS"),
    ("Birmingham", "B"),
    ("Sheffield", "S"),
    ("Liverpool", "L"),
    ("Nottingham", "NG"),
    ("Cambridge", "CB"),
    ("Oxford", "OX"),
    ("Edinburgh", "EH"),
    ("Glasgow", "G"),
    ("Cardiff", "CF"),
    ("Newcastle", "NE"),
    ("Leicester", "LE"),
)
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_RELATIONS = (
    "spouse",
    "daughter",
    "son",
    "partner",
    "mother",
    "father",
    "sister",
    "brother",
    "friend",
    "wife",
    "husband",
)
_NI_LETTERS = "ABCEGHJKLMNPRSTWXYZ"

# substance -> (reactions, severity weights mild/moderate/severe)
_ALLERGENS: tuple[tuple[str, float, tuple[str, ...], tuple[float, float, float]], ...] = (
    ("Penicillin", 0.30, ("rash", "urticaria", "anaphylaxis", "angioedema"), (0.45, 0.35, 0.2)),
    ("Amoxicillin", 0.08, ("rash", "urticaria"), (0.6, 0.35, 0.05)),
    ("Sulfonamides", 0.1, ("rash", "Stevens-Johnson syndrome", "fever"), (0.55, 0.3, 0.15)),
    ("Aspirin", 0.08, ("bronchospasm", "urticaria", "GI bleeding"), (0.4, 0.4, 0.2)),
    ("NSAIDs", 0.1, ("bronchospasm", "angioedema", "dyspepsia"), (0.45, 0.4, 0.15)),
    ("Latex", 0.06, ("contact dermatitis", "urticaria", "anaphylaxis"), (0.5, 0.3, 0.2)),
    ("Codeine", 0.07, ("nausea", "pruritus", "vomiting"), (0.7, 0.3, 0.0)),
    ("Peanuts", 0.06, ("anaphylaxis", "urticaria", "lip swelling"), (0.2, 0.4, 0.4)),
    ("Shellfish", 0.05, ("urticaria", "vomiting", "anaphylaxis"), (0.4, 0.4, 0.2)),
    ("Iodinated contrast", 0.04, ("urticaria", "flushing", "bronchospasm"), (0.5, 0.35, 0.15)),
    ("Morphine", 0.03, ("pruritus", "nausea", "hypotension"), (0.6, 0.35, 0.05)),
    ("Erythromycin", 0.03, ("GI upset", "rash"), (0.7, 0.3, 0.0)),
)
_ALLERGEN_P = np.array([a[1] for a in _ALLERGENS])
_ALLERGEN_P = _ALLERGEN_P / _ALLERGEN_P.sum()


def draw_patients(
    rng: np.random.Generator,
    n: int,
    female: np.ndarray,
    age_now: np.ndarray,
    end: datetime,
    index_cond: np.ndarray,
) -> list[SyntheticPatient]:
    """``n`` patients; every random draw happens here, up front, in a fixed order."""
    chinese = rng.random(n) < 0.4
    u = rng.random((n, 16)).tolist()
    mrn_numbers = (rng.choice(90_000_000, size=n, replace=False) + 10_000_000).tolist()
    phone_digits = rng.integers(0, 10**9, size=n).tolist()
    contact_digits = rng.integers(0, 10**9, size=n).tolist()
    birth_offsets = np.floor(age_now * 365.25).astype(int).tolist()
    n_allergies = rng.choice(4, size=n, p=[0.74, 0.19, 0.05, 0.02]).tolist()
    # asthma patients more often aspirin/NSAID sensitive
    asthma = (index_cond == CODES.index("J45.9")).tolist()
    allergen_idx = rng.choice(len(_ALLERGENS), size=(n, 3), p=_ALLERGEN_P).tolist()
    nid_numbers = rng.permutation(n).tolist()
    end_date = end.date()
    fem = female.tolist()
    ch = chinese.tolist()
    used_emails: set[str] = set()
    patients = []
    for i in range(n):
        r = u[i]
        given, family = _name(r, chinese=ch[i], female=fem[i])
        birth = end_date - timedelta(days=birth_offsets[i])
        email = _email(r, given, family, birth, i, used_emails)
        used_emails.add(email)
        patients.append(
            SyntheticPatient(
                key=i + 1,
                mrn=f"MRN{mrn_numbers[i]:08d}",
                given_name=given,
                family_name=family,
                sex="female" if fem[i] else "male",
                birth_date=birth,
                phone=_phone(phone_digits[i], international=r[2] < 0.6),
                email=email,
                address=_address(r),
                # unique national id: a bijection of the patient index onto 0..10**7-1
                national_id=_national_id(
                    r, (nid_numbers[i] * 7919 + 123457) % 10**7, birth, chinese=ch[i]
                ),
                emergency_contact=_emergency_contact(r, family, contact_digits[i], chinese=ch[i]),
                allergies=_allergies(r, n_allergies[i], allergen_idx[i], asthma=asthma[i]),
            )
        )
    return patients


def _name(r: list[float], *, chinese: bool, female: bool) -> tuple[str, str]:
    if chinese:
        return pick(_ZH_FEMALE if female else _ZH_MALE, r[0]), pick(_ZH_FAMILY, r[1])
    return pick(_EN_FEMALE if female else _EN_MALE, r[0]), pick(_EN_FAMILY, r[1])


def _phone(digits: int, *, international: bool) -> str:
    number = f"{digits // 10**6 % 1000:03d} {digits % 10**6:06d}"
    return f"+44 7{number}" if international else f"07{number}"


def _email(r: list[float], given: str, family: str, birth: date, i: int, used: set[str]) -> str:
    local = f"{given.replace(' ', '').lower()}.{family.replace(chr(39), '').lower()}"
    email = f"{local}@{pick(_EMAIL_DOMAINS, r[3])}"
    if email in used or r[4] < 0.5:
        email = f"{local}{birth.year % 100:02d}{i % 1000}@{pick(_EMAIL_DOMAINS, r[3])}"
    return email


def _address(r: list[float]) -> str:
    city, area = pick(_CITIES, r[5])
    house = 1 + int(r[6] * 180)
    postcode = (
        f"{area}{1 + int(r[7] * 20)} {int(r[8] * 10)}"
        f"{chr(65 + int(r[9] * 26))}{chr(65 + int(r[10] * 26))}"
    )
    flat = f"Flat {1 + int(r[11] * 12)}, " if r[11] < 0.15 else ""
    return f"{flat}{house} {pick(_STREETS, r[12])}, {city} {postcode}"


def _national_id(r: list[float], serial: int, birth: date, *, chinese: bool) -> str:
    if chinese:  # PRC resident id: region, birth date, sequence, ISO 7064 check digit
        body = f"{110000 + serial // 1000:06d}{birth:%Y%m%d}{serial % 1000:03d}"
        return body + _cn_check_digit(body)
    # UK National Insurance style: the first letter carries the top digit
    return (
        f"{_NI_LETTERS[serial // 10**6]}"
        f"{_NI_LETTERS[int(r[14] * len(_NI_LETTERS))]}"
        f"{serial % 10**6:06d}{'ABCD'[serial % 4]}"
    )


def _emergency_contact(r: list[float], family: str, digits: int, *, chinese: bool) -> str:
    relation = pick(_RELATIONS, r[15])
    if chinese:
        name = f"{pick(_ZH_FAMILY, r[1])} {pick(_ZH_FEMALE + _ZH_MALE, r[14])}"
    else:
        name = f"{pick(_EN_FEMALE + _EN_MALE, r[14])} {family}"
    return f"{name} ({relation}) {_phone(digits, international=False)}"


def _allergies(
    r: list[float], k: int, allergen_idx: list[int], *, asthma: bool
) -> tuple[SyntheticAllergy, ...]:
    allergies: list[SyntheticAllergy] = []
    if asthma and k == 0 and r[8] < 0.15:
        allergies.append(SyntheticAllergy("Aspirin", "bronchospasm", "moderate"))
    seen = {a.substance for a in allergies}
    for j in range(k):
        substance, _, reactions, sev_w = _ALLERGENS[allergen_idx[j]]
        if substance in seen:
            continue
        seen.add(substance)
        reaction = pick(reactions, r[(j * 3 + 2) % 16])
        if reaction in ("anaphylaxis", "Stevens-Johnson syndrome", "angioedema"):
            severity = "severe"
        else:
            rs = r[(j * 5 + 7) % 16]
            severity = (
                "mild" if rs < sev_w[0] else ("moderate" if rs < sev_w[0] + sev_w[1] else "severe")
            )
        allergies.append(SyntheticAllergy(substance, reaction, severity))
    return tuple(allergies)


def _cn_check_digit(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(body17, weights, strict=True))
    return "10X98765432"[total % 11]
