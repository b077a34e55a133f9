"""clean_email on hand-written e-mails that follow none of the demo generator's templates."""

import pytest

from emailrouter.pii import mask_pii
from emailrouter.text import clean_email, strip_quotes

# Quote headers of clients and languages the generator never writes.
THREADS = [
    # Thunderbird, Danish
    (
        "Tak, det virker nu!\n\nDen 03-02-2025 kl. 10:12 skrev Hans Jensen:\n> Har du prøvet at genstarte?",
        "Tak, det virker nu!",
    ),
    # Apple Mail, English, on a phone
    (
        "Still no signal.\n\nSent from my iPad\n\nOn 3 Feb 2025, at 10:12, Anna Berg <anna@berg.se> wrote:\n\n> Hi "
        "Anna",
        "Still no signal.",
    ),
    # Gmail English wrapped over two lines by a narrow client
    (
        "Please cancel.\n\nOn Mon, Feb 3, 2025 at 10:12 AM Customer Service <\nservice@tele.dk> wrote:\n> Dear "
        "customer",
        "Please cancel.",
    ),
    # Outlook for Mac, Danish fields in another order
    (
        "Se venligst nedenfor.\n\nFra: Support <support@tele.dk>\nDato: mandag, 3. februar 2025 kl. 10.12\nTil: "
        "Mette\nEmne: Sag 1234\n\nKære Mette",
        "Se venligst nedenfor.",
    ),
    # German Outlook (a Danish customer on a German work laptop)
    (
        "Router er død.\n\nVon: Kundeservice <ks@tele.dk>\nGesendet: Montag, 3. Februar 2025 10:12\nAn: "
        "Jens\nBetreff: Ihre Rechnung\n\nHej Jens",
        "Router er død.",
    ),
    # Forwarded by the customer from their phone
    (
        "Se den her regning??\n\n---------- Forwarded message ---------\nFrom: Tele <noreply@tele.dk>\nDate: Mon, 3 "
        "Feb 2025\nSubject: Faktura\n\nDin faktura er klar",
        "Se den her regning??",
    ),
    # Outlook "Videresendt meddelelse" in Danish with asterisk bold from a text export
    (
        "FYI\n\n*Fra:* Kundeservice\n*Sendt:* 3. februar 2025 10:12\n*Til:* Lise\n*Emne:* Opsigelse\n\nVi bekræfter",
        "FYI",
    ),
]


@pytest.mark.parametrize("raw,want", THREADS)
def test_quote_headers_of_other_clients(raw, want):
    assert clean_email("", raw, pii=False) == want


def test_outlook_html_reply_with_signature_table():
    html = """<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>@font-face{font-family:Calibri}</style>
    <!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit"/></xml><![endif]--></head>
    <body lang=DA><div class=WordSection1><p class=MsoNormal>Hej,<o:p></o:p></p>
    <p class=MsoNormal>Vi har ikke f&aring;et vores nye tv-boks, selvom ordren blev bekr&aelig;ftet i sidste uge.<o:p></o:p></p>
    <p class=MsoNormal>&nbsp;</p><p class=MsoNormal>Med venlig hilsen<o:p></o:p></p>
    <table><tr><td><b>Karin Holm</b><br>Indkøbschef, Holm ApS<br>Tlf. +45 70 20 30 40</td></tr></table>
    <div style='border:none;border-top:solid #E1E1E1 1.0pt'><p class=MsoNormal><b>Fra:</b> Kundeservice &lt;ks@tele.dk&gt;
    <br><b>Sendt:</b> 1. marts 2025 09:00<br><b>Til:</b> Karin Holm<br><b>Emne:</b> Ordrebekræftelse</p></div>
    <p>Tak for din ordre</p></div></body></html>"""  # noqa: E501 (Outlook writes lines this long)
    out = clean_email("VS: Ordre", html)
    assert out == "Ordre [SEP] Hej,\n\nVi har ikke fået vores nye tv-boks, selvom ordren blev bekræftet i sidste uge."


def test_gmail_html_blockquote_nested():
    html = (
        '<div dir="ltr">Internettet er stadig nede!<br></div><br><div class="gmail_quote">'
        '<blockquote class="gmail_quote">Har du genstartet?<blockquote>Mit net er nede</blockquote></blockquote></div>'
    )
    assert clean_email("", html) == "Internettet er stadig nede!"


def test_mixed_danish_english_and_letters_kept():
    raw = (
        "Hi, jeg har et problem med min router – the light is røde and Wi‑Fi'en virker ikke i Århus.\n\nCheers,\nØjvind"
    )
    assert (
        clean_email("Problém", raw)
        == "Problém [SEP] Hi, jeg har et problem med min router – the light is røde and Wi‑Fi'en virker ikke i Århus."
    )


def test_decomposed_unicode_is_composed():
    assert clean_email("", "Ga\u030ar det?") == "Går det?"


