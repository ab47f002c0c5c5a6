import pytest

from kubelab_stress.sizes import SizeError, format_size, parse_size

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("150M", 150 * MIB),
        ("150m", 150 * MIB),
        ("150Mi", 150 * MIB),
        ("150MiB", 150 * MIB),
        ("150MB", 150 * MIB),
        ("1G", 1024 * MIB),
        ("1.5G", 1536 * MIB),
        ("512K", 512 * 1024),
        ("4096", 4096),
        ("4096B", 4096),
        ("0.5M", MIB // 2),
        (" 2T ", 2 * 1024**4),
    ],
)
def test_stress_parse_size_accepts(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "abc", "1.5X", "-5M", "0", "0M", "1e3", "10 MM", "5iB"])
def test_stress_parse_size_rejects_with_hint(text: str) -> None:
    with pytest.raises(SizeError) as err:
        parse_size(text)
    assert repr(text) in str(err.value)


def test_stress_format_size() -> None:
    assert format_size(150 * MIB) == "150.0MiB"
    assert format_size(512) == "512B"
    assert format_size(1536 * MIB) == "1.5GiB"
