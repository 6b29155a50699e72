#!/usr/bin/python3
"""Conformance: tempest's own service clients drive the cloud simulator, and tempest validates
every answer against its response schemas at the microversions replica-autoscaler pins
(compute 2.52, volume 3.22). Keystone: tempest's V3 token client and auth provider must
authenticate and find every service in the catalog.

Run by ctest (label conformance) with Debian's /usr/bin/python3 and python3-tempest.
"""
import sys
import os
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simproc import Sim, wait_for  # noqa: E402

from tempest.lib import auth  # noqa: E402
from tempest.lib import exceptions as lib_exc  # noqa: E402
from tempest.lib.services.compute import base_compute_client  # noqa: E402
from tempest.lib.services.compute import availability_zone_client, limits_client, servers_client  # noqa: E402
from tempest.lib.services.identity.v3 import token_client  # noqa: E402
from tempest.lib.services.volume import base_client as volume_base  # noqa: E402
from tempest.lib.services.volume.v3 import limits_client as volume_limits_client  # noqa: E402
from tempest.lib.services.volume.v3 import snapshots_client, volumes_client  # noqa: E402

COMPUTE_MICROVERSION = "2.52"
VOLUME_MICROVERSION = "3.22"
NETWORK = "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a"


class TempestAgainstSimulator(unittest.TestCase):
    sim_args = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.sim_args).__enter__()
        state = cls.sim.control("GET", "/control/state")
        cls.region = state["region"]
        cls.project = state["project"]["name"]
        creds = auth.KeystoneV3Credentials(username="demo", password="demo-password",
                                           user_domain_name="Default", project_name=cls.project,
                                           project_domain_name="Default")
        cls.auth = auth.KeystoneV3AuthProvider(creds, cls.sim.auth_url)
        kw = dict(disable_ssl_certificate_validation=True, build_interval=0.1, build_timeout=30)
        base_compute_client.COMPUTE_MICROVERSION = COMPUTE_MICROVERSION
        volume_base.VOLUME_MICROVERSION = VOLUME_MICROVERSION
        cls.servers = servers_client.ServersClient(cls.auth, "compute", cls.region, **kw)
        cls.zones = availability_zone_client.AvailabilityZoneClient(cls.auth, "compute", cls.region, **kw)
        cls.limits = limits_client.LimitsClient(cls.auth, "compute", cls.region, **kw)
        cls.volumes = volumes_client.VolumesClient(cls.auth, "volumev3", cls.region, **kw)
        cls.snapshots = snapshots_client.SnapshotsClient(cls.auth, "volumev3", cls.region, **kw)
        cls.vlimits = volume_limits_client.LimitsClient(cls.auth, "volumev3", cls.region, **kw)

    @classmethod
    def tearDownClass(cls):
        base_compute_client.COMPUTE_MICROVERSION = None
        volume_base.VOLUME_MICROVERSION = None
        cls.sim.__exit__(None, None, None)

    @staticmethod
    def _gone(show):
        try:
            show()
            return False
        except lib_exc.NotFound:
            return True

    def test_keystone_token_and_catalog(self):
        client = token_client.V3TokenClient(self.sim.auth_url)
        token, data = client.get_token(username="demo", password="demo-password",
                                       project_name=self.project, auth_data=True)
        self.assertTrue(token)
        self.assertEqual(data["project"]["name"], self.project)
        types = {s["type"] for s in data["catalog"]}
        self.assertTrue({"compute", "volumev3", "dns", "identity"} <= types)
        # tempest's auth provider parses expires_at and finds endpoints by type and region.
        self.assertFalse(self.auth.is_expired(self.auth.get_auth()))
        self.assertIn("/compute/v2.1", self.auth.base_url({"service": "compute", "region": self.region}))
        with self.assertRaises(lib_exc.Unauthorized):
            client.get_token(username="demo", password="wrong", project_name=self.project)

    def test_volume_snapshot_server_lifecycle(self):
        vol = self.volumes.create_volume(size=1, name="conf-vol", metadata={"ra_cluster": "c1"})["volume"]
        wait_for(lambda: self.volumes.show_volume(vol["id"])["volume"]["status"] == "available", "volume")
        listed = self.volumes.list_volumes(detail=True, params={"metadata": '{"ra_cluster": "c1"}'})["volumes"]
        self.assertEqual([v["id"] for v in listed], [vol["id"]])
        self.volumes.list_volumes()

        server = self.servers.create_server(
            name="conf-server", flavorRef="3", imageRef="",
            block_device_mapping_v2=[{"boot_index": 0, "uuid": vol["id"], "source_type": "volume",
                                      "destination_type": "volume", "delete_on_termination": False}],
            networks=[{"uuid": NETWORK}], security_groups=[{"name": "postgres"}], key_name="ops",
            tags=["replica-autoscaler", "ra-cluster:c1"], metadata={"ra_cluster": "c1"},
            user_data="eyJwcmltYXJ5X2hvc3QiOiAiMTI3LjAuMC4xIn0=")["server"]
        building = self.servers.show_server(server["id"])["server"]
        self.assertIn(building["status"], ("BUILD", "ACTIVE"))
        wait_for(lambda: self.servers.show_server(server["id"])["server"]["status"] == "ACTIVE", "server ACTIVE")
        active = self.servers.show_server(server["id"])["server"]
        self.assertEqual(sorted(active["tags"]), ["ra-cluster:c1", "replica-autoscaler"])
        self.assertTrue(active["addresses"])
        by_tags = self.servers.list_servers(detail=True, tags="replica-autoscaler,ra-cluster:c1")["servers"]
        self.assertEqual([s["id"] for s in by_tags], [server["id"]])
        self.assertEqual(self.servers.list_servers(detail=True, tags="ra-cluster:other")["servers"], [])
        self.servers.list_servers()
        # Like Nova for a non-admin user, ?metadata= filters nothing: tags are the way.
        everything = self.servers.list_servers(detail=True)["servers"]
        by_metadata = self.servers.list_servers(detail=True, metadata='{"ra_cluster": "other"}')["servers"]
        self.assertEqual(len(by_metadata), len(everything))
        paged = self.servers.list_servers(detail=True, limit=1)
        self.assertEqual(len(paged["servers"]), 1)

        snap = self.snapshots.create_snapshot(volume_id=vol["id"], force=True, name="conf-snap",
                                              metadata={"ra_cluster": "c1", "ra_role": "golden"})["snapshot"]
        wait_for(lambda: self.snapshots.show_snapshot(snap["id"])["snapshot"]["status"] == "available", "snapshot")
        golden = self.snapshots.list_snapshots(detail=True, params={"metadata": '{"ra_role": "golden"}'})["snapshots"]
        self.assertEqual([s["id"] for s in golden], [snap["id"]])
        self.snapshots.list_snapshots()
        clone = self.volumes.create_volume(snapshot_id=snap["id"], name="conf-clone",
                                           metadata={"ra_replica": "r2"})["volume"]
        wait_for(lambda: self.volumes.show_volume(clone["id"])["volume"]["status"] == "available", "clone")

        self.servers.delete_server(server["id"])
        wait_for(lambda: self._gone(lambda: self.servers.show_server(server["id"])), "server gone")
        wait_for(lambda: self.volumes.show_volume(vol["id"])["volume"]["status"] == "available", "detached")
        self.volumes.delete_volume(clone["id"])
        wait_for(lambda: self._gone(lambda: self.volumes.show_volume(clone["id"])), "clone gone")
        self.snapshots.delete_snapshot(snap["id"])
        wait_for(lambda: self._gone(lambda: self.snapshots.show_snapshot(snap["id"])), "snapshot gone")
        self.volumes.delete_volume(vol["id"])
        wait_for(lambda: self._gone(lambda: self.volumes.show_volume(vol["id"])), "volume gone")

    def test_server_that_goes_error_has_a_fault(self):
        self.sim.control("POST", "/control/servers", {"match": "doomed", "outcome": "error",
                                                      "fault": "No valid host was found. "})
        vol = self.volumes.create_volume(size=1, name="doomed-vol")["volume"]
        wait_for(lambda: self.volumes.show_volume(vol["id"])["volume"]["status"] == "available", "volume")
        server = self.servers.create_server(
            name="doomed", flavorRef="1",
            block_device_mapping_v2=[{"boot_index": 0, "uuid": vol["id"], "source_type": "volume",
                                      "destination_type": "volume"}],
            networks=[{"uuid": NETWORK}])["server"]
        wait_for(lambda: self.servers.show_server(server["id"])["server"]["status"] == "ERROR", "ERROR")
        shown = self.servers.show_server(server["id"])["server"]
        self.assertIn("No valid host", shown["fault"]["message"])
        self.servers.list_servers(detail=True)
        self.servers.delete_server(server["id"])

    def test_zones_and_limits(self):
        zones = self.zones.list_availability_zones()["availabilityZoneInfo"]
        self.assertTrue(zones[0]["zoneState"]["available"])
        absolute = self.limits.show_limits()["limits"]["absolute"]
        self.assertIn("maxTotalInstances", absolute)
        vabsolute = self.vlimits.show_limits()["limits"]["absolute"]
        self.assertIn("maxTotalVolumes", vabsolute)

    def test_errors_are_openstack_errors(self):
        with self.assertRaises(lib_exc.NotFound):
            self.servers.show_server("00000000-0000-0000-0000-000000000000")
        with self.assertRaises(lib_exc.NotFound):
            self.volumes.show_volume("00000000-0000-0000-0000-000000000000")
        with self.assertRaises(lib_exc.BadRequest):
            self.servers.create_server(name="x", flavorRef="no-such-flavor", networks=[{"uuid": NETWORK}],
                                       block_device_mapping_v2=[])
        self.sim.control("POST", "/control/quotas", {"instances": 0})
        try:
            vol = self.volumes.create_volume(size=1, name="quota-vol")["volume"]
            wait_for(lambda: self.volumes.show_volume(vol["id"])["volume"]["status"] == "available", "volume")
            with self.assertRaises(lib_exc.Forbidden) as ctx:
                self.servers.create_server(
                    name="over", flavorRef="1", networks=[{"uuid": NETWORK}],
                    block_device_mapping_v2=[{"boot_index": 0, "uuid": vol["id"], "source_type": "volume",
                                              "destination_type": "volume"}])
            self.assertIn("Quota exceeded for instances", str(ctx.exception))
            self.volumes.delete_volume(vol["id"])
        finally:
            self.sim.control("POST", "/control/quotas", {"instances": 20})


class TempestAgainstSberCloudProfile(TempestAgainstSimulator):
    """The SberCloud profile: project named after the region, project id in the compute URL,
    long tokens. Same clients, same schemas."""
    sim_args = ("--sbercloud",)


if __name__ == "__main__":
    unittest.main(verbosity=2)
