from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from kumkm_notifications.domain.subscriptions import CONSUMED, SUBSCRIPTIONS
from kumkm_notifications.rendering import (
    MissingTemplateError,
    TemplateCatalog,
    jakarta_datetime,
    long_date,
    percent,
)
from kumkm_shared.contracts import Locale
from kumkm_shared.messaging.topology import consumer
from kumkm_shared.money import format_rupiah
from tests.support.notifications import SAMPLES, sample

pytestmark = pytest.mark.unit


def test_rupiah_is_formatted_the_indonesian_way() -> None:
    assert format_rupiah(Decimal("2500000000.00"), Locale.ID_ID) == "Rp2.500.000.000"
    assert format_rupiah("125000", Locale.ID_ID) == "Rp125.000"
    assert format_rupiah("125000.5", Locale.ID_ID) == "Rp125.000,50"
    assert format_rupiah("2500000000.00", Locale.EN_US) == "Rp2,500,000,000"
    assert format_rupiah("125000.5", Locale.EN_US) == "Rp125,000.50"
    assert format_rupiah("-1500", Locale.ID_ID) == "-Rp1.500"
    assert format_rupiah("-1500.25", Locale.EN_US) == "-Rp1,500.25"


def test_templates_format_rupiah_with_the_platforms_one_formatter(tmp_path: Path) -> None:
    for locale in Locale:
        (tmp_path / locale.value).mkdir()
        (tmp_path / locale.value / "x.j2").write_text(
            "{% block subject %}{{ amount | rupiah }}{% endblock %}"
            "{% block text %}{{ amount | rupiah }}{% endblock %}"
            "{% block html %}<b>{{ amount | rupiah }}</b>{% endblock %}",
            encoding="utf-8",
        )
    catalog = TemplateCatalog(tmp_path)
    for amount in ("2500000000.00", "125000.5", "-1500"):
        for locale in Locale:
            rendered = catalog.render("x", locale, {"amount": amount})
            assert rendered.subject == format_rupiah(amount, locale)
            assert rendered.html == f"<b>{format_rupiah(amount, locale)}</b>\n"


def test_dates_are_long_and_localised() -> None:
    assert long_date(date(2026, 11, 26), Locale.ID_ID) == "26 November 2026"
    assert long_date("2026-08-17", Locale.ID_ID) == "17 Agustus 2026"
    assert long_date(date(2026, 11, 26), Locale.EN_US) == "November 26, 2026"
    moment = datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    assert jakarta_datetime(moment, Locale.ID_ID) == "26 November 2026 14.30 WIB"
    assert percent("0.06", Locale.ID_ID) == "6%"
    assert percent("0.025", Locale.ID_ID) == "2,5%"


def test_every_subscribed_event_has_a_template_in_both_locales() -> None:
    TemplateCatalog().check(SUBSCRIPTIONS)  # raises, naming the gaps, otherwise
    for event_type in SUBSCRIPTIONS:
        for locale in Locale:
            path = Path(TemplateCatalog().directory) / TemplateCatalog.name(event_type, locale)
            assert path.is_file(), path


def test_every_event_the_durables_deliver_is_subscribed() -> None:
    delivered = {
        *consumer("notifications-loans").filter_subjects,
        *consumer("notifications-catalog").filter_subjects,
    }
    assert delivered >= CONSUMED
    assert set(SUBSCRIPTIONS) == set(SAMPLES)
    # The integrators' lifecycle steps reach the service only through the catalog's record of them.
    assert "kumkm.catalog.order.paid.v1" not in delivered
    assert "kumkm.catalog.order.status_changed.v1" in CONSUMED


def test_a_missing_template_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "id_ID").mkdir()
    (tmp_path / "en_US").mkdir()
    (tmp_path / "id_ID" / "kumkm.catalog.order.paid.v1.j2").write_text(
        "{% block subject %}s{% endblock %}{% block text %}t{% endblock %}{% block html %}h{% endblock %}"
    )
    (tmp_path / "en_US" / "kumkm.catalog.order.paid.v1.j2").write_text("{% block subject %}s{% endblock %}")
    with pytest.raises(MissingTemplateError) as caught:
        TemplateCatalog(tmp_path).check(["kumkm.catalog.order.paid.v1", "kumkm.catalog.order.delivered.v1"])
    message = str(caught.value)
    assert "en_US/kumkm.catalog.order.paid.v1.j2: no 'text' block" in message
    assert "id_ID/kumkm.catalog.order.delivered.v1.j2: missing" in message
    assert "en_US/kumkm.catalog.order.delivered.v1.j2: missing" in message


@pytest.mark.parametrize("locale", list(Locale))
@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_every_template_renders_its_sample(event_type: str, locale: Locale) -> None:
    rendered = TemplateCatalog().render(
        event_type, locale, {"event": sample(event_type), "recipient": "Koperasi Pedagang Pasar Kranggan"}
    )
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert len(rendered.text) > 40
    assert rendered.html.lstrip().startswith("<")
    assert "{{" not in rendered.text + rendered.html


def test_kranggan_approval_in_indonesian_carries_the_new_terms() -> None:
    event = sample("kumkm.loans.restructuring.approved.v1")
    rendered = TemplateCatalog().render(
        "kumkm.loans.restructuring.approved.v1", Locale.ID_ID, {"event": event, "recipient": "Kranggan"}
    )
    assert rendered.subject == "Restrukturisasi pinjaman LN-2019-0001 disetujui: angsuran baru Rp48.330.000"
    assert "Pokok terutang: Rp2.500.000.000" in rendered.text
    assert "Jatuh tempo akhir: 26 November 2026" in rendered.text
    assert "<td>Rp2.500.000.000</td>" in rendered.html


def test_html_is_escaped_but_text_is_not() -> None:
    event = sample("kumkm.catalog.order.cancelled.v1", reason="<b>stok</b> & harga")
    rendered = TemplateCatalog().render(
        "kumkm.catalog.order.cancelled.v1", Locale.ID_ID, {"event": event, "recipient": "A & B"}
    )
    assert "Alasan: <b>stok</b> & harga" in rendered.text
    assert "&lt;b&gt;stok&lt;/b&gt; &amp; harga" in rendered.html
    assert "A &amp; B" in rendered.html
