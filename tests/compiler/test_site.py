"""The catalog site: pages, escaping, relative links, and the real page in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from compiler.registry import load_directory
from compiler.site import build_site

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
TODAY = date(2026, 6, 1)
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EVIL = '</script><script id="evil">alert(1)</script><img src=x onerror=alert(2)> & "кавычки"'


class _Page(HTMLParser):
    """Collects the links, script elements and element ids of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.ids: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag == "script":
            self.scripts.append(found)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        self.handlers += [name for name in found if name.startswith("on")]


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(load_directory(ROOT / "registry"), out, TODAY)
    return out


def test_every_document_has_a_page(site: Path) -> None:
    registry = load_directory(ROOT / "registry")
    assert sorted(p.stem for p in (site / "services").glob("*.html")) == sorted(registry.services)
    assert sorted(p.stem for p in (site / "participants").glob("*.html")) == sorted(registry.participants)
    assert (site / "assets/catalog.js").is_file() and (site / "assets/style.css").is_file()


def test_links_are_relative_and_resolve(site: Path) -> None:
    for page in site.rglob("*.html"):
        for link in _parse(page).links:
            if link.startswith("mailto:"):
                continue
            assert "://" not in link and not link.startswith("/"), (page, link)
            target = link.split("#")[0]
            assert (page.parent / target).resolve().is_file(), (page, link)


def test_service_page_shows_operations_and_access(site: Path) -> None:
    text = (site / "services/SID0007001.html").read_text()
    assert "GET /certificates/{series}/{number}" in text
    assert 'href="../participants/dz-tyumen.html"' in text  # the owner
    assert 'href="../participants/mvd-tyumen.html"' in text  # the consumer with its grant
    assert "по операциям: <code>byDriver</code>, <code>getCertificate</code>" in text
    assert "№ 1097" in text  # the grant's legal basis
    assert "smev@dz.example.gov.ru" in text
    soap = (site / "services/SID0003003.html").read_text()
    assert "SOAPAction <code>urn:ved3:reference:get</code>" in soap


def test_participant_page_shows_what_it_provides_and_consumes(site: Path) -> None:
    ved3 = (site / "participants/ved3.html").read_text()
    assert all(f'href="../services/{sid}.html"' in ved3 for sid in ("SID0003001", "SID0003002", "SID0003003"))
    assert 'id="consumes"' in ved3 and "Доступов нет." in ved3
    ved1 = (site / "participants/ved1.html").read_text()
    assert 'href="../services/SID0003002.html"' in ved1 and "Сервисов нет." in ved1


def _evil_registry(tmp_path: Path) -> Path:
    registry = tmp_path / "registry"
    shutil.copytree(ROOT / "registry", registry)
    service = registry / "services/SID0003002.yaml"
    escaped = EVIL.replace("\\", "\\\\").replace('"', '\\"')
    service.write_text(re.sub(r"(?m)^  description: .*$", f'  description: "{escaped} Реестр"',
                              service.read_text().replace("name: Веб-сервис Б", f'name: "{escaped}"')))
    sheet = registry / "consumers/ved1.yaml"
    sheet.write_text(sheet.read_text().replace("purpose: Проверка действительности", f'purpose: "{escaped}"\n'
                                               "      # was: Проверка действительности"))
    assert not load_directory(registry).problems
    return registry


