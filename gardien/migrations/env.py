from __future__ import annotations

from alembic import context

import gardien.audit.models
import gardien.consent.models
import gardien.core.models
import gardien.datamap.models
import gardien.psd2.models
import gardien.registers.models
import gardien.retention.models
import gardien.rights.models  # noqa: F401  (registers the tables)
from gardien.core.db import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
