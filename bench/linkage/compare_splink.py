#!/usr/bin/env python3
"""Compare `carecircle link` with Splink on the FEBRL deduplication sets 1, 2 and 3.

Both run on the same prepared files (`python3 bench/linkage/prepare_febrl.py`), one after the
other in this session, and both are scored the same way: pairwise precision, recall and F1 of
the final clusters against the `truth` column.

Splink is configured as its own FEBRL3 example (docs/demos/examples/duckdb/febrl3) configures
it: blocking on soc_sec_id / given_name / surname / date_of_birth / postcode; NameComparison on
both names, DateOfBirthComparison, Damerau-Levenshtein on soc_sec_id, exact street number and
postcode with term-frequency adjustments; the prior from deterministic rules at recall 0.9; u from
1e6 random pairs; EM blocked on date_of_birth, then on postcode. The example stops at pairwise
predictions; to compare clusters with clusters, Splink's own connected-components clustering is
run at the same threshold carecircle links at (0.9). Splink's time covers reading the CSV,
training, predicting and clustering (not importing the package).

carecircle's time is the whole `carecircle link` process (reading, training, scoring,
clustering, writing the output), measured from outside.

    python3 bench/linkage/compare_splink.py [--python VENV_PYTHON] [--sets 1 2 3] [--repeat 3]

Each engine runs `--repeat` times per set (alternating, so both see the same machine load); the
table shows the median time. Quality is the same on every run (both are deterministic here).

Run it with a Python that has Splink (>= 4) and DuckDB installed, e.g. a venv made with
`python3 -m venv /tmp/splink-venv && /tmp/splink-venv/bin/pip install splink`.
"""
import argparse
import itertools
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = HERE / "data"
BINARY = ROOT / "target" / "release" / "carecircle"
LINK_THRESHOLD = 0.9


def pairwise_quality(predicted: dict, truth: dict) -> tuple:
    """Pairwise precision, recall and F1 of a clustering (record -> label) against the truth."""

    def pairs(labels: dict) -> set:
        groups = defaultdict(list)
        for record, label in labels.items():
            groups[label].append(record)
        return {tuple(sorted(pair)) for members in groups.values() for pair in itertools.combinations(members, 2)}

    predicted_pairs, true_pairs = pairs(predicted), pairs(truth)
    correct = len(predicted_pairs & true_pairs)
    precision = correct / len(predicted_pairs) if predicted_pairs else 1.0
    recall = correct / len(true_pairs) if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def read_truth(path: pathlib.Path) -> dict:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return {row["rec_id"]: row["truth"] for row in csv.DictReader(handle)}


def run_carecircle(path: pathlib.Path) -> tuple:
    """Runs the binary; returns (seconds, predicted clusters)."""
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "clusters.csv"
        started = time.perf_counter()
        subprocess.run(
            [str(BINARY), "link", "--mapping", str(HERE / "febrl.toml"), "--out", str(out), str(path)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        with out.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            record_column, person_column = header.index("record_id"), header.index("person_id")
            predicted = {row[record_column]: row[person_column] for row in reader}
    return seconds, predicted


def run_splink(path: pathlib.Path) -> tuple:
    """Runs Splink as its FEBRL3 example does, then clusters; returns (seconds, predicted clusters)."""
    import logging

    import pandas as pd
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    logging.getLogger("splink").setLevel(logging.ERROR)
    started = time.perf_counter()
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = df.drop(columns=["truth"])
    for column in df.columns:
        df[column] = df[column].str.strip().replace("", None)
    blocking_rules = [
        block_on("soc_sec_id"),
        block_on("given_name"),
        block_on("surname"),
        block_on("date_of_birth"),
        block_on("postcode"),
    ]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=blocking_rules,
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=True,
    )
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(df), settings)
    deterministic_rules = [
        block_on("soc_sec_id"),
        block_on("given_name", "surname", "date_of_birth"),
        "l.given_name = r.surname and l.surname = r.given_name and l.date_of_birth = r.date_of_birth",
    ]
    linker.training.estimate_probability_two_random_records_match(deterministic_rules, recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=LINK_THRESHOLD
    )
    table = clusters.as_pandas_dataframe()
    seconds = time.perf_counter() - started
    predicted = dict(zip(table["rec_id"], table["cluster_id"]))
    return seconds, predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--python", help="run Splink under this interpreter (a venv with splink)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine and set (median time)")
    parser.add_argument("--splink-only", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.splink_only:
        # Child mode: run Splink on one file and print "seconds<TAB>record<TAB>cluster..." lines.
        seconds, predicted = run_splink(args.splink_only)
        print(f"seconds\t{seconds}")
        for record, cluster in predicted.items():
            print(f"{record}\t{cluster}")
        return

    if not BINARY.exists():
        sys.exit(f"{BINARY} is missing: cargo build --release -p carecircle")
    rows = []
    for number in args.sets:
        path = DATA / f"febrl{number}.csv"
        if not path.exists():
            sys.exit(f"{path} is missing: python3 bench/linkage/prepare_febrl.py")
        truth = read_truth(path)
        python = args.python or sys.executable
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(run_carecircle(path))
            child = subprocess.run(
                [python, __file__, "--splink-only", str(path)], check=True, capture_output=True, text=True
            )
            lines = child.stdout.splitlines()
            splink_predicted = dict(line.split("\t") for line in lines[1:])
            # Splink leaves out no record, but keep the comparison honest if it ever did.
            for record in truth:
                splink_predicted.setdefault(record, f"alone:{record}")
            theirs.append((float(lines[0].split("\t")[1]), splink_predicted))
        for engine, runs in (("carecircle", ours), ("splink", theirs)):
            seconds = statistics.median(run[0] for run in runs)
            rows.append((f"febrl{number}", engine, len(truth), seconds, *pairwise_quality(runs[-1][1], truth)))

    print(f"{'set':<8} {'engine':<11} {'records':>7} {'seconds':>8} {'precision':>9} {'recall':>7} {'F1':>7}")
    for name, engine, n, seconds, precision, recall, f1 in rows:
        print(f"{name:<8} {engine:<11} {n:>7} {seconds:>8.2f} {precision:>9.4f} {recall:>7.4f} {f1:>7.4f}")
    for name in dict.fromkeys(row[0] for row in rows):
        ours = next(row for row in rows if row[0] == name and row[1] == "carecircle")
        theirs = next(row for row in rows if row[0] == name and row[1] == "splink")
        print(f"{name}: carecircle {theirs[3] / ours[3]:.1f}x faster, F1 {ours[6]:.4f} vs {theirs[6]:.4f}")
    print("load:", re.sub(r"\s+", " ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()))


if __name__ == "__main__":
    main()
