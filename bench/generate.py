"""Generate N realistic ClinicalTrials.gov v2 records by varying real ones.

Each generated study starts from a real record (``tests/data/records`` by default; add
``--templates ../shared/reference/ctgov`` for more shapes) and gets a new NCT id, title,
sponsor, status, dates, enrollment, conditions, interventions, outcomes and sites, so that no
two studies normalise to the same snapshot while every module keeps the registry's real
structure (results sections, references and derived MeSH trees ride along unchanged).

The output is a *dataset directory* that the lean bench emulator (``bench/emulator.py``) serves
without holding the records in memory:

- ``studies.jsonl``: one compact JSON study per line, in NCT id order (as the API serves them);
- ``index.tsv``: ``nct<TAB>offset<TAB>length<TAB>lastUpdatePostDate<TAB>conditions<TAB>
  keywords<TAB>interventions`` per study (the last three ``|``-separated: what the emulator's
  ``query.cond`` and ``query.intr`` search, without reading the records);
- ``meta.json``: count, seed, generator version and templates (a cache key for ``run.py``).

``--files`` writes one ``NCT….json`` per study instead, which ``tests/ctgov_emulator.py
--records DIR`` can load (fine for a few thousand studies; its in-memory store is not meant for
100,000).

``--zip`` writes a *bulk download* instead: ``out_dir/registry.zip``, one ``NCT….json`` member
per study as in ClinicalTrials.gov's full download (``trialwatch import-bulk`` reads it), written
one study at a time (constant memory, 600,000 studies included), with ``registry.json`` beside
it (the cache key: a zip with the same key is kept).

    .venv/bin/python bench/generate.py 2000 /tmp/records [--seed 1] [--files | --zip]

``--zstd-dict`` trains the zstd dictionary the store compresses raw records with
(``service/store/raw.zstdict``) on ``count`` studies generated from the real shapes:

    .venv/bin/python bench/generate.py 3000 service/store/raw.zstdict --zstd-dict \
        --seed 7 --templates tests/data/records --templates ../shared/reference/ctgov

``mutate`` makes the next version of a study (a status, enrollment, date, site or outcome
update, or a cosmetic edit of untracked text): ``run.py`` publishes it for the 1% cycle.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATES = (ROOT / "tests" / "data" / "records",)
GENERATOR_VERSION = 2  # bump when the output changes, so cached datasets are rebuilt
FIRST_NUMBER = 90_000_000  # generated ids are NCT9xxxxxxx: no clash with the real templates
MAX_TEMPLATE_BYTES = 200_000  # a 0.8 MB record as 1 template in 4 would skew every figure
NEWEST_DATE = date(2025, 12, 31)  # generated last-update dates stay before this day

Json = dict[str, Any]

# fmt: off
CONDITIONS = (
    "Type 2 Diabetes", "Hypertension", "Breast Cancer", "Non-small Cell Lung Cancer",
    "Asthma", "COPD", "Heart Failure", "Atrial Fibrillation", "Major Depressive Disorder",
    "Schizophrenia", "Alzheimer Disease", "Parkinson Disease", "Multiple Sclerosis",
    "Rheumatoid Arthritis", "Psoriasis", "Crohn Disease", "Ulcerative Colitis", "HIV Infections",
    "Hepatitis C", "COVID-19", "Influenza", "Obesity", "Chronic Kidney Disease", "Stroke",
    "Prostate Cancer", "Colorectal Cancer", "Melanoma", "Lymphoma", "Leukemia", "Osteoarthritis",
    "Migraine", "Epilepsy", "Chronic Pain", "Sickle Cell Disease", "Cystic Fibrosis",
)
DRUGS = (
    "Metformin", "Semaglutide", "Pembrolizumab", "Nivolumab", "Atezolizumab", "Dapagliflozin",
    "Empagliflozin", "Apixaban", "Rivaroxaban", "Sertraline", "Esketamine", "Lecanemab",
    "Ocrelizumab", "Adalimumab", "Ustekinumab", "Tofacitinib", "Remdesivir", "Baricitinib",
    "Tirzepatide", "Sotagliflozin", "Olaparib", "Osimertinib", "Trastuzumab Deruxtecan",
    "Placebo", "Standard of Care", "Cognitive Behavioral Therapy", "Exercise Program",
)
SPONSORS = (
    "Novo Nordisk A/S", "Pfizer", "AstraZeneca", "Merck Sharp & Dohme LLC", "Hoffmann-La Roche",
    "National Cancer Institute (NCI)", "Assistance Publique - Hôpitaux de Paris",
    "University of California, San Francisco", "Mayo Clinic", "Karolinska Institutet",
    "Charité - Universitätsmedizin Berlin", "Peking University", "Seoul National University",
    "M.D. Anderson Cancer Center", "Massachusetts General Hospital", "Novartis",
    "GlaxoSmithKline", "Sanofi", "Eli Lilly and Company", "Bayer",
)
SITES = (
    ("Boston", "Massachusetts", "02115", "United States", 42.35843, -71.05977),
    ("Houston", "Texas", "77030", "United States", 29.76328, -95.36327),
    ("Rochester", "Minnesota", "55905", "United States", 44.02163, -92.4699),
    ("Toronto", "Ontario", "M5G 2C4", "Canada", 43.70643, -79.39864),
    ("London", "", "SE1 9RT", "United Kingdom", 51.50853, -0.12574),
    ("Paris", "", "75013", "France", 48.85341, 2.3488),
    ("Berlin", "", "10117", "Germany", 52.52437, 13.41053),
    ("Madrid", "", "28046", "Spain", 40.4165, -3.70256),
    ("Milano", "", "20122", "Italy", 45.46427, 9.18951),
    ("Stockholm", "", "171 76", "Sweden", 59.32938, 18.06871),
    ("Beijing", "Beijing", "100034", "China", 39.9075, 116.39723),
    ("Seoul", "", "03080", "Korea, Republic of", 37.566, 126.9784),
    ("Tokyo", "", "104-0045", "Japan", 35.6895, 139.69171),
    ("Sydney", "New South Wales", "2050", "Australia", -33.86785, 151.20732),
    ("São Paulo", "SP", "05403-000", "Brazil", -23.5475, -46.63611),
)
FACILITY_KINDS = (
    "University Hospital", "Medical Center", "Cancer Center", "Research Site", "Clinic",
    "General Hospital", "Clinical Research Unit",
)
STOP_REASONS = (
    "Slow accrual", "Sponsor decision", "Funding ended", "Futility at interim analysis",
    "Study drug supply issue", "PI left the institution",
)
# Status shares roughly as in the registry (completed and unknown dominate).
STATUS_WEIGHTS = (
    ("COMPLETED", 45), ("UNKNOWN", 12), ("RECRUITING", 14), ("NOT_YET_RECRUITING", 5),
    ("ACTIVE_NOT_RECRUITING", 7), ("TERMINATED", 8), ("WITHDRAWN", 4),
    ("ENROLLING_BY_INVITATION", 3), ("SUSPENDED", 1), ("AVAILABLE", 1),
)
# fmt: on
STATUSES = tuple(s for s, _ in STATUS_WEIGHTS)
STATUS_CUMULATIVE = tuple(
    sum(w for _, w in STATUS_WEIGHTS[: i + 1]) for i in range(len(STATUS_WEIGHTS))
)
STOPPED = frozenset({"TERMINATED", "WITHDRAWN", "SUSPENDED"})
OPEN = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION"})


@dataclass(frozen=True)
class Template:
    """A real record, kept as JSON text so each copy is one fast ``json.loads``."""

    name: str
    text: str


# ---- templates -------------------------------------------------------------------------------


def load_templates(dirs: Sequence[Path] = DEFAULT_TEMPLATES) -> list[Template]:
    """The real study records in ``dirs`` (bare or history-wrapped), one per NCT id."""
    found: dict[str, Template] = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.json")):
            study = _study_of(json.loads(path.read_text(encoding="utf-8")))
            if study is None:
                continue
            text = json.dumps(study, ensure_ascii=False)
            nct = study["protocolSection"]["identificationModule"].get("nctId", path.stem)
            if len(text) <= MAX_TEMPLATE_BYTES and nct not in found:
                found[nct] = Template(path.name, text)
    if not found:
        raise SystemExit(f"no study records found in {', '.join(map(str, dirs))}")
    return list(found.values())


def _study_of(document: Any) -> Json | None:
    if isinstance(document, dict) and isinstance(document.get("study"), dict):
        document = document["study"]
    if isinstance(document, dict) and isinstance(document.get("protocolSection"), dict):
        return document
    return None


# ---- one study -------------------------------------------------------------------------------


def nct_id(index: int) -> str:
    """The id of generated study ``index``."""
    return f"NCT{FIRST_NUMBER + index:08d}"


def make_study(index: int, templates: Sequence[Template], seed: int = 1) -> Json:
    """Generated study ``index``: always the same for the same templates and seed."""
    rnd = random.Random(seed * 1_000_003 + index)
    study: Json = json.loads(templates[index % len(templates)].text)
    ps = study["protocolSection"]
    drugs = rnd.sample(DRUGS, 2)
    conditions = rnd.sample(CONDITIONS, rnd.choice((1, 1, 1, 2, 3)))
    _identify(ps, index, rnd, drugs[0], conditions[0])
    status = _status(ps, rnd)
    _design(ps, rnd, status)
    ps.setdefault("conditionsModule", {})["conditions"] = conditions
    ps["conditionsModule"]["keywords"] = rnd.sample(DRUGS + CONDITIONS, rnd.randint(0, 4))
    _interventions(ps, rnd, drugs)
    _outcomes(ps, rnd)
    _sponsor(ps, rnd)
    _sites(ps, rnd, status)
    return study


def _identify(ps: Json, index: int, rnd: random.Random, drug: str, condition: str) -> None:
    ident = ps.setdefault("identificationModule", {})
    ident["nctId"] = nct_id(index)
    ident.pop("nctIdAliases", None)  # an alias would point at the template's real id
    ident["orgStudyIdInfo"] = {"id": f"{drug[:3].upper()}-{rnd.randint(1000, 99999)}"}
    design = rnd.choice(("A Randomized Study", "An Open-label Trial", "A Pilot Study"))
    ident["briefTitle"] = f"{design} of {drug} in {condition} ({index})"
    ident["officialTitle"] = (
        f"{design} to Evaluate the Efficacy and Safety of {drug} in Adults With {condition}"
    )
    if ident.get("acronym"):
        ident["acronym"] = f"{drug[:4].upper()}{index % 100}"


def _status(ps: Json, rnd: random.Random) -> str:
    module = ps.setdefault("statusModule", {})
    status = _weighted_status(rnd)
    module["overallStatus"] = status
    module.pop("whyStopped", None)
    module.pop("lastKnownStatus", None)
    if status in STOPPED:
        module["whyStopped"] = rnd.choice(STOP_REASONS)
    if status == "UNKNOWN":
        module["lastKnownStatus"] = rnd.choice(("RECRUITING", "ACTIVE_NOT_RECRUITING"))
    start = date(2000, 1, 1) + timedelta(days=rnd.randint(0, 9000))
    primary = start + timedelta(days=rnd.randint(180, 2200))
    complete = primary + timedelta(days=rnd.choice((0, 0, 90, 365)))
    posted = min(NEWEST_DATE, start + timedelta(days=rnd.randint(30, 3000)))
    module["startDateStruct"] = _date_struct(start, rnd.random() < 0.3, posted)
    module["primaryCompletionDateStruct"] = _date_struct(primary, False, posted)
    module["completionDateStruct"] = _date_struct(complete, False, posted)
    module["lastUpdatePostDateStruct"] = {"date": posted.isoformat(), "type": "ACTUAL"}
    module["lastUpdateSubmitDate"] = (posted - timedelta(days=1)).isoformat()
    return status


def _weighted_status(rnd: random.Random) -> str:
    pick = rnd.randrange(STATUS_CUMULATIVE[-1])
    return next(s for s, limit in zip(STATUSES, STATUS_CUMULATIVE, strict=True) if pick < limit)


def _date_struct(day: date, month_only: bool, posted: date) -> Json:
    text = day.isoformat()[:7] if month_only else day.isoformat()
    return {"date": text, "type": "ACTUAL" if day <= posted else "ESTIMATED"}


def _design(ps: Json, rnd: random.Random, status: str) -> None:
    module = ps.setdefault("designModule", {})
    # Enrollment is log-normal in the registry: most studies small, a few very large.
    count = 0 if status == "WITHDRAWN" else max(1, int(math.exp(rnd.gauss(4.4, 1.3))))
    actual = status not in OPEN and status != "NOT_YET_RECRUITING"
    module["enrollmentInfo"] = {"count": count, "type": "ACTUAL" if actual else "ESTIMATED"}
    if module.get("studyType") == "INTERVENTIONAL":
        module["phases"] = rnd.choice((["PHASE1"], ["PHASE2"], ["PHASE3"], ["PHASE1", "PHASE2"]))


def _interventions(ps: Json, rnd: random.Random, drugs: list[str]) -> None:
    module = ps.get("armsInterventionsModule")
    if not isinstance(module, dict):
        return
    renamed: dict[str, str] = {}
    for i, item in enumerate(module.get("interventions") or []):
        new_name = drugs[i % len(drugs)] if i < len(drugs) else f"{rnd.choice(DRUGS)} {i}"
        kind = str(item.get("type", "OTHER")).replace("_", " ").title()
        renamed[f"{kind}: {item.get('name', '')}"] = f"{kind}: {new_name}"
        item["name"] = new_name
    for arm in module.get("armGroups") or []:
        names = arm.get("interventionNames") or []
        arm["interventionNames"] = [renamed.get(name, name) for name in names]


def _outcomes(ps: Json, rnd: random.Random) -> None:
    module = ps.get("outcomesModule")
    if not isinstance(module, dict):
        return
    for key in ("primaryOutcomes", "secondaryOutcomes", "otherOutcomes"):
        outcomes = module.get(key) or []
        if key != "primaryOutcomes" and len(outcomes) > 2 and rnd.random() < 0.5:
            del outcomes[rnd.randrange(len(outcomes))]  # studies differ in how many they list
        for outcome in outcomes:
            outcome["timeFrame"] = rnd.choice(
                (
                    f"Week {rnd.randint(1, 104)}",
                    f"{rnd.randint(1, 36)} months",
                    "Baseline to 1 year",
                )
            )


def _sponsor(ps: Json, rnd: random.Random) -> None:
    module = ps.setdefault("sponsorCollaboratorsModule", {})
    module["leadSponsor"] = {"name": rnd.choice(SPONSORS), "class": "OTHER"}
    if rnd.random() < 0.3:
        module["collaborators"] = [{"name": rnd.choice(SPONSORS), "class": "INDUSTRY"}]
    else:
        module.pop("collaborators", None)


def _sites(ps: Json, rnd: random.Random, status: str) -> None:
    module = ps.setdefault("contactsLocationsModule", {})
    # Most studies have one site; multinational ones have dozens to hundreds.
    sizes = (1, rnd.randint(2, 10), rnd.randint(11, 60), rnd.randint(61, 200))
    count = rnd.choices(sizes, weights=(60, 25, 12, 3))[0]
    module["locations"] = [_site(rnd, status, n) for n in range(count)]


def _site(rnd: random.Random, status: str, number: int) -> Json:
    city, state, zip_code, country, lat, lon = rnd.choice(SITES)
    site: Json = {"facility": f"{city} {rnd.choice(FACILITY_KINDS)} {number + 1}"}
    if status in OPEN or status == "ACTIVE_NOT_RECRUITING":
        site["status"] = "RECRUITING" if status in OPEN else "ACTIVE_NOT_RECRUITING"
    site.update({"city": city, "zip": zip_code, "country": country})
    if state:
        site["state"] = state
    site["geoPoint"] = {"lat": lat, "lon": lon}
    return site


# ---- the next version of a study -------------------------------------------------------------


def mutate(study: Json, rnd: random.Random) -> Json:
    """The next version of ``study`` (a copy): one registry-like update. About one in five
    touches only untracked text (a contact, the detailed description), as many real updates
    do; the rest change a tracked field. The caller sets the new last-update date."""
    new: Json = json.loads(json.dumps(study))
    ps = new["protocolSection"]
    kind = rnd.choices(
        ("status", "enrollment", "date", "site", "outcome", "cosmetic"), (20, 20, 20, 10, 10, 20)
    )[0]
    if kind == "status":
        status = ps["statusModule"]
        status["overallStatus"] = (
            "COMPLETED" if status["overallStatus"] != "COMPLETED" else "UNKNOWN"
        )
        status.pop("whyStopped", None)
    elif kind == "enrollment":
        info = ps.setdefault("designModule", {}).setdefault("enrollmentInfo", {"count": 0})
        info["count"] = int(info.get("count") or 0) + rnd.randint(1, 40)
        info["type"] = "ACTUAL"
    elif kind == "date":
        struct = ps["statusModule"]["primaryCompletionDateStruct"]
        moved = date.fromisoformat(struct["date"][:7] + "-01") + timedelta(
            days=rnd.randint(40, 400)
        )
        struct["date"] = moved.isoformat()
    elif kind == "site":
        locations = ps.setdefault("contactsLocationsModule", {}).setdefault("locations", [])
        locations.append(_site(rnd, "RECRUITING", len(locations)))
    elif kind == "outcome":
        outcomes = ps.setdefault("outcomesModule", {}).setdefault("primaryOutcomes", [])
        if outcomes:
            outcomes[0]["timeFrame"] = f"Week {rnd.randint(105, 200)}"
        else:
            outcomes.append({"measure": "Overall survival", "timeFrame": "5 years"})
    else:
        description = ps.setdefault("descriptionModule", {})
        description["detailedDescription"] = (
            str(description.get("detailedDescription", "")) + f" Amended {rnd.randint(1, 9999)}."
        )
    return new


# ---- datasets ----------------------------------------------------------------------------------


def iter_studies(
    count: int, templates: Sequence[Template], seed: int = 1
) -> Iterator[tuple[str, bytes, str, Json]]:
    """``(nct, compact JSON bytes, lastUpdatePostDate, study)`` for studies 0..count-1, in id
    order."""
    for index in range(count):
        study = make_study(index, templates, seed)
        body = json.dumps(study, ensure_ascii=False, separators=(",", ":")).encode()
        posted = study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
        yield nct_id(index), body, posted, study


def searched_terms(study: Json) -> tuple[list[str], list[str], list[str]]:
    """What ``query.cond`` and ``query.intr`` search in a study, as the index keeps it:
    its conditions, keywords and intervention names."""
    ps = study.get("protocolSection") or {}
    module = ps.get("conditionsModule") or {}
    interventions = (ps.get("armsInterventionsModule") or {}).get("interventions") or []
    names = [str(item.get("name", "")) for item in interventions if isinstance(item, dict)]
    return list(module.get("conditions") or []), list(module.get("keywords") or []), names


def index_line(nct: str, offset: int, length: int, posted: str, study: Json) -> str:
    """One line of ``index.tsv`` (tabs, newlines and ``|`` in the terms become spaces)."""
    terms = ("|".join(_clean(t) for t in group) for group in searched_terms(study))
    return "\t".join([nct, str(offset), str(length), posted, *terms]) + "\n"


def _clean(term: str) -> str:
    return " ".join(term.replace("|", " ").split())


def write_dataset(
    count: int, out_dir: Path, templates: Sequence[Template], seed: int = 1
) -> dict[str, Any]:
    """Write the dataset directory (see the module docstring); returns its ``meta.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    offset = 0
    with (out_dir / "studies.jsonl").open("wb") as data, (out_dir / "index.tsv").open("w") as idx:
        for nct, body, posted, study in iter_studies(count, templates, seed):
            data.write(body + b"\n")
            idx.write(index_line(nct, offset, len(body), posted, study))
            offset += len(body) + 1
    meta = dataset_key(count, templates, seed) | {"bytes": offset}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def write_files(count: int, out_dir: Path, templates: Sequence[Template], seed: int = 1) -> None:
    """One ``NCT….json`` per study, for ``tests/ctgov_emulator.py --records``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for nct, body, _posted, _study in iter_studies(count, templates, seed):
        (out_dir / f"{nct}.json").write_bytes(body)


def write_bulk_zip(
    count: int, out_dir: Path, templates: Sequence[Template], seed: int = 1
) -> dict[str, Any]:
    """``out_dir/registry.zip``: the registry's bulk download, one ``NCT….json`` per study,
    streamed member by member (nothing but the current study in memory). Written under a
    temporary name and renamed when complete, so an interrupted run never leaves a zip that
    looks finished. Returns its key (``registry.json``), with the zip's size."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final, partial = out_dir / "registry.zip", out_dir / "registry.zip.partial"
    # Deflate level 1: a 17 GB registry compresses in a minute or two instead of six, and
    # reading it back (what import-bulk is timed on) costs the same at any level.
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for nct, body, _posted, _study in iter_studies(count, templates, seed):
            archive.writestr(f"{nct}.json", body)
    os.replace(partial, final)
    meta = dataset_key(count, templates, seed) | {"zip_bytes": final.stat().st_size}
    (out_dir / "registry.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def ensure_bulk_zip(
    count: int, out_dir: Path, templates: Sequence[Template], seed: int = 1
) -> dict[str, Any]:
    """The bulk zip in ``out_dir``, generated only when missing or made with other settings."""
    key_path, zip_path = out_dir / "registry.json", out_dir / "registry.zip"
    if key_path.exists() and zip_path.exists():
        meta: dict[str, Any] = json.loads(key_path.read_text())
        if {k: meta.get(k) for k in ("count", "seed", "generator", "templates")} == dataset_key(
            count, templates, seed
        ):
            return meta
        key_path.unlink()
    return write_bulk_zip(count, out_dir, templates, seed)


