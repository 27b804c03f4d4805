-- TAP_SCHEMA as views over the PostgreSQL catalog.
--
-- Every table the querying role may SELECT (partitions excluded) appears,
-- with its COMMENT as description; columns get datatype/arraysize/xtype from
-- their PostgreSQL type, unit and UCD from jsp.tap_annotation when present,
-- otherwise from the project's column-naming conventions (_mas, _arcsec,
-- _nm, _mjd, _njy, _mag, ra/dec, ...). Foreign keys come from pg_constraint.
-- Because the views evaluate has_table_privilege() for current_user, each
-- user sees the public tables plus their own private schema, and a table a
-- later tier creates and grants to jsp_reader appears with no code change.

CREATE SCHEMA IF NOT EXISTS tap_schema;
COMMENT ON SCHEMA tap_schema IS 'IVOA TAP 1.1 metadata: schemas, tables, columns, keys';

-- Unit and UCD implied by a column name (the conventions of jspdb.db.models).
CREATE OR REPLACE FUNCTION jsp.tap_guess_unit(col text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN col IN ('ra', 'dec', 's_ra', 's_dec', 'ra_center', 'dec_center', 's_fov') THEN 'deg'
        WHEN col IN ('pmra', 'pmdec', 'pmra_err', 'pmdec_err') THEN 'mas/yr'
        WHEN col IN ('parallax', 'parallax_err') THEN 'mas'
        WHEN col LIKE '%\_mas' THEN 'mas'
        WHEN col LIKE '%\_arcsec' THEN 'arcsec'
        WHEN col LIKE '%\_deg' THEN 'deg'
        WHEN col LIKE '%\_nm' THEN 'nm'
        WHEN col LIKE '%\_mjd' OR col IN ('t_min', 't_max') THEN 'd'
        WHEN col LIKE '%\_njy' THEN 'nJy'
        WHEN col LIKE '%mag' OR col LIKE '%mag\_err' THEN 'mag'
        WHEN col LIKE '%\_s' OR col = 't_exptime' THEN 's'
        WHEN col LIKE '%\_bytes' THEN 'byte'
        WHEN col IN ('em_min', 'em_max') THEN 'm'
        WHEN col = 'ref_epoch' THEN 'yr'
        ELSE NULL END
$$;

CREATE OR REPLACE FUNCTION jsp.tap_guess_ucd(col text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN col = 'ra' THEN 'pos.eq.ra;meta.main'
        WHEN col = 'dec' THEN 'pos.eq.dec;meta.main'
        WHEN col IN ('s_ra', 'ra_center') THEN 'pos.eq.ra'
        WHEN col IN ('s_dec', 'dec_center') THEN 'pos.eq.dec'
        WHEN col IN ('ra_err_mas', 'dec_err_mas') THEN 'stat.error;pos.eq'
        WHEN col = 'pmra' THEN 'pos.pm;pos.eq.ra'
        WHEN col = 'pmdec' THEN 'pos.pm;pos.eq.dec'
        WHEN col IN ('pmra_err', 'pmdec_err') THEN 'stat.error;pos.pm'
        WHEN col = 'parallax' THEN 'pos.parallax'
        WHEN col = 'parallax_err' THEN 'stat.error;pos.parallax'
        WHEN col = 'hpx29' THEN 'pos.healpix'
        WHEN col IN ('source_id', 'object_id') THEN 'meta.id;meta.main'
        WHEN col LIKE '%\_id' THEN 'meta.id'
        WHEN col LIKE '%mag\_err' OR col LIKE '%flux\_err%' THEN 'stat.error;phot.mag'
        WHEN col LIKE '%mag' THEN 'phot.mag'
        WHEN col LIKE 'flux%' THEN 'phot.flux'
        WHEN col LIKE '%\_mjd' THEN 'time.epoch'
        WHEN col LIKE 'wl\_%' THEN 'em.wl'
        WHEN col = 'flags' THEN 'meta.code'
        ELSE NULL END
$$;

-- VOTable datatype, arraysize and xtype of a PostgreSQL type.
CREATE OR REPLACE FUNCTION jsp.tap_votype(typ regtype, OUT datatype text, OUT arraysize text, OUT xtype text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT * FROM (VALUES (CASE typ
        WHEN 'smallint'::regtype THEN 'short'
        WHEN 'integer'::regtype THEN 'int'
        WHEN 'bigint'::regtype THEN 'long'
        WHEN 'real'::regtype THEN 'float'
        WHEN 'double precision'::regtype THEN 'double'
        WHEN 'numeric'::regtype THEN 'double'
        WHEN 'boolean'::regtype THEN 'boolean'
        WHEN 'spoint'::regtype THEN 'double'
        WHEN 'scircle'::regtype THEN 'double'
        WHEN 'spoly'::regtype THEN 'double'
        WHEN 'bytea'::regtype THEN 'unsignedByte'
        ELSE 'char' END,
      CASE typ
        WHEN 'spoint'::regtype THEN '2'
        WHEN 'scircle'::regtype THEN '3'
        WHEN 'spoly'::regtype THEN '*'
        WHEN 'smallint'::regtype THEN NULL WHEN 'integer'::regtype THEN NULL
        WHEN 'bigint'::regtype THEN NULL WHEN 'real'::regtype THEN NULL
        WHEN 'double precision'::regtype THEN NULL WHEN 'numeric'::regtype THEN NULL
        WHEN 'boolean'::regtype THEN NULL
        ELSE '*' END,
      CASE typ
        WHEN 'spoint'::regtype THEN 'point'
        WHEN 'scircle'::regtype THEN 'circle'
        WHEN 'spoly'::regtype THEN 'polygon'
        WHEN 'timestamp with time zone'::regtype THEN 'timestamp'
        WHEN 'timestamp without time zone'::regtype THEN 'timestamp'
        ELSE NULL END)) AS t(datatype, arraysize, xtype)
$$;

-- Tables visible to the current role: ordinary, partitioned, views, matviews.
CREATE OR REPLACE VIEW tap_schema.tables AS
SELECT n.nspname::text AS schema_name,
       (n.nspname || '.' || c.relname)::text AS table_name,
       CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END::text AS table_type,
       CASE WHEN n.nspname = 'ivoa' AND c.relname = 'obscore' THEN 'ivo://ivoa.net/std/obscore#table-1.1'
            END::text AS utype,
       obj_description(c.oid, 'pg_class')::text AS description,
       (CASE n.nspname WHEN 'ivoa' THEN 1 WHEN 'jsp' THEN 2 WHEN 'tap_schema' THEN 9 ELSE 5 END)::integer
           AS table_index
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
   AND n.nspname NOT LIKE 'pg\_%'
   AND has_schema_privilege(n.oid, 'USAGE')
   AND has_table_privilege(c.oid, 'SELECT');

CREATE OR REPLACE VIEW tap_schema.schemas AS
SELECT n.nspname::text AS schema_name,
       NULL::text AS utype,
       obj_description(n.oid, 'pg_namespace')::text AS description,
       (CASE n.nspname WHEN 'ivoa' THEN 1 WHEN 'jsp' THEN 2 WHEN 'tap_schema' THEN 9 ELSE 5 END)::integer
           AS schema_index
  FROM pg_namespace n
 WHERE EXISTS (SELECT 1 FROM tap_schema.tables t WHERE t.schema_name = n.nspname);

CREATE OR REPLACE VIEW tap_schema.columns AS
SELECT (n.nspname || '.' || c.relname)::text AS table_name,
       a.attname::text AS column_name,
       ann.utype::text AS utype,
       coalesce(ann.ucd, jsp.tap_guess_ucd(a.attname))::text AS ucd,
       coalesce(ann.unit, jsp.tap_guess_unit(a.attname))::text AS unit,
       coalesce(ann.description, col_description(c.oid, a.attnum))::text AS description,
       vt.datatype::text AS datatype,
       vt.arraysize::text AS arraysize,
       vt.xtype::text AS xtype,
       NULL::integer AS "size",
       (CASE WHEN coalesce(ann.principal,
                           a.attname IN ('ra', 'dec', 's_ra', 's_dec')
                           OR a.attnum = ANY (pk.conkey)) THEN 1 ELSE 0 END)::integer AS principal,
       (CASE WHEN EXISTS (SELECT 1 FROM pg_index i
                           WHERE i.indrelid = c.oid
                             AND (a.attnum = i.indkey[0]
                                  OR (a.attname IN ('ra', 'dec')
                                      AND pg_get_indexdef(i.indexrelid) LIKE '%q3c_ang2ipix%')))
             THEN 1 ELSE 0 END)::integer AS indexed,
       (CASE WHEN n.nspname IN ('tap_schema', 'ivoa') THEN 1 ELSE 0 END)::integer AS std,
       a.attnum::integer AS column_index
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
  CROSS JOIN LATERAL jsp.tap_votype(a.atttypid::regtype) vt
  LEFT JOIN LATERAL (
        SELECT * FROM jsp.tap_annotation x
         WHERE x.column_name = a.attname
           AND x.schema_name IN (n.nspname, '*') AND x.table_name IN (c.relname, '*')
         ORDER BY (x.schema_name = '*'), (x.table_name = '*') LIMIT 1) ann ON true
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
   AND n.nspname NOT LIKE 'pg\_%'
   AND has_schema_privilege(n.oid, 'USAGE')
   AND has_table_privilege(c.oid, 'SELECT');

CREATE OR REPLACE VIEW tap_schema.keys AS
SELECT (n.nspname || '.' || c.relname || '.' || k.conname)::text AS key_id,
       (n.nspname || '.' || c.relname)::text AS from_table,
       (tn.nspname || '.' || t.relname)::text AS target_table,
       NULL::text AS utype,
       obj_description(k.oid, 'pg_constraint')::text AS description
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class t ON t.oid = k.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE k.contype = 'f' AND NOT c.relispartition AND k.conparentid = 0
   AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
   AND has_schema_privilege(tn.oid, 'USAGE') AND has_table_privilege(t.oid, 'SELECT');

CREATE OR REPLACE VIEW tap_schema.key_columns AS
SELECT (n.nspname || '.' || c.relname || '.' || k.conname)::text AS key_id,
       fa.attname::text AS from_column,
       ta.attname::text AS target_column
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class t ON t.oid = k.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
  CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS u(fk, tk)
  JOIN pg_attribute fa ON fa.attrelid = c.oid AND fa.attnum = u.fk
  JOIN pg_attribute ta ON ta.attrelid = t.oid AND ta.attnum = u.tk
 WHERE k.contype = 'f' AND NOT c.relispartition AND k.conparentid = 0
   AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
   AND has_schema_privilege(tn.oid, 'USAGE') AND has_table_privilege(t.oid, 'SELECT');

COMMENT ON VIEW tap_schema.schemas IS 'Schemas visible to you';
COMMENT ON VIEW tap_schema.tables IS 'Tables visible to you';
COMMENT ON VIEW tap_schema.columns IS 'Columns of the tables visible to you';
COMMENT ON VIEW tap_schema.keys IS 'Foreign keys between tables visible to you';
COMMENT ON VIEW tap_schema.key_columns IS 'Columns of the foreign keys';

GRANT USAGE ON SCHEMA tap_schema TO jsp_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_schema TO jsp_reader;
