"""Precisions as publications spell them (NVFP4, W4A16, FP8 block scales, "auto" KV) are read as the dtypes the
model costs, in a measured CSV and on the command line; an unknown spelling is refused by name. A chip shorthand in a
CSV (B200) is read as its chip, and the row says so."""
import csv

import pytest

from stockpile.calibration.inference import validate_rows
from stockpile.catalog.dtypes import normalise_dtype
from stockpile.errors import UnknownNameError
from stockpile.perf.calibration import load_calibration
from stockpile.perf.inference import WEIGHT_DTYPES, check_dtype


@pytest.mark.parametrize("given,expected", [
    ("NVFP4", "fp4"), ("mxfp4", "fp4"), ("W4A16", "int4"), ("AWQ", "int4"), ("w4afp8", "int4"),
    ("fp8-block", "fp8"), ("FP8_E4M3", "fp8"), ("W8A8", "int8"), ("bfloat16", "bf16"), ("bf16", "bf16"),
])
def test_spellings(given, expected):
    assert normalise_dtype(given) == expected
    assert check_dtype("weight_dtype", given, WEIGHT_DTYPES) == expected


def test_an_unknown_spelling_is_refused_by_name():
    with pytest.raises(UnknownNameError, match="weight_dtype"):
        check_dtype("weight_dtype", "fp3", WEIGHT_DTYPES)
    assert normalise_dtype("") is None and normalise_dtype(None) is None


def test_a_csv_spelling_predicts_as_its_dtype(tmp_path):
    head = ("id,model,accelerator,num_accelerators,engine,weight_dtype,kv_dtype,tp,pp,ep,dp,input_len,output_len,"
            "concurrency,scenario,metric,value,source_url,notes")
    cells = "{id},meta-llama/Llama-3.1-70B-Instruct,b200-sxm-180gb,2,trtllm,{w},{k},2,,,,1024,1024,32,server,tpot_ms,10,https://x.org/a,"
    path = tmp_path / "m.csv"
    path.write_text("\n".join([head, cells.format(id="a", w="fp4", k="fp8"), cells.format(id="b", w="NVFP4", k="fp8_e4m3"),
                               cells.format(id="c", w="bf16", k=""), cells.format(id="d", w="bfloat16", k="auto")]) + "\n")
    rows = list(csv.DictReader(path.open()))
    out = {r["id"]: r for r in validate_rows(rows, load_calibration())}
    assert all(r["status"] == "ok" for r in out.values())
    assert out["a"]["predicted"] == out["b"]["predicted"]
    assert out["c"]["predicted"] == out["d"]["predicted"]
    assert out["a"]["predicted"] < out["c"]["predicted"]          # 4-bit weights decode faster than 16-bit


def test_a_chip_shorthand_in_a_csv_predicts_as_the_chip_and_says_so(tmp_path):
    head = ("id,model,accelerator,num_accelerators,engine,weight_dtype,kv_dtype,tp,pp,ep,dp,input_len,output_len,"
            "concurrency,scenario,metric,value,source_url,notes")
    cells = "{id},meta-llama/Llama-3.1-70B-Instruct,{chip},2,vllm,bf16,,2,,,,1024,1024,32,server,tpot_ms,10,https://x.org/a,"
    path = tmp_path / "m.csv"
    path.write_text("\n".join([head, cells.format(id="a", chip="b200-sxm-180gb"), cells.format(id="b", chip="B200")])
                    + "\n")
    out = {r["id"]: r for r in validate_rows(list(csv.DictReader(path.open())), load_calibration())}
    assert out["a"]["predicted"] == out["b"]["predicted"]
    assert "accelerator 'B200' read as b200-sxm-180gb" in out["b"]["assumed"] and not out["a"].get("assumed")


@pytest.mark.parametrize("flag", ["--kv-dtype", "--weight-dtype"])
def test_auto_is_the_default_on_the_command_line(flag):
    from typer.testing import CliRunner

    from stockpile.cli import app
    args = ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb", "--isl", "512",
            "--osl", "128", "--json"]
    auto = CliRunner().invoke(app, [*args, flag, "auto"])
    plain = CliRunner().invoke(app, args)
    assert auto.exit_code == 0 and auto.stdout == plain.stdout