def test_registry_text_is_escaped(tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(load_directory(_evil_registry(tmp_path)), out, TODAY)
    for page in out.rglob("*.html"):
        parsed = _parse(page)
        assert "evil" not in parsed.ids, page
        assert parsed.handlers == [], page
        assert all(s.get("id") != "evil" for s in parsed.scripts)
    index = (out / "index.html").read_text()
    assert index.count("</script>") == 2  # the data tag and the script tag, nothing injected
    assert "&lt;/script&gt;&lt;script id=&quot;evil&quot;&gt;" in index


def test_stale_pages_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "site"
    registry = tmp_path / "registry"
    shutil.copytree(ROOT / "registry", registry)
    build_site(load_directory(registry), out, TODAY)
    (registry / "consumers/ved4.yaml").unlink()
    (registry / "services/SID0003003.yaml").unlink()
    build_site(load_directory(registry), out, TODAY)
    assert not (out / "services/SID0003003.html").exists()
    assert (out / "services/SID0003001.html").exists()


def test_cli_writes_the_site(tmp_path: Path) -> None:
    result = subprocess.run([REESTR, "site", str(ROOT / "registry"), "-o", str(tmp_path / "out"), "--on",
                             "2026-06-01"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/index.html").is_file()
    assert "состояние на 2026-06-01" in (tmp_path / "out/index.html").read_text()


@pytest.mark.parametrize("args", [["-o"], ["--on", "01.06.2026", "-o", "out"], ["no-such-dir", "-o", "out"]],
                         ids=["missing-out", "bad-date", "bad-registry"])
def test_cli_usage_errors(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run([REESTR, "site", *args], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2


# --- in a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not CHROMEDRIVER.exists() or shutil.which("chromium") is None:
        pytest.skip("needs Debian packages chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible_sids(driver: object) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-sid]")  # type: ignore[attr-defined]
    return [r.get_attribute("data-sid") for r in rows if r.is_displayed()]


def _console(driver: object) -> list[dict[str, object]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]  # type: ignore[attr-defined]


def test_index_loads_without_console_errors_and_links_load(browser: object, site: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get((site / "index.html").as_uri())  # type: ignore[attr-defined]
    assert driver.title.startswith("Каталог")  # type: ignore[attr-defined]
    assert _console(driver) == []
    assert len(_visible_sids(driver)) == 5  # the example registry's services
    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")]  # type: ignore[attr-defined]
    assert len(links) >= 5 + 5 + 7  # services, owners, participants
    for href in sorted(set(links)):
        assert href.startswith("file://"), href
        assert Path(href.removeprefix("file://").split("#")[0]).is_file(), href
        driver.get(href)  # type: ignore[attr-defined]
        assert driver.find_element(By.TAG_NAME, "h1").text, href  # type: ignore[attr-defined]
        assert _console(driver) == [], href


@pytest.mark.parametrize(("query", "expected"), [
    ("SID0007001", ["SID0007001"]),
    ("sid000300", ["SID0003001", "SID0003002", "SID0003003", "SID0003004"]),
    ("медицинских справках", ["SID0007001"]),
    ("Веб-сервис Б", ["SID0003002"]),
    ("здравоохранения", ["SID0007001"]),  # the owner's name
    ("нет такого сервиса", []),
    ("publicPrintOut", ["SID0003004"]),  # an operation
    ("градостроительный кодекс", ["SID0003004"]),  # a legal basis
    ("проверка заключения экспертизы", ["SID0003004"]),  # a grant's purpose
], ids=["sid", "sid-prefix-any-case", "name-part", "name", "owner-name", "nothing", "operation",
        "legal-basis", "purpose"])
def test_search(browser: object, site: Path, query: str, expected: list[str]) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get((site / "index.html").as_uri())  # type: ignore[attr-defined]
    box = driver.find_element(By.ID, "search")  # type: ignore[attr-defined]
    box.send_keys(query)
    assert _visible_sids(driver) == expected
    assert driver.find_element(By.ID, "no-services").is_displayed() == (not expected)  # type: ignore[attr-defined]
    assert driver.find_element(By.ID, "services-count").text == str(len(expected))  # type: ignore[attr-defined]
    box.clear()
    box.send_keys(" ")  # `clear` fires no input event; a blank query shows everything again
    assert len(_visible_sids(driver)) == 5
    assert driver.find_element(By.ID, "services-count").text == "5"  # type: ignore[attr-defined]
    assert _console(driver) == []


def test_escaped_text_stays_text_in_the_browser(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    out = tmp_path / "site"
    build_site(load_directory(_evil_registry(tmp_path)), out, TODAY)
    driver = browser
    for page in ("index.html", "services/SID0003002.html", "participants/ved1.html"):
        driver.get((out / page).as_uri())  # type: ignore[attr-defined]
        assert driver.find_elements(By.ID, "evil") == []  # type: ignore[attr-defined]
        assert EVIL.split("<img")[0] in driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        assert _console(driver) == []
    driver.get((out / "index.html").as_uri())  # type: ignore[attr-defined]
    driver.find_element(By.ID, "search").send_keys("alert(1)")  # type: ignore[attr-defined]
    assert _visible_sids(driver) == ["SID0003002"]
    driver.save_screenshot(str(tmp_path / "index.png"))  # type: ignore[attr-defined]


def _search_entries(out: Path) -> dict[str, str]:
    import json

    index = (out / "index.html").read_text(encoding="utf-8")
    text = index.split('<script type="application/json" id="catalog-data">', 1)[1].split("</script>", 1)[0]
    return {s["sid"]: s["search"] for s in json.loads(text)["services"]}


def test_search_covers_operations_legal_basis_and_purpose(tmp_path: Path) -> None:
    build_site(load_directory(ROOT / "registry"), tmp_path / "site", TODAY)
    entries = _search_entries(tmp_path / "site")
    assert "operation2" in entries["SID0003001"]                     # an operation's name
    assert "найти заявителей по СНИЛС" in entries["SID0003001"]       # its description
    assert "210-ФЗ" in entries["SID0003001"]                          # the service's legal basis
    assert "Градостроительный кодекс" in entries["SID0003004"]        # a grant's legal basis
    assert "Проверка заключения экспертизы" in entries["SID0003004"]  # a grant's purpose
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'id="services-count"' in index and 'id="participants-count"' in index  # counts follow the filter


def test_a_suspension_reason_is_not_published_and_the_commit_is_shown(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(ROOT / "registry", registry)
    participant = registry / "participants/ved2.yaml"
    participant.write_text(participant.read_text(encoding="utf-8").replace(
        "  agreement:", '  status: suspended\n  suspension:\n    since: "2026-11-20"\n'
        "    reason: Внутреннее расследование инцидента ИБ-2026-17\n  agreement:", 1), encoding="utf-8")
    build_site(load_directory(registry), tmp_path / "site", TODAY, commit="65bd2e34bda50ab4708ddc9b045ee73a5b41604b")
    pages = {p: p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.html")}
    assert not [p for p, text in pages.items() if "расследование" in text or "suspended since" in text]
    ved2 = pages[tmp_path / "site" / "participants" / "ved2.html"]
    assert "приостановлен с 2026-11-20" in ved2
    assert all("коммит 65bd2e34bda5" in text for text in pages.values())
    english = re.compile(r">[^<]*\b(suspended|since|expired|terminated|not registered|valid until)\b[^<]*<")
    assert not [p for p, text in pages.items() if english.search(text)]
