import pytest

from stockpile.errors import InputError, close_matches
from stockpile.units import fmt_count, parse_count


@pytest.mark.parametrize("text,value", [("15.6T", 15.6e12), ("15.6e12", 15.6e12), ("4k", 4000), ("1500", 1500),
                                        ("2.5B", 2.5e9), ("3M", 3e6)])
def test_parse_count(text, value):
    assert parse_count(text) == pytest.approx(value)


def test_parse_count_rejects_garbage():
    with pytest.raises(InputError) as e:
        parse_count("lots", field="tokens")
    assert e.value.field == "tokens" and "15.6T" in str(e.value)


def test_fmt_and_suggestions():
    assert fmt_count(1.5e12) == "1.5T"
    assert "h100-sxm-80gb" in close_matches("h100-sxm", ["h100-sxm-80gb", "a100-sxm-80gb", "l4-24gb"])


def test_a_negative_count_is_named_as_negative():
    with pytest.raises(InputError) as e:
        parse_count("-5", field="isl")
    assert "negative" in str(e.value) and "isl" in str(e.value)
