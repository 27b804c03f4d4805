-- Per-release catalog schemas.
--
-- A release (dr1, dr2, ...) is a schema of its own holding the concordance
-- catalogs. Both tables are RANGE-partitioned on hpx29 (one partition per
-- HEALPix pixel at the release's partition order) with a q3c index in every
-- partition. No constraint looks across partitions: object_id encodes the
-- HEALPix pixel it was born in (see jspdb.ids), so ids need no sequence.

CREATE OR REPLACE FUNCTION jsp.create_release_schema(rel_name text, part_order integer)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF rel_name !~ '^[a-z][a-z0-9_]{0,30}$' THEN
        RAISE EXCEPTION 'bad release name %: lower-case letters, digits and _ only', rel_name;
    END IF;
    EXECUTE format('CREATE SCHEMA %I', rel_name);
    EXECUTE format('COMMENT ON SCHEMA %I IS %L', rel_name, 'jspdb concordance release ' || rel_name);

    EXECUTE format($f$
        CREATE TABLE %I.object (
            object_id      bigint           NOT NULL,
            hpx29          bigint           NOT NULL,
            ra             double precision NOT NULL CHECK (ra >= 0 AND ra < 360),
            dec            double precision NOT NULL CHECK (dec BETWEEN -90 AND 90),
            ra_err_mas     real,
            dec_err_mas    real,
            tile_order     smallint         NOT NULL,
            tile_ipix      bigint           NOT NULL,
            detect_band_id smallint REFERENCES jsp.band (band_id),
            is_point       boolean,
            sersic_n       real,
            r_half_arcsec  real,
            e1             real,
            e2             real,
            bulge_frac     real,
            flags          integer          NOT NULL DEFAULT 0,
            job_id         bigint,
            PRIMARY KEY (hpx29, object_id)
        ) PARTITION BY RANGE (hpx29)$f$, rel_name);
    EXECUTE format($f$
        COMMENT ON TABLE %I.object IS 'Concordance objects detected on the space-based coadds'$f$, rel_name);

    EXECUTE format($f$
        CREATE TABLE %I.forced_photometry (
            object_id     bigint           NOT NULL,
            hpx29         bigint           NOT NULL,
            band_id       smallint         NOT NULL REFERENCES jsp.band (band_id),
            flux_njy      double precision,
            flux_err_njy  double precision,
            chi2          real,
            ndof          integer,
            n_images      integer,
            flags         integer          NOT NULL DEFAULT 0,
            job_id        bigint,
            PRIMARY KEY (hpx29, object_id, band_id)
        ) PARTITION BY RANGE (hpx29)$f$, rel_name);
    EXECUTE format($f$
        COMMENT ON TABLE %I.forced_photometry IS
            'Forced photometry of every object in every band (simultaneous template fit), nJy'$f$, rel_name);

    EXECUTE format('CREATE INDEX ON %I.object (q3c_ang2ipix(ra, dec))', rel_name);

    PERFORM jsp.create_hpx_partitions(format('%I.object', rel_name)::regclass, part_order);
    PERFORM jsp.create_hpx_partitions(format('%I.forced_photometry', rel_name)::regclass, part_order);
END;
$$;

-- Publishing is one step: readers get USAGE on the schema and SELECT on its
-- tables in the same transaction that flips the state.
CREATE OR REPLACE FUNCTION jsp.publish_release(rel_name text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE jsp.release SET state = 'public', published_at = now()
     WHERE name = rel_name AND state = 'staging';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'release % is not in staging', rel_name;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO jsp_reader', rel_name);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO jsp_reader', rel_name);
END;
$$;
