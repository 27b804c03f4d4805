"""Database layer: engine, local cluster, schema models, migrations, loaders, queries."""