@pytest.mark.parametrize(
    "raw,want",
    [
        # PII in odd spots: in the subject, glued to punctuation, in angle brackets, CPR without dash
        ("(tlf:22334455)", "(tlf:[PHONE])"),
        ("skriv til <mette_k@firma.co.uk>!", "skriv til <[EMAIL]>!"),
        ("cpr 0104851234, ikke 3204851234", "cpr [CPR], ikke [NUMBER]"),
        ("ring +4522 33 44 55 eller 0045-22334455", "ring [PHONE] eller [PHONE]"),
        ("konto: 1234 0012345678", "konto: [NUMBER]"),
        ("se https://tele.dk/min-side?kunde=12345678&token=abc.", "se [URL]."),
        ("Mit kundenr er 1-2345-678", "Mit kundenr er [NUMBER]"),
        ("Adressen er H.C. Andersens Boulevard 27, 1553 København V", "Adressen er H.C. [ADDRESS]"),
        ("Undertegnede Birthe Møller-Hansen giver fuldmagt", "Undertegnede [NAME] giver fuldmagt"),
    ],
)
def test_pii_in_odd_spots(raw, want):
    assert mask_pii(raw) == want


def test_pii_in_subject_is_masked():
    assert clean_email("Ring til 22 33 44 55", "Tak") == "Ring til [PHONE] [SEP] Tak"


def test_not_pii():
    text = "Jeg betaler 299,00 kr. om måneden for 1000/1000 Mbit siden 01.03.2024 kl. 14.30, uge 12."
    assert mask_pii(text) == text


def test_no_quote_no_change():
    body = "Fra 1. maj vil jeg gerne have fiber.\nTil gengæld opsiger jeg mit tv.\nEmne: pris"
    assert strip_quotes(body) == body


def test_bytes_and_none_never_raise():
    assert clean_email(None, b"Min regning er for h\xf8j") == "Min regning er for h\ufffdj"
    assert clean_email(None, None) == ""


# Bank, card and CPR numbers as customers type them. IBANs get their check digits computed here (ISO 7064 mod 97-10),
# independently of emailrouter's own check.
def _iban(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def _grouped(code: str) -> str:
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


IBANS = [
    _iban("DK", "00400440116243"),
    _iban("GB", "WEST12345698765432"),
    _iban("DE", "370400440532013000"),
    _iban("NO", "86011117947"),
    _iban("SE", "50000000058398257466"),
    _iban("FR", "20041010050500013M02606"),
]


def test_iban_helper_matches_published_examples():
    assert IBANS[:4] == ["DK5000400440116243", "GB82WEST12345698765432", "DE89370400440532013000", "NO9386011117947"]


@pytest.mark.parametrize("iban", IBANS)
@pytest.mark.parametrize("form", [str, _grouped, str.lower, lambda c: _grouped(c).lower()])
def test_iban_masked_in_any_form(iban, form):
    assert mask_pii(f"Pengene kan sendes til IBAN {form(iban)}, tak.") == "Pengene kan sendes til IBAN [IBAN], tak."


def test_iban_with_wrong_check_digits_is_not_an_iban():
    wrong = "DK5100400440116243"  # DK50... with one check digit changed
    assert "[IBAN]" not in mask_pii(f"konto {wrong}") and "[IBAN]" not in mask_pii(f"konto {_grouped(wrong)}")


def test_the_probes_bank_and_id_numbers():
    assert clean_email("", "IBAN DK5000400440116243") == "IBAN [IBAN]"
    assert clean_email("", "Overfør til DK50 0040 0440 1162 43") == "Overfør til [IBAN]"  # was "DK50 [PHONE] [NUMBER]"
    assert clean_email("", "cpr 311290\u20111234") == "cpr [CPR]"  # non-breaking hyphen
    assert clean_email("", "kortet 4111.1111.1111.1111 er spærret") == "kortet [CARD] er spærret"


@pytest.mark.parametrize("sep", [" ", "-", ".", ""])
@pytest.mark.parametrize(
    "card,groups",
    [
        ("4111111111111111", (4, 4, 4, 4)),
        ("5555555555554444", (4, 4, 4, 4)),
        ("378282246310005", (4, 6, 5)),
        ("6011000990139424", (4, 4, 4, 4)),
    ],
)
def test_card_numbers_with_any_separator(sep, card, groups):
    cuts = [sum(groups[:i]) for i in range(len(groups) + 1)]
    typed = sep.join(card[a:b] for a, b in zip(cuts, cuts[1:]))
    assert mask_pii(f"Mit kort {typed} blev trukket to gange.") == "Mit kort [CARD] blev trukket to gange."


@pytest.mark.parametrize(
    "typed,want",
    [
        # a 16-digit number that fails the Luhn check is no card; as one number of a card's shape it is [NUMBER]
        ("4111111111111112", "[NUMBER]"),
        ("4111 1111 1111 1112", "[NUMBER]"),
        ("4111-1111-1111-1112", "[NUMBER]"),
        ("4111.1111.1111.1112", "[NUMBER]"),
    ],
)
def test_luhn_invalid_number_is_not_a_card(typed, want):
    assert mask_pii(f"nummer {typed} tak") == f"nummer {want} tak"


@pytest.mark.parametrize("dash", ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", " ", "\u00a0", ""])
def test_cpr_with_any_dash(dash):
    assert clean_email("", f"Mit cpr-nr. er 311290{dash}1234.") == "Mit cpr-nr. er [CPR]."
    assert mask_pii(f"cpr 010185{dash}4321") == "cpr [CPR]"
