"""Alembic's environment: run on the connection the store hands over (Store.migrate), or on
`sqlalchemy.url` when Alembic's own command line is pointed at a database."""

import sqlalchemy as sa
from alembic import context

from app.feedback.store import metadata

config = context.config
connection = config.attributes.get("connection")


def run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it: Alembic's batch mode does that for both.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as own:
        run(own)
