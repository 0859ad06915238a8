"""conformance/CONFORMANCE.md is generated from the server's own tables; the committed file
must be exactly what `python -m conformance.statement` writes."""

from conformance import statement


def test_the_committed_statement_is_the_generated_one() -> None:
    assert statement.STATEMENT.read_text() == statement.generate(), (
        "conformance/CONFORMANCE.md is stale: run python -m conformance.statement")


def test_every_section_of_the_template_is_filled() -> None:
    text = statement.TEMPLATE.read_text()
    assert all("{{" + name + "}}" in text for name in statement.SECTIONS)
    generated = statement.generate()
    assert "{{" not in generated
    assert "| `/studies` | POST | Store Instances |" in generated
    assert "`1.2.840.10008.1.2.4.201`" in generated
