-- HEALPix range partitions.
--
-- A table partitioned BY RANGE (hpx29) gets one partition per nested HEALPix
-- pixel at part_order: pixel p covers hpx29 in [p << s, (p+1) << s) with
-- s = 2 * (29 - part_order). Indexes declared on the parent are created in
-- every partition by PostgreSQL itself.

CREATE OR REPLACE FUNCTION jsp.create_hpx_partitions(parent regclass, part_order integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    shift   integer := 2 * (29 - part_order);
    npix    bigint  := 12 * (4::bigint ^ part_order);
    relname text;
    nspname text;
    created integer := 0;
    lo      bigint;
BEGIN
    IF part_order < 0 OR part_order > 8 THEN
        -- order 8 is already 786432 partitions: more is never what anyone wants.
        RAISE EXCEPTION 'partition order must be within 0..8, got %', part_order;
    END IF;
    SELECT c.relname, n.nspname INTO relname, nspname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;
    -- An integer FOR loop variable is always int4: widen before shifting.
    FOR p IN 0 .. npix - 1 LOOP
        lo := p::bigint << shift;
        IF to_regclass(format('%I.%I', nspname, format('%s_p%s_%s', relname, part_order, p))) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%s) TO (%s)',
                nspname, format('%s_p%s_%s', relname, part_order, p), parent,
                lo, (p::bigint + 1) << shift);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END;
$$;

COMMENT ON FUNCTION jsp.create_hpx_partitions(regclass, integer) IS
  'Create the missing HEALPix range partitions (order part_order) of a table partitioned on hpx29';

-- The partition order of a table partitioned on hpx29, read back from its
-- partitions (12 * 4^order of them); NULL when it has none.
CREATE OR REPLACE FUNCTION jsp.hpx_partition_order(parent regclass)
RETURNS integer
LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN count(*) = 0 THEN NULL
                ELSE round(log(4, count(*)::numeric / 12))::integer END
      FROM pg_inherits WHERE inhparent = parent
$$;
