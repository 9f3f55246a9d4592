"""The learning commands: train (also --compare) and predict, with their options and progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from normcli.cli.app import app
from normcli.cli.options import (
    Debug,
    Dtype,
    Force,
    Format,
    Inputs,
    NoHeaders,
    NullValues,
    Quiet,
    Scheduler,
    SchedulerFile,
    Separator,
    StorageOption,
    Text,
    _parse_storage_options,
    _reading,
    _refuse_binary_on_terminal,
    _run,
    _split_list,
    _split_names,
)
from normcli.context import Env
from normcli.errors import UsageError


def _parse_ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{option} takes comma-separated integers, e.g. {option} 64,64; got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{option} needs positive sizes, got '{text}'")
    return values


def _parse_floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} takes numbers, e.g. {option} 0.01,0.1; got '{text}'") from None
    if not values or any(not v > 0 for v in values):
        raise UsageError(f"{option} must be positive, got '{text}'")
    return values


def _parse_bn_momentum(text: str) -> float | None:
    if text.strip().lower() == "cumulative":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--bn-momentum takes a number in [0, 1] or 'cumulative', not '{text}'") from None
    if not 0.0 <= value <= 1.0:
        raise UsageError(
            f"--bn-momentum must be in [0, 1], not {text}",
            hint="PyTorch's convention: the weight of the new batch; 'cumulative' for a plain average",
        )
    return value


def _parse_keep(text: str | None) -> list[str] | str | None:
    if text is None:
        return None
    if text.strip().lower() in ("all", "none"):
        return text.strip().lower()
    names = _split_names([text], "--keep")
    if not names:
        raise UsageError("--keep takes column names, 'all' or 'none'")
    return names


def _feedback(env: Env, inputs: list[str] | None) -> Any:
    """Notes and warnings on stderr; progress (rows, bytes read, time) only when stderr is a terminal."""
    from normcli.learn.dataset import Feedback

    feedback = Feedback(note=env.note, warn=env.warn)
    progress = env.progress(", ".join(inputs or ["<stdin>"]), inputs)
    if progress.enabled:
        feedback.progress, feedback.progress_done = progress.report, progress.stop
    return feedback


@app.command(short_help="Train a numpy batch-norm MLP; save it as .npz.")
def train(
    ctx: typer.Context,
    inputs: Inputs = None,
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")] = ...,  # type: ignore[assignment]
    stats: Annotated[str | None, typer.Option("--stats", "-s", help="Normalize numeric features with this stats file ('-': stdin; default: fit standard stats on the training split).")] = None,
    features: Annotated[list[str] | None, typer.Option("--features", help="Feature columns: names, globs, re:REGEX, ranges, comma-separated (default: all but the target, id-like and unusable columns).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", "-x", help="Columns that are not features.")] = None,
    categorical: Annotated[list[str] | None, typer.Option("--categorical", help="One-hot encode these columns (default: text, boolean and integer columns with at most 10 values).")] = None,
    numeric: Annotated[list[str] | None, typer.Option("--numeric", help="Treat these integer columns as numbers, not categories.")] = None,
    max_categories: Annotated[int, typer.Option("--max-categories", help="One-hot columns per categorical feature at most; rarer categories share an <other> column.")] = 50,
    task: Annotated[str, typer.Option("--task", help="auto, classification or regression.")] = "auto",
    hidden: Annotated[str, typer.Option("--hidden", help="Hidden layer sizes.")] = "64,64",
    activation: Annotated[str, typer.Option("--activation", help="relu, tanh, gelu or leaky_relu.")] = "relu",
    bn_placement: Annotated[str, typer.Option("--bn-placement", help="Batch norm 'after' each activation or 'before' it (with --compare: one or both, e.g. before,after).")] = "after",
    bn_momentum: Annotated[str, typer.Option("--bn-momentum", help="Weight of each batch in the running statistics (PyTorch convention), or 'cumulative' for their plain average.")] = "0.1",
    no_batchnorm: Annotated[bool, typer.Option("--no-batchnorm", help="No batch normalization.")] = False,
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout probability after each hidden block.")] = 0.0,
    epochs: Annotated[int, typer.Option("--epochs", "-e", help="Epochs to train at most.")] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Mini-batch size.")] = 32,
    lr: Annotated[str, typer.Option("--lr", help="Learning rate (with --compare, a comma-separated list).")] = "0.003",
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam, or sgd (with --momentum).")] = "adam",
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    nesterov: Annotated[bool, typer.Option("--nesterov", help="Nesterov momentum.")] = False,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="L2 weight decay.")] = 0.0,
    schedule: Annotated[str, typer.Option("--schedule", help="Learning-rate schedule: none, step or cosine.")] = "none",
    val_split: Annotated[float, typer.Option("--val-split", help="Fraction held out for validation (stratified for classes).")] = 0.2,
    early_stopping: Annotated[int, typer.Option("--early-stopping", help="Stop after this many epochs without a better val loss and keep the best epoch's weights (0: off; off without validation rows).")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, initialization and shuffling.")] = 0,
    float64: Annotated[bool, typer.Option("--float64", help="Compute in float64 (default float32).")] = False,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Model file (.npz; default model.npz). Not with --compare.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the metrics document on stdout.")] = False,
    metrics_out: Annotated[str | None, typer.Option("--metrics-out", help="Write the metrics document to this file.")] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="Write learning curves to this PNG (needs normcli[plot]).")] = None,
    force: Force = False,
    compare: Annotated[bool, typer.Option("--compare", help="Compare raw inputs, normalized inputs, and normalized + batch norm.")] = False,
    target_loss: Annotated[float | None, typer.Option("--target-loss", help="With --compare: the loss for 'epochs to target' (default: the median over runs of their best val loss).")] = None,
    null_values: NullValues = None,
    format: Format = None,
    separator: Separator = None,
    no_headers: NoHeaders = False,
    text: Text = None,
    dtype: Dtype = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train a numpy MLP with batch normalization on normalized features; save it as .npz.

    Numbers are normalized with --stats, or with standard stats fitted on the training split
    only; text, boolean and few-valued integer columns are one-hot encoded with the training
    split's categories; id-like columns are left out. With --compare, trains the same network on
    raw inputs, normalized inputs, and normalized inputs with batch norm (at each --lr) and
    prints what normalization changed.

    Example:

    \b
        normcli train train.csv --target species --epochs 30 -o model.npz
        normcli train train.csv --target price --stats stats.json --json > metrics.json
        normcli train train.csv --target species --compare --lr 0.01,0.1,1.0 --plot curves.png
    """

    def body(env: Env) -> None:
        from normcli.data.inputs import named_files
        from normcli.data.outputs import check_distinct_outputs, check_output_target
        from normcli.learn.dataset import DataOptions, Reading
        from normcli.nn import NetworkConfig, TrainConfig

        if plot is not None:
            from normcli.plots import require_matplotlib

            require_matplotlib()
        if compare and output is not None:
            raise UsageError("--compare writes no model, so -o/--output has no use there", hint="drop -o, or drop --compare")
        if output == "-":
            raise UsageError(
                "the model cannot go to stdout", hint="name a file with -o model.npz; --json prints the metrics"
            )
        if val_split == 0 and early_stopping and not compare:
            source = ctx.get_parameter_source("early_stopping")
            if getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT"):
                raise UsageError(
                    "--early-stopping watches the validation loss, and --val-split 0 leaves no validation rows",
                    hint="keep a validation split, or drop --early-stopping",
                )
            env.note(f"--val-split 0: no validation rows, so no early stopping: all {epochs} epochs run")
        if plot == "-":
            raise UsageError("the plot cannot go to stdout", hint="name a PNG file with --plot curves.png")
        check_distinct_outputs({"-o": None if compare else output or "model.npz", "--metrics-out": metrics_out, "--plot": plot})
        read_files = [*named_files(inputs or []), *([Path(stats)] if stats else [])]
        if not compare:
            from normcli.data.outputs import check_replaceable
            from normcli.learn.modelfile import is_model_archive

            check_output_target(output or "model.npz", read_files, plain="a model file")
            check_replaceable(output or "model.npz", is_model_archive, "normcli model file", force)
        from normcli.data.outputs import check_replaceable
        from normcli.learn.train import is_metrics_file, is_plot_file

        for extra, what, is_kind, kind in (
            (metrics_out, "the metrics file", is_metrics_file, "normcli metrics file"),
            (plot, "the plot", is_plot_file, "PNG image"),
        ):  # checked now, not after training
            if extra is not None and extra != "-":
                check_output_target(extra, read_files, plain=what)
                check_replaceable(extra, is_kind, kind, force)
        rates = _parse_floats(lr, "--lr")
        if len(rates) > 1 and not compare:
            raise UsageError("several --lr values need --compare")
        placements = _split_list(bn_placement) or []
        if len(placements) != 1 and not compare:
            raise UsageError("several --bn-placement values need --compare", hint="e.g. --compare --bn-placement before,after")
        nulls = _split_list(null_values)
        reading = Reading(format=format, null_values=tuple(nulls) if nulls is not None else None, **_reading(separator, no_headers, text, dtype))  # type: ignore[arg-type]
        data = DataOptions(
            target=target,
            features=tuple(_split_names(features, "--features") or ()) if features else None,
            exclude=tuple(_split_names(exclude, "--exclude") or ()),
            categorical=tuple(_split_names(categorical, "--categorical") or ()),
            numeric=tuple(_split_names(numeric, "--numeric") or ()),
            max_categories=max_categories,
            task=task,
            val_split=val_split,
            seed=seed,
            stats_path=stats,
        )
        network = TrainConfig(
            network=NetworkConfig(
                hidden=_parse_ints(hidden, "--hidden"),
                activation=activation,
                bn_placement="none" if no_batchnorm else (placements[0] if not compare else "after"),
                bn_momentum=_parse_bn_momentum(bn_momentum),
                dropout=dropout,
                dtype="float64" if float64 else "float32",
            ),
            epochs=epochs,
            batch_size=batch_size,
            lr=rates[0],
            optimizer=optimizer,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            schedule=schedule,
            patience=early_stopping or None,
            seed=seed,
        )
        feedback = _feedback(env, inputs)
        full_numbers = not env.stdout_is_terminal
        if compare:
            document, table = _run_compare(env, inputs, data, network, rates, placements, reading, feedback, full_numbers)
        else:
            document, table = _run_train(env, inputs, data, network, output or "model.npz", reading, feedback, full_numbers)
        document_text = json.dumps(document, indent=2, allow_nan=False) + "\n"
        if metrics_out is not None:
            from normcli.data.outputs import write_text_output

            write_text_output(document_text, metrics_out)
        if json_output:
            env.write_text(document_text)
        else:
            env.write_text(table)

    def _run_train(env, inputs, data, network, model_path, reading, feedback, full_numbers):  # noqa: ANN001, ANN202
        from normcli.learn.train import train as run_train
        from normcli.report import epoch_line, train_table

        progress = env.console() if env.stderr_is_terminal and not env.quiet else None

        def on_epoch(row: dict) -> None:
            if progress is not None:
                progress.print(epoch_line(row, network.epochs), highlight=True)

        trained = run_train(
            inputs or [], data, network, model_path=model_path, reading=reading, feedback=feedback,
            on_epoch=on_epoch, stdin=env.stdin, stdin_is_terminal=env.stdin_is_terminal,
        )
        if plot is not None:
            from normcli.plots import plot_history

            plot_history(trained.result.history, plot, f"{trained.prepared.target}")
        return trained.metrics, train_table(trained.metrics, full_numbers=full_numbers)

    def _run_compare(env, inputs, data, network, rates, placements, reading, feedback, full_numbers):  # noqa: ANN001, ANN202
        from normcli.learn.compare import compare as run_compare
        from normcli.report import compare_table

        if no_batchnorm:
            raise UsageError("--compare trains with and without batch norm itself", hint="drop --no-batchnorm")

        def on_run(row) -> None:  # noqa: ANN001
            if env.stderr_is_terminal and not env.quiet:
                state = f"diverged ({row.diverged_because})" if row.diverged else f"val loss {row.final_val_loss:.4g}"
                env.note(f"lr {row.lr:g}, {row.setting}: {row.epochs_run} epochs, {state}")

        report = run_compare(
            inputs or [], data, network, learning_rates=rates, placements=placements, target_loss=target_loss,
            reading=reading, feedback=feedback, on_run=on_run, stdin=env.stdin, stdin_is_terminal=env.stdin_is_terminal,
        )
        if plot is not None:
            from normcli.plots import plot_comparison

            plot_comparison(report.rows, plot, target_loss=report.target_loss)
        return report.document(), compare_table(report, full_numbers=full_numbers)

    _run(body, quiet)


