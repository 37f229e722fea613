"""Fills an OpenTAXII collection with the blocks taxii.py fill sends taxiway,
written straight into its SQLite database in one transaction.

  .peers/bin/python opentaxii_fill.py DATA_DB COLLECTION BLOCKS

Its inbox stores about 25 blocks a second here, so 10,000 would take
minutes. The rows are what its inbox writes for such a block (content,
binding, a label at microsecond precision, the link to the collection and
the collection's volume), through OpenTAXII's own table definitions; run it
after opentaxii-sync-data has created them, while gunicorn is stopped or
idle. Labels are one microsecond apart, oldest first, ending now.
"""
import datetime
import sys

import sqlalchemy
from opentaxii.persistence.sqldb.models import (
    ContentBlock,
    DataCollection,
    collection_to_content_block,
)

from taxii import STIX, stix_package


def main():
    database, collection, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    blocks = ContentBlock.__table__
    collections = DataCollection.__table__
    now = datetime.datetime.now(datetime.timezone.utc)
    with engine.begin() as connection:
        collection_id = connection.execute(
            sqlalchemy.select(collections.c.id).where(collections.c.name == collection)
        ).scalar_one()
        first = (connection.execute(sqlalchemy.select(sqlalchemy.func.max(blocks.c.id))).scalar() or 0) + 1
        rows = [
            {
                "id": first + n,
                "date_created": label,
                "timestamp_label": label,
                "content": stix_package(n).encode(),
                "binding_id": STIX,
                "binding_subtype": None,
            }
            for n in range(count)
            for label in [now - datetime.timedelta(microseconds=count - n)]
        ]
        connection.execute(blocks.insert(), rows)
        connection.execute(
            collection_to_content_block.insert(),
            [{"collection_id": collection_id, "content_block_id": first + n} for n in range(count)],
        )
        connection.execute(
            collections.update()
            .where(collections.c.id == collection_id)
            .values(volume=collections.c.volume + count)
        )


if __name__ == "__main__":
    main()
