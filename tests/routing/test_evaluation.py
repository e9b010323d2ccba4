from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hotline.cli import app as cli
from routing.evaluation import evaluate
from tests.conftest import SHARED_DIR

DEV_SET = SHARED_DIR / "data" / "classify_dev.tsv"


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "set.tsv"
    path.write_text("category\ttext\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_evaluation_counts_hits_misses_and_the_confusion(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        ["financing\t想申请一笔贷款", "legal\t想申请一笔贷款", "talent\t给员工安排技能培训"],
    )
    result = evaluate(path)
    assert (result.n, result.correct) == (3, 2)
    assert result.confusion[("legal", "financing")] == 1
    assert result.recall("legal") == 0.0 and result.precision("financing") == 0.5
    assert result.misses == [
        {
            "line": 3,
            "text": "想申请一笔贷款",
            "expected": "legal",
            "got": "financing",
            "confidence": result.misses[0]["confidence"],
        }
    ]


def test_cli_classifies_one_text_as_json() -> None:
    outcome = CliRunner().invoke(cli, ["classify", "我们想找律师处理合同纠纷"])
    assert outcome.exit_code == 0, outcome.output
    found = json.loads(outcome.output)
    assert found["category"] == "legal" and found["language"] == "zh"
    assert len(found["alternatives"]) == 8


def test_cli_eval_json_on_the_dev_set() -> None:
    outcome = CliRunner().invoke(cli, ["classify", "--eval", str(DEV_SET), "--json"])
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.output)
    assert summary["n"] == 96
    assert summary["accuracy"] >= 0.95
    assert len(summary["misses"]) == round(96 * (1 - summary["accuracy"]))


def test_cli_eval_text_report_has_the_matrix(tmp_path: Path) -> None:
    path = _write(tmp_path, ["market\t想参加广交会", "legal\t想参加广交会"])
    outcome = CliRunner().invoke(cli, ["classify", "--eval", str(path)])
    assert outcome.exit_code == 0, outcome.output
    assert "accuracy 0.5000 (1/2)" in outcome.output
    assert "confusion" in outcome.output and "line 3: expected legal" in outcome.output


def test_cli_eval_refuses_a_missing_file(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(cli, ["classify", "--eval", str(tmp_path / "none.tsv")])
    assert outcome.exit_code == 2
    assert "no such file" in outcome.output


def test_api_classify(client: TestClient) -> None:
    response = client.post("/api/classify", json={"text": "I need a business loan"})
    assert response.status_code == 200
    body = response.json()
    assert body["category"] == "financing" and body["language"] == "en"
    assert [pair[0] for pair in body["alternatives"]][0] == "financing"
    assert client.post("/api/classify", json={}).status_code == 422
    assert client.post("/api/classify", json={"text": "x" * 20_001}).status_code == 422
    noise = client.post("/api/classify", json={"text": "\x00😀" * 5000})
    assert noise.status_code == 200 and noise.json()["category"] is None
