"""The import rules of the design: the heart stays pure, SQLAlchemy stays in the store."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "service"

# module -> what it may import from the package (architecture.md, "Modules")
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "models": set(),
    "ids": {"errors"},
    "text": set(),
    "clock": {"errors"},
    "registry.ctgov_normalise": {
        "models",
        "errors",
        "text",
        "links",
        "registry.ctgov_fields",
        "registry.shape",
    },
    "registry.shape": {"errors"},
    "links": {"ids", "models"},
    "outcome_lists": {"models", "text"},
    "diff": {"models", "errors", "text", "outcome_lists", "registry.catalog", "registry.source"},
    "registry.ctgov_fields": {"registry.source"},
    "registry.source": {"models"},
    "registry.catalog": {"errors", "links", "models", "registry.source"},
    "registry.euctr.text": set(),
    "registry.euctr.fields": {"registry.source"},
    "registry.euctr.normalise": {
        "errors",
        "models",
        "text",
        "registry.euctr.fields",
        "registry.euctr.text",
    },
    "registry.euctr.tls": {"registry.tls"},
    "registry.euctr.client": {
        "errors",
        "settings",
        "registry.polite",
        "registry.source",
        "registry.euctr.fields",
        "registry.euctr.normalise",
        "registry.euctr.text",
        "registry.euctr.tls",
    },
    "registry.ctis.fields": {"models", "registry.source"},
    "registry.ctis.normalise": {"models", "errors", "text", "registry.ctis", "registry.shape"},
    "registry.ctis.client": {
        "errors",
        "safeload",
        "settings",
        "registry.polite",
        "registry.source",
        "registry.ctis.fields",
    },
    "registry.isrctn.fields": {"models", "registry.source"},
    "registry.isrctn.xml": {"errors"},
    "registry.isrctn.normalise": {
        "errors",
        "models",
        "text",
        "registry.shape",
        "registry.isrctn.fields",
        "registry.isrctn.xml",
    },
    "registry.isrctn.client": {
        "errors",
        "settings",
        "registry.polite",
        "registry.source",
        "registry.isrctn.fields",
        "registry.isrctn.xml",
    },
    "report": {"report.charts", "report.display", "report.load", "report.view"},
    "report.load": {
        "errors",
        "findings.stored",
        "models",
        "registry.catalog",
        "seeds.compare",
        "seeds.model",
        "store",
    },
    "report.charts": {"diff", "findings.rules", "models", "report.load", "svg", "templates"},
    "report.view": {
        "diff",
        "findings.words",
        "models",
        "notify.render",
        "report.charts",
        "report.load",
        "svg",
    },
    "report.display": {"report.load", "report.view", "templates"},
    "registry.sourced": {"errors", "registry.base", "registry.catalog", "registry.source"},
    "registry.polite": {
        "__init__",
        "deadline",
        "deadline_http",
        "errors",
        "registry.tls",
        "settings",
    },
    "settings": {
        "errors",
        "models",
        "cron",
        "safeload",
        "urls",
        "findings.rules",
        "registry.ctgov_fields",
        "registry.ctis.fields",
        "registry.euctr.fields",
        "registry.isrctn.fields",
    },
    "cron": set(),
    "subscriptions": {"models", "settings", "cron"},
    "registry.ctgov": {
        "errors",
        "settings",
        "__init__",
        "safeload",
        "registry.base",
        "registry.polite",
        "registry.tls",
        "deadline",
        "deadline_http",
    },
    "registry.tls": set(),
    # whole-exchange deadlines: stdlib only; the httpx side of them knows no registry
    "deadline": set(),
    "deadline_http": {"deadline"},
    # the store package (service/store/): one module per table family over a shared base
    "store": {
        "store.backfill",
        "store.base",
        "store.baseline",
        "store.browse_records",
        "store.browse_changes",
        "store.changes",
        "store.findings",
        "store.meta",
        "store.outbox",
        "store.records",
        "store.searches",
        "store.seeds",
        "store.tables",
    },
    "store.base": {"errors", "migrate", "urls"},
    "store.tables": {"store.base"},
    "store.rows": {"errors", "models", "store.tables", "text"},
    "store.outbox": {"errors", "models", "store.base", "store.rows", "store.tables"},
    "store.records": {
        "errors",
        "models",
        "store.base",
        "store.batches",
        "store.outbox",
        "store.rows",
        "store.tables",
    },
    "store.batches": {
        "errors",
        "models",
        "store.base",
        "store.outbox",
        "store.records",
        "store.rows",
        "store.tables",
    },
    "store.backfill": {
        "models",
        "store.base",
        "store.outbox",
        "store.records",
        "store.rows",
        "store.tables",
        "text",
    },
    "store.changes": {
        "errors",
        "models",
        "store.base",
        "store.batches",
        "store.rows",
        "store.tables",
    },
    "store.findings": {
        "errors",
        "findings.rules",
        "findings.stored",
        "models",
        "store.base",
        "store.batches",
        "store.rows",
        "store.tables",
        "text",
    },
    "store.browse_changes": {
        "findings.stored",
        "models",
        "store.base",
        "store.findings",
        "store.rows",
        "store.tables",
    },
    "store.browse_records": {"errors", "models", "store.base", "store.records", "store.tables"},
    "store.searches": {"errors", "store.base", "store.tables"},
    "store.seeds": {"errors", "store.base", "store.tables"},
    "store.meta": {"errors", "store.base", "store.tables"},
    "store.baseline": {
        "models",
        "store.base",
        "store.batches",
        "store.records",
        "store.rows",
        "store.tables",
    },
    "safeload": {"errors"},
    "quick_exit": set(),
    "urls": set(),
    "monitor": {
        "backfill",
        "clock",
        "cycle.context",
        "cycle.fetch",
        "cycle.result",
        "cycle.review",
        "cycle.settle",
        "cycle.store",
        "cycle.tally",
        "findings.keeper",
        "history",
        "models",
        "registry.base",
        "searches",
        "settings",
        "store",
        "subscriptions",
        "text",
    },
    "problems": {"errors"},
    "trials": {"diff", "models", "registry.catalog"},
    "trial_store": {"models", "store", "trials"},
    "findings.disagree": {"findings.rules", "trials"},
    "findings.eu_rules": {
        "findings.rules",
        "models",
        "registry.ctis",
        "registry.ctis.normalise",
        "registry.euctr",
        "registry.euctr.normalise",
    },
    "findings.trials_keeper": {
        "findings.disagree",
        "findings.keeper",
        "findings.rules",
        "findings.stored",
        "models",
        "registry.catalog",
        "settings",
        "store",
        "trial_store",
        "trials",
    },
    "cycle": set(),
    "cycle.result": {"models", "problems"},
    "cycle.tally": {"problems"},
    "cycle.context": {
        "clock",
        "findings.keeper",
        "history",
        "models",
        "registry.base",
        "settings",
        "store",
        "subscriptions",
    },
    "cycle.fetch": {"cycle.context", "errors", "problems"},
    "cycle.settle": {
        "cycle.context",
        "cycle.fetch",
        "errors",
        "problems",
        "registry.base",
        "registry.source",
        "settings",
    },
    "cycle.store": {
        "cycle.context",
        "cycle.fetch",
        "cycle.tally",
        "diff",
        "errors",
        "history",
        "models",
        "problems",
        "registry.catalog",
        "store",
    },
    "cycle.review": {"cycle.context", "findings.keeper", "models", "problems"},
    "searches": {"errors", "models", "registry.base", "store", "problems"},
    "backfill": {
        "deadline",
        "diff",
        "findings.keeper",
        "history",
        "models",
        "settings",
        "store",
        "subscriptions",
        "problems",
    },
    "registry.ctgov_facts": set(),
    "findings.rules": {"registry.ctgov_facts", "models"},
    "findings.stored": {"models"},
    "findings.words": {"diff"},
    "findings.keeper": {
        "errors",
        "findings.disagree",
        "findings.eu_rules",
        "registry.catalog",
        "registry.ctgov_facts",
        "findings.rules",
        "findings.stored",
        "models",
        "settings",
        "store",
        "problems",
        "text",
    },
    "history": {"errors", "registry.base", "registry.ctgov_normalise", "store", "problems"},
    "registry.base": {"errors"},
    "notify.render": {
        "models",
        "diff",
        "errors",
        "templates",
        "registry.catalog",
        "findings.words",
    },
    "svg": set(),
    "outbox": {"store", "notify.base", "notify.render", "settings", "errors", "clock"},
}
PURE = {
    "trials",
    "problems",
    "cycle.tally",
    "cycle.result",
    "links",
    "registry.shape",
    "registry.isrctn.fields",
    "registry.isrctn.normalise",
    "registry.euctr.text",
    "registry.euctr.normalise",
    "registry.euctr.fields",
    "registry.ctis.normalise",
    "registry.ctis.fields",
    "registry.ctgov_normalise",
    "registry.ctgov_fields",
    "registry.source",
    "diff",
    "text",
    "models",
    "registry.ctgov_facts",
    "findings.rules",
    "findings.eu_rules",
    "findings.disagree",
    "findings.words",
}
IMPURE_MODULES = {"httpx", "sqlalchemy", "alembic", "socket", "time", "os", "random", "smtplib"}


def source(module: str) -> Path:
    """The file of ``module``: ``a/b.py``, or ``a/b/__init__.py`` for a package."""
    path = PACKAGE / (module.replace(".", "/") + ".py")
    return path if path.exists() else PACKAGE / module.replace(".", "/") / "__init__.py"


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(package modules, outside top-level modules) imported by ``module``."""
    tree = ast.parse(source(module).read_text())
    inside: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "service":
                inside.update("__init__" for _ in node.names)
            elif node.module.startswith("service."):
                inside.add(node.module.removeprefix("service."))
            else:
                outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
    return inside, outside


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_a_module_imports_only_what_the_design_allows(module: str) -> None:
    inside, _ = imports_of(module)
    assert inside <= ALLOWED[module], f"{module} imports {sorted(inside - ALLOWED[module])}"


