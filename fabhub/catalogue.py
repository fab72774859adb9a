"""devices.yaml's classes, devices and subsidy programs as the booking domain's catalogue, and the one rule
on who writes it: `fabhub migrate` and `fabhub catalogue sync` (and the demo, which is its own installation);
every other process reads it and refuses to start on a file that disagrees, since two processes with two
different files would otherwise undo each other's rates and retire each other's devices."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection

from booking.catalogue import Catalogue, Device, DeviceClass, Program, Rules, differences, sync
from fabhub.devices import DeviceFile
from oee.energy import Carbon, EnergyFacts


class CatalogueMismatch(RuntimeError):
    def __init__(self, found: list[str]) -> None:
        self.differences = found
        super().__init__(
            "devices.yaml and the database's catalogue disagree (run `fabhub catalogue sync` with the file meant"
            " to be the center's, or give this process that file):\n  " + "\n  ".join(found)
        )


async def settle_catalogue(
    conn: AsyncConnection, devices: DeviceFile, at: datetime, *, write: bool, site: str | None = None
) -> list[str]:
    """The writer syncs and gets the changes made; a reader gets CatalogueMismatch naming each difference.
    A reader for one `site` may hold that site's file only: what it lacks is other sites' business."""
    catalogue = catalogue_from(devices)
    if write:
        async with conn.transaction():
            return await sync(conn, catalogue, at)
    found = await differences(conn, catalogue, at, partial=site is not None)
    if found:
        raise CatalogueMismatch(found)
    return []


def catalogue_from(devices: DeviceFile) -> Catalogue:
    classes = {
        class_id: DeviceClass(
            id=class_id,
            name=cls.name,
            name_zh=cls.name_zh,
            hourly_rate=cls.hourly_rate,
            billing_basis=cls.billing_basis,
            metered_minimum_share=cls.metered_minimum_share,
            rules=Rules(**cls.rules.model_dump()),
        )
        for class_id, cls in devices.classes.items()
    }
    return Catalogue(
        classes=classes,
        devices={
            d.id: Device(id=d.id, class_id=d.class_id, name=d.name, hourly_rate=d.hourly_rate, retired=d.retired)
            for d in devices.machines
        },
        programs={
            program_id: Program(
                id=program_id,
                name=p.name,
                share=p.share,
                classes=tuple(p.classes),
                valid_from=p.valid_from,
                valid_to=p.valid_to,
                annual_cap=p.annual_cap,
            )
            for program_id, p in devices.subsidy_programs.items()
        },
    )


def oee_facts(devices: DeviceFile) -> tuple[dict[str, float | None], frozenset[str], EnergyFacts]:
    """Each machine's ideal cycle time in seconds (None when not configured), the machines that count good
    or bad parts (quality is unknown, not perfect, on the others), and where their energy is measured."""
    machines = devices.machines
    ideal = {d.id: d.ideal_cycle_time.total_seconds() if d.ideal_cycle_time else None for d in machines}
    counts_good = frozenset(d.id for d in machines if {"parts_good", "parts_bad"} & d.signal_names())
    c = devices.carbon
    return ideal, counts_good, EnergyFacts(devices.energy_sources(), Carbon(c.factor, c.source, c.year))
