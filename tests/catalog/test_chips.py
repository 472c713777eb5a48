import pytest

from stockpile.catalog.chips import Figure, classify_3a090, get_chip, list_chips
from stockpile.errors import UnknownNameError

CONTRACT_IDS = ["h100-sxm-80gb", "h100-pcie-80gb", "h200-sxm-141gb", "h800-sxm-80gb", "h20-96gb", "a100-sxm-80gb",
                "a100-sxm-40gb", "a800-sxm-80gb", "l40s-48gb", "l20-48gb", "l4-24gb", "b200-sxm-180gb", "gb200-186gb",
                "mi300x-192gb", "mi308x-192gb", "mi325x-256gb", "gaudi3-128gb", "tpu-v5p-95gb", "ascend-910b-64gb",
                "ascend-910c-128gb", "kunlun-p800-96gb", "mlu590-64gb", "b300-sxm-288gb", "gb300-288gb"]


def test_catalog_has_contract_ids_and_at_least_24_chips():
    ids = {c.id for c in list_chips()}
    assert len(ids) >= 24
    assert set(CONTRACT_IDS) <= ids


def test_every_chip_in_the_measured_data_is_catalogued():
    import csv
    from importlib import resources
    root = resources.files("stockpile") / "data" / "measurements"
    ids = {c.id for c in list_chips()}
    for name in ("inference_measurements.csv", "inferencex_sample.csv", "training_measurements.csv"):
        with (root / name).open() as fh:
            seen = {r["accelerator"] for r in csv.DictReader(fh)}
        assert seen <= ids, seen - ids


def test_every_figure_has_a_source():
    for chip in list_chips():
        for name in type(chip).model_fields:
            fig = getattr(chip, name)
            if isinstance(fig, Figure):
                assert fig.source.startswith("http"), (chip.id, name)


def test_tpp_is_derived_from_specs():
    h100 = get_chip("h100-sxm-80gb")
    assert h100.tpp == pytest.approx(max(h100.fp8_tflops.value * 8, h100.bf16_tflops.value * 16,
                                         h100.fp16_tflops.value * 16))
    assert 15000 < h100.tpp < 16500 and h100.eccn_3a090 == "3A090.a"
    h20 = get_chip("h20-96gb")
    assert h20.tpp < 4800          # designed under the Oct-2023 line
    b300 = get_chip("b300-sxm-288gb")
    assert b300.tpp == pytest.approx(max(b300.fp4_tflops.value * 4, b300.fp8_tflops.value * 8))


def test_3a090_thresholds():
    assert classify_3a090(5000, None) == "3A090.a"
    assert classify_3a090(2000, 6.0) == "3A090.a"
    assert classify_3a090(3000, 2.0) == "3A090.b"
    assert classify_3a090(1000, 1.0) == "not 3A090"


def test_lookup_is_case_insensitive_and_suggests():
    assert get_chip("H800-SXM-80GB").id == "h800-sxm-80gb"
    with pytest.raises(UnknownNameError) as e:
        get_chip("h800-80gb")
    assert "h800-sxm-80gb" in str(e.value)


def test_memory_and_bandwidth_are_si():
    h200 = get_chip("h200-sxm-141gb")
    assert 140e9 < h200.memory_bytes < 160e9
    assert h200.mem_bw == pytest.approx(h200.memory_bw_gbs.value * 1e9)


@pytest.mark.parametrize("given,expected", [("B200", "b200-sxm-180gb"), ("h200_sxm", "h200-sxm-141gb"),
                                            ("MI300X", "mi300x-192gb"), ("l4", "l4-24gb"), ("Ascend910B", "ascend-910b-64gb"),
                                            ("A100-SXM4-80GB", "a100-sxm-80gb"), ("H200", "h200-sxm-141gb"),
                                            ("H200 NVL", "h200-nvl-141gb"), ("RTX 5090", "rtx-5090-32gb"),
                                            ("A10", "a10-24gb"), ("L40", "l40-48gb"), ("T4", "t4-16gb"),
                                            ("910B", "ascend-910b-64gb"), ("P800", "kunlun-p800-96gb"),
                                            ("910C", "ascend-910c-128gb")])
def test_a_shorthand_that_names_one_chip_finds_it(given, expected):
    """A bare product name means the SXM/OAM module where one of its matches is ("H200" is not the NVL card)."""
    assert get_chip(given).id == expected


@pytest.mark.parametrize("given,expected", [("NVIDIA H100 80GB HBM3", "h100-sxm-80gb"), ("NVIDIA H100 PCIe", "h100-pcie-80gb"),
                                            ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"), ("AMD Instinct MI300X", "mi300x-192gb"),
                                            ("Tesla T4", "t4-16gb"), ("NVIDIA GeForce RTX 4090", "rtx-4090-24gb"),
                                            ("NVIDIA H20 141GB", "h20-141gb"), ("NVIDIA H100 96GB HBM3", "h100-sxm-96gb"),
                                            ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada-48gb")])
def test_a_device_name_as_drivers_print_it_finds_the_chip(given, expected):
    """nvidia-smi / rocm-smi names: the vendor's words dropped, the memory size choosing among a product's parts."""
    assert get_chip(given).id == expected


def test_a_device_name_that_names_no_single_chip_suggests_the_product():
    with pytest.raises(UnknownNameError) as e:
        get_chip("NVIDIA H20")
    assert {"h20-96gb", "h20-141gb"} <= set(e.value.suggestions)


@pytest.mark.parametrize("given,candidates", [("H100", ("h100-sxm-80gb", "h100-pcie-80gb")),
                                              ("H20", ("h20-96gb", "h20-141gb")), ("a100_sxm", ("a100-sxm-80gb",)),
                                              ("6000", ("rtx-pro-6000-96gb", "rtx-6000-ada-48gb"))])
def test_an_ambiguous_shorthand_is_refused_with_the_candidates(given, candidates):
    with pytest.raises(UnknownNameError) as e:
        get_chip(given)
    assert all(c in str(e.value) for c in candidates)