@pytest.mark.parametrize("module", sorted(PURE))
def test_the_normaliser_and_diff_do_no_io_and_read_no_clock(module: str) -> None:
    _, outside = imports_of(module)
    assert not outside & IMPURE_MODULES, f"{module} imports {sorted(outside & IMPURE_MODULES)}"
    assert "datetime.now" not in (PACKAGE / (module.replace(".", "/") + ".py")).read_text()


def test_only_the_ctgov_modules_know_clinicaltrials_govs_urls_and_field_paths() -> None:
    """ClinicalTrials.gov's addresses and the paths of its record live in
    ``service/registry/ctgov*.py``: a second registry must not mean editing the rest."""
    knowing = re.compile(r"clinicaltrials\.gov/|protocolSection")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*"))
        if path.suffix in (".py", ".html", ".txt", ".css")
        and "migrations" not in path.parts
        and not (path.parent.name == "registry" and path.name.startswith("ctgov"))
        and knowing.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "knowing"),
    [
        ("euctr", r"clinicaltrialsregister|ctr-search|End of Trial Status|F\.4\.2"),
        ("ctis", r"euclinicaltrials|ctPublicStatusCode|authorizedPartI|memberStatesConcerned"),
        ("isrctn", r"isrctn\.com|targetEnrolment|recruitmentStatusOverride|externalRefs\b"),
    ],
)
def test_only_a_registrys_own_package_knows_its_addresses_and_fields(
    package: str, knowing: str
) -> None:
    """Each registry beyond ClinicalTrials.gov lives in ``service/registry/<key>/``: its
    addresses and the names of its record's fields nowhere else (settings take its default
    address from there)."""
    pattern = re.compile(knowing)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*"))
        if path.suffix in (".py", ".html", ".txt", ".css")
        and "migrations" not in path.parts
        and not (path.parent.name == package and path.parent.parent.name == "registry")
        and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_pipeline_reaches_a_registry_only_through_its_protocol() -> None:
    """The monitor, history, backfill and seed linking know a registry by the ``Registry``
    protocol (``service.registry.base``); only ``app.py`` picks ClinicalTrials.gov's client."""
    cycle = ("cycle.context", "cycle.fetch", "cycle.settle", "cycle.store", "cycle.review")
    for module in ("monitor", "history", "backfill", "seeds.link", "seeds.service", "bulk", *cycle):
        inside, _ = imports_of(module)
        assert "registry.ctgov" not in inside, f"{module} imports the ClinicalTrials.gov client"


