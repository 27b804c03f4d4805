"""Tier 0: survey images and catalogs into the warehouse.

- `jspdb.ingest.adapters` -- one small adapter per survey delivery convention
  (registry), plus a generic one driven by a mapping file;
- `jspdb.ingest.wcs` -- footprints, centres and pixel scales from a WCS; the WCS as stored text;
- `jspdb.ingest.masks` -- survey mask bits to the jspdb mask convention;
- `jspdb.ingest.datastore` -- file registration (copy or reference, SHA-256);
- `jspdb.ingest.images` -- the batch ingest of images (parallel, idempotent);
- `jspdb.ingest.refcat` -- reference catalogs from Parquet, FITS or CSV.
"""
