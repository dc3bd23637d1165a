"""The client's location readers against the Primero simulator: every page is read.

Primero pages `GET /api/v2/locations` by 100 unless told (locations_controller.rb#per) and lists
`admin_level` only with `hierarchy=true` (locations/_location.json.jbuilder).
"""

from __future__ import annotations

import requests

from adapter.primero import PrimeroClient
from adapter.primero.locations import location_codes
from adapter.simulator.primero import PrimeroSimulator


def test_every_page_of_locations_is_read() -> None:
    with PrimeroSimulator(cases=0) as sim:
        with sim.state.lock:
            for n in range(1, 1201):  # more than one page of 1000
                code = f"PK-T{n:04d}"
                sim.state.locations[code] = {
                    "id": 100_000 + n,
                    "code": code,
                    "type": "district",
                    "admin_level": 2,
                    "name": {"en": f"Test {n}"},
                    "placename": {"en": f"Test {n}"},
                    "hierarchy": ["PK", code],
                    "disabled": n % 2 == 0,
                }
            expected = set(sim.state.locations)
        client = PrimeroClient(
            sim.url, username="cpims-adapter", password="sim-password", sleep=lambda _: None
        )
        with client:
            codes = location_codes(client)
            listed = client.list_locations()
        stats = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()["requests"]

    assert codes == expected  # disabled ones included
    assert {item["code"] for item in listed} == expected
    assert all("admin_level" in item for item in listed)  # the CLI shows it
    assert stats["GET /api/v2/locations"] == 4  # two pages of 1000, twice
