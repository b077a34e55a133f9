"""Alembic environment of the prediction log. `emailrouter.predlog.migrate` hands Alembic its connection; the alembic
command line (`alembic -c emailrouter/migrations/alembic.ini revision --autogenerate -m "..."`) connects to the
database of EMAILROUTER_LOG_URL."""
from alembic import context

from emailrouter.predlog import Base, log_engine


def run(connection):
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.config.attributes.get("connection") is not None:
    run(context.config.attributes["connection"])
else:
    from emailrouter.core import load_settings
    with log_engine(load_settings().log_url).begin() as conn:
        run(conn)