DICTIONARY_BYTES = 112 * 1024  # zstd's default; 64 or 256 KiB did no better on unseen shapes


def train_dictionary(
    count: int, out_path: Path, templates: Sequence[Template], seed: int = 7
) -> int:
    """Train the store's zstd dictionary on ``count`` generated studies, serialised as the
    store serialises a raw record (sorted keys, compact); returns its size in bytes."""
    import zstandard  # the bench's generator runs without it otherwise

    samples = [
        json.dumps(study, sort_keys=True, separators=(",", ":")).encode()
        for _nct, _body, _posted, study in iter_studies(count, templates, seed)
    ]
    data = zstandard.train_dictionary(DICTIONARY_BYTES, samples).as_bytes()
    out_path.write_bytes(data)
    return len(data)


def dataset_key(count: int, templates: Sequence[Template], seed: int) -> dict[str, Any]:
    """What identifies a dataset: a cached directory with the same key is reused."""
    return {
        "count": count,
        "seed": seed,
        "generator": GENERATOR_VERSION,
        "templates": [t.name for t in templates],
    }


def ensure_dataset(
    count: int, out_dir: Path, templates: Sequence[Template], seed: int = 1
) -> dict[str, Any]:
    """The dataset in ``out_dir``, generated only when missing or made with other settings."""
    meta_path = out_dir / "meta.json"
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in ("count", "seed", "generator", "templates")} == dataset_key(
            count, templates, seed
        ):
            return meta
        meta_path.unlink()  # stale: the next write must not be taken for finished early
    return write_dataset(count, out_dir, templates, seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="how many studies")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--templates", type=Path, action="append", help="records to vary (repeatable)"
    )
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--files", action="store_true", help="one NCT….json file per study")
    shape.add_argument("--zip", action="store_true", help="a bulk download: out_dir/registry.zip")
    shape.add_argument(
        "--zstd-dict", action="store_true", help="train the store's zstd dictionary: out_dir is it"
    )
    args = parser.parse_args(argv)
    templates = load_templates(args.templates or DEFAULT_TEMPLATES)
    if args.zstd_dict:
        size = train_dictionary(args.count, args.out_dir, templates, args.seed)
        print(f"{size:,}-byte dictionary from {args.count} studies written to {args.out_dir}")
        return
    if args.zip:
        meta = write_bulk_zip(args.count, args.out_dir, templates, args.seed)
        print(f"{args.count} studies, {meta['zip_bytes'] / 1e6:.1f} MB zipped, in {args.out_dir}")
        return
    if args.files:
        write_files(args.count, args.out_dir, templates, args.seed)
        print(f"{args.count} studies written to {args.out_dir}/NCT*.json")
        return
    meta = write_dataset(args.count, args.out_dir, templates, args.seed)
    print(f"{args.count} studies, {meta['bytes'] / 1e6:.1f} MB, written to {args.out_dir}")


if __name__ == "__main__":
    main()
