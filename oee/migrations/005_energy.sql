-- Energy and carbon of a booking, frozen with its usage (oee.results): the energy spent while the machine was
-- not running (idle energy) beside the total, and the grid emission factor in force when the results were
-- frozen, so a CO2 figure once shown never changes when the factor is updated for a later year.
ALTER TABLE usage_record
    ADD COLUMN idle_energy_kwh double precision,
    ADD COLUMN carbon_factor   numeric(6,4) CHECK (carbon_factor > 0),   -- kg CO2 per kWh
    ADD COLUMN carbon_source   text,
    ADD COLUMN carbon_year     integer;