@app.command(short_help="Predict with a trained model on raw data.")
def predict(
    inputs: Inputs = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model file written by normcli train.")] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option("--output", "-o", help="Predictions file ('-' for stdout).")] = "-",
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column with true values: also print metrics.")] = None,
    keep: Annotated[str | None, typer.Option("--keep", help="Input columns to write beside the predictions: names or patterns (as --features), 'all' or 'none' (default: id-like columns, else a 1-based row number).")] = None,
    missing: Annotated[str, typer.Option("--missing", help="Missing feature values: 'impute' (training mean; all-zero categories) or 'error'.")] = "impute",
    unknown: Annotated[str, typer.Option("--unknown", help="Categories not seen in training: 'zero' (all-zero one-hot) or 'error'.")] = "zero",
    output_format: Annotated[str | None, typer.Option("--output-format", help="csv, tsv, parquet, ndjson.")] = None,
    null_values: NullValues = None,
    format: Format = None,
    separator: Separator = None,
    no_headers: NoHeaders = False,
    text: Text = None,
    dtype: Dtype = None,
    scheduler: Scheduler = None,
    scheduler_file: SchedulerFile = None,
    storage_option: StorageOption = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Predict with a trained model on raw data (its normalization and encoding are applied).

    Writes the kept columns (default: id-like columns, else a row number), the prediction, and
    per-class probabilities. Missing feature values are imputed and counted (--missing error
    refuses them); unseen categories are counted (--unknown error refuses them). A folder
    (-o out/), and any output with --scheduler, gets a dataset: one part per input fragment.

    Example:

    \b
        normcli predict new.csv --model model.npz -o predictions.csv
        normcli predict new.csv --model model.npz --keep all --missing error > scored.csv
        normcli predict labelled.csv --model model.npz --target species > /dev/null
        normcli predict 's3://bucket/new/*.parquet' --model model.npz --scheduler tcp://10.0.0.5:8786 -o s3://bucket/scored/
    """

    def body(env: Env) -> None:
        from normcli.learn.dataset import Reading
        from normcli.learn.predict import predict as run_predict
        from normcli.scaling.engine import engine_for

        _refuse_binary_on_terminal(env, output, output_format)
        nulls = _split_list(null_values)
        with engine_for(scheduler, scheduler_file) as engine:
            report = run_predict(
                inputs or [], model=model, output=output, target=target, output_format_name=output_format,
                reading=Reading(format=format, null_values=tuple(nulls) if nulls is not None else None, **_reading(separator, no_headers, text, dtype)),  # type: ignore[arg-type]
                keep=_parse_keep(keep), missing=missing, unknown=unknown, feedback=_feedback(env, inputs),
                storage=_parse_storage_options(storage_option), engine=engine,
                stdin=env.stdin, stdout=env.stdout, stdin_is_terminal=env.stdin_is_terminal,
            )
        if report.metrics is not None:
            env.note("metrics on " + ", ".join(inputs or ["<stdin>"]) + ": " + ", ".join(f"{k} {v:.4g}" for k, v in report.metrics.items()))
        if output != "-":
            env.note(f"wrote {report.rows} predictions to {output}")

    _run(body, quiet)
