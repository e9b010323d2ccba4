"""``hotline classify``: the classifier from the command line, and its evaluation on a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def classify(
        text: Annotated[str | None, typer.Argument(help="What the caller said")] = None,
        eval_file: Annotated[
            Path | None,
            typer.Option("--eval", help="Score a category<TAB>text file (header line first)"),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="With --eval: JSON output")] = False,
    ) -> None:
        """Classify TEXT (one JSON object), or evaluate the classifier on a labelled file."""
        import routing
        from routing.evaluation import EvaluationFileError, evaluate, report

        if eval_file is None:
            if text is None:
                typer.echo("error: give TEXT or --eval FILE", err=True)
                raise typer.Exit(2)
            typer.echo(json.dumps(routing.classify(text).to_dict(), ensure_ascii=False))
            return
        if not eval_file.is_file():
            typer.echo(f"error: {eval_file}: no such file", err=True)
            raise typer.Exit(2)
        try:
            result = evaluate(eval_file)
        except EvaluationFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(result.summary(), ensure_ascii=False))
        else:
            typer.echo(report(result))
