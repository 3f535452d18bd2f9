"""The database: schema, migrations, writes and reads."""