def module_name(path: Path) -> str:
    return str(path.relative_to(PACKAGE).with_suffix("")).replace("/", ".")


def test_only_the_store_and_its_migrations_import_sqlalchemy() -> None:
    users = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "sqlalchemy" in imports_of(module_name(path))[1]
    }
    allowed = {"settings.py", "migrate.py"}
    outside = {u for u in users if not u.startswith(("migrations/", "store/"))}
    assert outside <= allowed, f"outside the store: {sorted(outside - allowed)}"
    assert any(u.startswith("store/") for u in users)  # the rule sees the store package


def test_every_store_module_has_its_import_rules() -> None:
    """A new module in the store package gets an entry in ALLOWED, so its imports are checked."""
    modules = {
        module_name(path).removesuffix(".__init__") for path in (PACKAGE / "store").rglob("*.py")
    }
    assert modules <= set(ALLOWED), f"no import rules for {sorted(modules - set(ALLOWED))}"


def test_the_rest_of_the_service_knows_the_store_only_as_a_package() -> None:
    """Outside ``service/store/`` (its migrations included) modules import ``service.store``,
    never one of its modules: how the store splits its tables is its own business."""
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name.startswith("store."):
            continue
        inside, _ = imports_of(name)
        deep = {m for m in inside if m.startswith("store.")}
        assert not deep, f"{name} imports {sorted(deep)}"
