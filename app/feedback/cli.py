"""The corrections store from the command line: export them as a dataset, or upgrade the schema.

    lenet5 feedback export --out runs/feedback       # from LENET5_FEEDBACK_URL or _DB
    lenet5 feedback export --url postgresql://lenet5@db/lenet5 --out runs/feedback
    lenet5 feedback migrate                          # bring a deployed store's schema up to date

The store is the one the service uses: LENET5_FEEDBACK_URL when set (PostgreSQL), else the
SQLite file in LENET5_FEEDBACK_DB; --url and --db override them.
"""

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from app.errors import StoreError
from app.feedback.dataset import FRAME, DatasetError, Example, write
from app.feedback.store import Store
from app.settings import Settings

PAGE = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = sub.add_parser("export", help="write the corrections as a dataset for training")
    export.add_argument("--out", type=Path, required=True, help="new directory to write")
    export.add_argument("--seed", type=int, default=0, help="seed of the train/held-out split")
    export.add_argument(
        "--held-out",
        type=float,
        default=0.2,
        help="share of the corrections held out for evaluation (default: %(default)s)",
    )
    migrate = sub.add_parser("migrate", help="upgrade the store's schema to the newest revision")
    for each in (export, migrate):
        each.add_argument("--url", help="database URL (default: LENET5_FEEDBACK_URL)")
        each.add_argument("--db", type=Path, help="SQLite data directory (LENET5_FEEDBACK_DB)")


def open_store(args: argparse.Namespace) -> Store:
    settings = Settings()
    url: str | None = args.url
    if url is None and settings.feedback_url is not None:
        url = settings.feedback_url.get_secret_value()
    # Only `migrate` changes the schema: an export reads the database as it is.
    return Store.open(url, args.db or settings.feedback_db, upgrade=args.action == "migrate")


def examples(store: Store) -> Iterator[Example]:
    after = 0
    while page := store.records(after=after, limit=PAGE):
        for row in page:
            yield Example(
                id=row["id"],
                sha256=row["sha256"],
                frame=np.frombuffer(row["frame"], np.uint8).reshape(FRAME, FRAME),
                label=row["label"],
                predicted=row["predicted"] or "",
                version=row["version"] or "",
                source=row["source"] or "",
                created=row["created"].isoformat(),
            )
        after = page[-1]["id"]


def main(args: argparse.Namespace) -> int:
    if args.action == "export" and not 0 <= args.held_out < 1:
        raise SystemExit("--held-out must be at least 0 and below 1")
    store = open_store(args)
    try:
        if args.action == "migrate":
            store.migrate()
            print(f"{store.name}: schema up to date")
            return 0
        manifest = write(
            args.out, examples(store), seed=args.seed, held_out=args.held_out, store=store.name
        )
    except (StoreError, DatasetError) as exc:
        raise SystemExit(f"lenet5 feedback: {exc}") from None
    finally:
        store.close()
    counts = manifest["counts"]
    print(
        f"{args.out}: {counts['train']} corrections to train on, {counts['held_out']} held out "
        f"(seed {args.seed}), from {store.name}"
    )
    return 0
