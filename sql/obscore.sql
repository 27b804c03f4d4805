-- ivoa.obscore: ObsCore 1.1 over jsp.image (one row per image).
--
-- s_region stays a pgsphere spoly so ADQL geometry (CONTAINS, INTERSECTS)
-- and SIA v2 POS constraints use the GiST index on jsp.image.footprint.
-- Wavelengths are stored in nm and published in metres, as ObsCore says.

CREATE SCHEMA IF NOT EXISTS ivoa;
COMMENT ON SCHEMA ivoa IS 'IVOA standard data models (ObsCore)';

CREATE OR REPLACE VIEW ivoa.obscore AS
SELECT 'image'::text                                   AS dataproduct_type,
       NULL::text                                      AS dataproduct_subtype,
       (CASE i.kind WHEN 'coadd' THEN 3 WHEN 'difference' THEN 3 ELSE 2 END)::smallint AS calib_level,
       s.name                                          AS obs_collection,
       i.obs_id                                        AS obs_id,
       ('ivo://jspdb/image?' || i.image_id)::text      AS obs_publisher_did,
       i.image_id                                      AS image_id,
       i.uri                                           AS access_url,
       'image/fits'::text                              AS access_format,
       (i.size_bytes / 1024)::bigint                   AS access_estsize,
       NULL::text                                      AS target_name,
       i.ra_center                                     AS s_ra,
       i.dec_center                                    AS s_dec,
       (sqrt(i.naxis1::float8 ^ 2 + i.naxis2::float8 ^ 2) * i.pixel_scale_arcsec / 3600.0) AS s_fov,
       i.footprint                                     AS s_region,
       i.psf_fwhm_arcsec                               AS s_resolution,
       i.naxis1::bigint                                AS s_xel1,
       i.naxis2::bigint                                AS s_xel2,
       i.pixel_scale_arcsec                            AS s_pixel_scale,
       i.t_min_mjd                                     AS t_min,
       i.t_max_mjd                                     AS t_max,
       i.exptime_s                                     AS t_exptime,
       (i.t_max_mjd - i.t_min_mjd) * 86400.0           AS t_resolution,
       1::bigint                                       AS t_xel,
       i.wl_min_nm * 1e-9                              AS em_min,
       i.wl_max_nm * 1e-9                              AS em_max,
       (i.wl_min_nm + i.wl_max_nm) / 2.0 / NULLIF(i.wl_max_nm - i.wl_min_nm, 0) AS em_res_power,
       1::bigint                                       AS em_xel,
       b.name                                          AS em_band,
       'phot.flux.density'::text                       AS o_ucd,
       NULL::text                                      AS pol_states,
       1::bigint                                       AS pol_xel,
       s.facility                                      AS facility_name,
       ins.name                                        AS instrument_name,
       i.kind                                          AS image_kind,
       i.depth5_mag                                    AS depth5_mag
  FROM jsp.image i
  JOIN jsp.survey s ON s.survey_id = i.survey_id
  JOIN jsp.band b ON b.band_id = i.band_id
  JOIN jsp.instrument ins ON ins.instrument_id = b.instrument_id;

COMMENT ON VIEW ivoa.obscore IS 'ObsCore 1.1 view of every image the warehouse holds';
COMMENT ON COLUMN ivoa.obscore.dataproduct_type IS 'Data product type (image)';
COMMENT ON COLUMN ivoa.obscore.calib_level IS 'Calibration level: 2 calibrated exposure, 3 coadd';
COMMENT ON COLUMN ivoa.obscore.obs_collection IS 'Survey';
COMMENT ON COLUMN ivoa.obscore.obs_id IS 'Survey identifier of the exposure or product';
COMMENT ON COLUMN ivoa.obscore.obs_publisher_did IS 'IVOA publisher dataset identifier';
COMMENT ON COLUMN ivoa.obscore.access_url IS 'Where the file is';
COMMENT ON COLUMN ivoa.obscore.access_format IS 'MIME type of the file';
COMMENT ON COLUMN ivoa.obscore.access_estsize IS 'Estimated size, kbyte';
COMMENT ON COLUMN ivoa.obscore.s_ra IS 'Centre RA, deg';
COMMENT ON COLUMN ivoa.obscore.s_dec IS 'Centre Dec, deg';
COMMENT ON COLUMN ivoa.obscore.s_fov IS 'Diagonal of the image, deg';
COMMENT ON COLUMN ivoa.obscore.s_region IS 'Footprint polygon';
COMMENT ON COLUMN ivoa.obscore.s_resolution IS 'PSF FWHM, arcsec';
COMMENT ON COLUMN ivoa.obscore.t_min IS 'Start time, MJD';
COMMENT ON COLUMN ivoa.obscore.t_max IS 'Stop time, MJD';
COMMENT ON COLUMN ivoa.obscore.t_exptime IS 'Exposure time, s';
COMMENT ON COLUMN ivoa.obscore.em_min IS 'Blue edge of the band, m';
COMMENT ON COLUMN ivoa.obscore.em_max IS 'Red edge of the band, m';
COMMENT ON COLUMN ivoa.obscore.facility_name IS 'Observatory';
COMMENT ON COLUMN ivoa.obscore.instrument_name IS 'Camera';

