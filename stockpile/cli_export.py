"""`stockpile export`: the searched configuration as launch commands, a runnable script, compose or Kubernetes."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

FORMATS = ("text", "script", "compose")


def export_command(target: str, model: str, chip: str, gpus: int, isl: str, osl: str, ttft_ms: Optional[float],
                   tpot_ms: Optional[float], engine: Optional[str], rank: int, weight_dtype: Optional[str],
                   disagg: bool, kv_dtype: Optional[str], spec_draft: Optional[int], spec_accept: Optional[float],
                   image: Optional[str], best_effort: bool, prefill_chip: Optional[str], fmt: str,
                   max_model_len: Optional[int], out_file: Optional[Path], json_out: bool,
                   confidence: Optional[float] = None) -> None:
    from stockpile.cli_args import search_runs
    from stockpile.cli_render import emit_json, err, out
    from stockpile.deploy import k8s_manifests, load_table, sglang_launches, to_yaml, vllm_launches
    from stockpile.deploy.launch import script
    from stockpile.deploy.script import bash_script, compose_yaml
    from stockpile.errors import InfeasibleError, InputError
    from stockpile.search.export import context_length, deploy_spec
    tgt = target.strip().lower()
    if tgt not in ("vllm", "sglang", "k8s"):
        raise InputError("target", f"'{target}' is not one of vllm, sglang, k8s")
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise InputError("format", f"'{fmt}' is not one of {', '.join(FORMATS)}")
    if tgt == "k8s" and fmt != "text":
        raise InputError("format", "--target k8s writes manifests; --format applies to --target vllm/sglang")
    eng = tgt if tgt in ("vllm", "sglang") else (engine or "vllm")
    if engine and tgt in ("vllm", "sglang") and engine != tgt:
        raise InputError("engine", f"--engine {engine} contradicts --target {tgt}; drop --engine")
    if "," in chip:
        raise InputError("chip", "export takes one chip; search compares several")
    if rank < 1:
        raise InputError("rank", f"must be >= 1 (1 = the best candidate), got {rank}")
    m, results = search_runs(model, chip, gpus, isl, osl, ttft_ms, tpot_ms, eng, rank, weight_dtype, disagg,
                             kv_dtype, spec_draft, spec_accept, prefill_chip, confidence=confidence)
    c_obj, r = results[0]
    if len(r.candidates) < rank:
        raise InfeasibleError(r.message if not r.candidates else f"only {len(r.candidates)} candidates; lower --rank")
    cand = r.candidates[rank - 1]
    if not cand.meets_slo:
        miss = "; ".join(t for t in (
            f"TTFT {cand.ttft_ms:,.0f} ms > {ttft_ms:g}" if ttft_ms and cand.ttft_ms > ttft_ms else "",
            f"TPOT {cand.tpot_ms:.1f} ms > {tpot_ms:g}" if tpot_ms and cand.tpot_ms > tpot_ms else "") if t) or (
            f"not at {100 * confidence:.0f} % confidence (TTFT x {r.margins['ttft_ms']:.2f}, TPOT x "
            f"{r.margins['tpot_ms']:.2f})" if confidence and r.margins else "")
        if not best_effort:
            raise InfeasibleError(f"nothing meets the targets on {gpus} x {c_obj.id}; the closest candidate "
                                  f"({cand.layout_text}) misses them: {miss}. Relax the targets, add GPUs, or "
                                  "pass --best-effort to export it anyway")
        err.print(f"[yellow]warning:[/yellow] --best-effort: exporting {cand.layout_text}, which misses the "
                  f"targets ({miss})")
    ctx, ctx_note = context_length(m, c_obj, eng, cand, isl=r.isl, osl=r.osl, requested=max_model_len)
    spec = deploy_spec(cand, model_id=model, chip=c_obj, engine=eng, isl=r.isl, osl=r.osl, max_len=ctx)
    head = [f"{model} on {c_obj.id}: {cand.layout_text}, {cand.weight_dtype}/{cand.kv_dtype}; predicted "
            f"{cand.output_tokens_per_s_per_gpu:,.0f} tok/s/GPU, TTFT {cand.ttft_ms:,.0f} ms, TPOT {cand.tpot_ms:.1f} ms",
            ctx_note]
    if tgt == "k8s":
        manifests = k8s_manifests(spec, image=image)
        if json_out:
            _emit({"candidate": cand.model_dump(), "spec": spec.model_dump(), "context_note": ctx_note,
                   "manifests": manifests}, out_file, emit_json)
        else:
            _write("".join(f"# {h}\n" for h in head) + to_yaml(manifests), out_file, out)
        return
    launches = vllm_launches(spec) if tgt == "vllm" else sglang_launches(spec)
    if json_out:
        router = next((la for la in launches if la.role == "router"), None)
        front = router or next(la for la in launches if la.port)
        doc: dict[str, Any] = {
            "candidate": cand.model_dump(), "spec": spec.model_dump(), "context_note": ctx_note,
            "engine_version": load_table(tgt).version, "endpoint": f"http://{front.host}:{front.port}/v1",
            "launches": [{"role": la.role, "instance": la.instance, "node_rank": la.node_rank, "nodes": la.nodes,
                          "host": la.host, "port": la.port, "devices": list(la.devices), "env": la.env,
                          "table": la.table, "argv": la.argv, "shell": la.shell} for la in launches]}
        _emit(doc, out_file, emit_json)
        return
    if fmt == "script":
        _write(bash_script(spec, head), out_file, out, executable=True)
    elif fmt == "compose":
        _write("".join(f"# {h}\n" for h in head) + compose_yaml(spec, image), out_file, out)
    else:
        text = script(launches)
        _write(text.replace("#!/bin/sh\n", "#!/bin/sh\n" + "".join(f"# {h}\n" for h in head), 1), out_file, out)


def _write(text: str, out_file: Optional[Path], console: Any, executable: bool = False) -> None:
    from stockpile.atomic import write_text_atomic
    if out_file is None:
        sys.stdout.write(text)
        return
    path = write_text_atomic(out_file, text)
    if executable:
        path.chmod(0o755)
    console.print(f"wrote {path}", highlight=False, markup=False)


def _emit(doc: dict[str, Any], out_file: Optional[Path], emit_json: Any) -> None:
    if out_file is None:
        emit_json(doc)
        return
    from stockpile.atomic import write_text_atomic
    from stockpile.cli_render import json_text
    write_text_atomic(out_file, json_text(doc))
