"""The example team's ETL job: one task turns one CSV partition into per-group figures."""