INSERT INTO jsp.tap_annotation (schema_name, table_name, column_name, unit, ucd, utype) VALUES
    ('ivoa', 'obscore', 'dataproduct_type', NULL, 'meta.code.class', 'obscore:ObsDataset.dataProductType'),
    ('ivoa', 'obscore', 'calib_level', NULL, 'meta.code;obs.calib', 'obscore:ObsDataset.calibLevel'),
    ('ivoa', 'obscore', 'obs_collection', NULL, 'meta.id', 'obscore:DataID.Collection'),
    ('ivoa', 'obscore', 'obs_id', NULL, 'meta.id', 'obscore:DataID.observationID'),
    ('ivoa', 'obscore', 'obs_publisher_did', NULL, 'meta.ref.ivoid', 'obscore:Curation.PublisherDID'),
    ('ivoa', 'obscore', 'access_url', NULL, 'meta.ref.url', 'obscore:Access.Reference'),
    ('ivoa', 'obscore', 'access_format', NULL, 'meta.code.mime', 'obscore:Access.Format'),
    ('ivoa', 'obscore', 'access_estsize', 'kbyte', 'phys.size;meta.file', 'obscore:Access.Size'),
    ('ivoa', 'obscore', 's_ra', 'deg', 'pos.eq.ra', 'obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1'),
    ('ivoa', 'obscore', 's_dec', 'deg', 'pos.eq.dec', 'obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2'),
    ('ivoa', 'obscore', 's_fov', 'deg', 'phys.angSize;instr.fov', 'obscore:Char.SpatialAxis.Coverage.Bounds.Extent.diameter'),
    ('ivoa', 'obscore', 's_region', 'deg', 'pos.outline;obs.field', 'obscore:Char.SpatialAxis.Coverage.Support.Area'),
    ('ivoa', 'obscore', 's_resolution', 'arcsec', 'pos.angResolution', 'obscore:Char.SpatialAxis.Resolution.Refval.value'),
    ('ivoa', 'obscore', 't_min', 'd', 'time.start;obs.exposure', 'obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime'),
    ('ivoa', 'obscore', 't_max', 'd', 'time.end;obs.exposure', 'obscore:Char.TimeAxis.Coverage.Bounds.Limits.StopTime'),
    ('ivoa', 'obscore', 't_exptime', 's', 'time.duration;obs.exposure', 'obscore:Char.TimeAxis.Coverage.Support.Extent'),
    ('ivoa', 'obscore', 'em_min', 'm', 'em.wl;stat.min', 'obscore:Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit'),
    ('ivoa', 'obscore', 'em_max', 'm', 'em.wl;stat.max', 'obscore:Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit'),
    ('ivoa', 'obscore', 'facility_name', NULL, 'meta.id;instr.tel', 'obscore:Provenance.ObsConfig.Facility.name'),
    ('ivoa', 'obscore', 'instrument_name', NULL, 'meta.id;instr', 'obscore:Provenance.ObsConfig.Instrument.name')
ON CONFLICT DO NOTHING;

GRANT USAGE ON SCHEMA ivoa TO jsp_reader;
GRANT SELECT ON ivoa.obscore TO jsp_reader;
